"""The ``vex-llm`` command line: serve the proxy, ask a question, inspect the cache, check config.

Needs the ``[server]`` extra (click, rich, uvicorn...). Answers go to stdout; progress, cache
outcomes and errors go to stderr, so ``vex-llm ask ... > answer.txt`` keeps only the answer.
Exit codes: 0 success, 1 failure (bad config, upstream error, cache miss), 2 usage error.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

try:
    import click
    from rich.console import Console
    from rich.table import Table
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the vex-llm command needs the server extra: pip install 'vex-llm[server]'"
    ) from exc

from vex_llm import __version__
from vex_llm.cache.config import LLMCacheConfig
from vex_llm.cache.key import short_key
from vex_llm.cache.stores.base import StoreError
from vex_llm.errors import LLMError
from vex_llm.models import CacheControl, LLMRequest
from vex_llm.redaction import redact_url
from vex_llm.server.config_file import check_config, load_settings
from vex_llm.server.settings import UPSTREAM_KINDS, ConfigError, UpstreamSettings, hash_key

__all__ = ["main"]

err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

_UPSTREAM_OPTIONS = [
    click.option("--upstream", metavar="URL", help="Upstream base URL, e.g. http://host:8000/v1."),
    click.option(
        "--upstream-kind",
        type=click.Choice(UPSTREAM_KINDS),
        default="openai",
        show_default=True,
        help="The upstream's wire format.",
    ),
    click.option(
        "--upstream-key-env", metavar="VAR", help="Environment variable holding the upstream key."
    ),
    click.option("--model", metavar="NAME", help="Model name (required with --upstream)."),
    click.option("--store", metavar="URL", help="memory://, sqlite:///ABS/PATH or redis://HOST."),
]


def _upstream_options(command: Any) -> Any:
    for option in reversed(_UPSTREAM_OPTIONS):
        command = option(command)
    return command


def _run(coro: Awaitable[T]) -> T:
    async def wrapper() -> T:
        return await coro

    return asyncio.run(wrapper())


def _store_url(store: str | None) -> str:
    from vex_llm.server.run import default_store_url

    return store or os.environ.get("VEX_LLM_STORE") or default_store_url()


def _open_store(url: str, config: LLMCacheConfig) -> Any:
    from vex_llm.cache.stores.url import open_store

    try:
        return open_store(
            url,
            max_entries=config.max_entries,
            max_bytes=config.max_bytes,
            ttl=config.ttl_seconds,
            tti=config.tti_seconds,
        )
    except (ValueError, OSError) as exc:
        raise click.ClickException(f"cannot open the store {redact_url(url)}: {exc}") from None
    except StoreError as exc:  # a bad SQLite file: the message says which and what to do
        raise click.ClickException(str(exc)) from None


async def _check_sqlite(url: str) -> None:
    """Open and close the SQLite store ``url`` names (``StoreError`` if its file is bad)."""
    if url.startswith("sqlite:"):
        from vex_llm.cache.stores.url import open_store

        await open_store(url).aclose()


def _move_bad_file(url: str) -> str:
    """``url`` with ``bad_file=move_aside`` when it names a SQLite store."""
    if not url.startswith("sqlite:") or "bad_file=" in url:
        return url
    return url + ("&" if "?" in url else "?") + "bad_file=move_aside"


def _upstream_provider(
    upstream: str | None, kind: str, key_env: str | None, model: str | None
) -> tuple[Any, str]:
    """The provider and model name for ``--upstream``, or the embedded local model."""
    if upstream is None:
        from vex_llm.local.provider import LOCAL_MODEL, LocalModelProvider

        return LocalModelProvider(progress=lambda line: err.print(line, style="dim")), LOCAL_MODEL
    if not model:
        raise click.UsageError("--upstream needs --model NAME (the model the upstream serves)")
    if key_env and not os.environ.get(key_env):
        raise click.ClickException(
            f"environment variable {key_env} (--upstream-key-env) is not set"
        )
    from vex_llm.server.upstreams import build_provider

    settings = UpstreamSettings(model, kind, upstream, model, key_env)
    return build_provider(settings), model


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vex-llm")
def main() -> None:
    """vex-llm: a caching, tenant-safe, OpenAI-compatible front for LLM providers."""


@main.command()
def demo() -> None:
    """Run the in-memory demo: a miss, a hit, coalescing and the stats."""
    from vex_llm.demo import main as run_demo

    run_demo()


@main.command()
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path), help="TOML config.")
@click.option("--host", default=None, help="Address to listen on [default: 127.0.0.1].")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="[default: 8080]")
@click.option(
    "--workers",
    type=click.IntRange(1, 512),
    default=None,
    help="Processes serving the port; > 1 needs a SQLite or Redis store [default: 1].",
)
@_upstream_options
@click.option(
    "--move-bad-cache",
    is_flag=True,
    help="A corrupt SQLite cache file is renamed *.bad-TIME and the cache starts empty "
    "[default: refuse to start, saying what is wrong].",
)
@click.option(
    "--access-log",
    is_flag=True,
    help="Log one line per request [default: off; it costs a fifth of a cache hit].",
)
def serve(
    config: Path | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    upstream: str | None,
    upstream_kind: str,
    upstream_key_env: str | None,
    model: str | None,
    store: str | None,
    move_bad_cache: bool,
    access_log: bool,
) -> None:
    """Run the OpenAI-compatible caching proxy.

    With --config, everything comes from the file. With --upstream, one upstream is served,
    open to any client key on a loopback address. With neither, the embedded defaults: the
    local SmolLM2 model (installed on first use) and a SQLite cache in the user cache dir.
    With --workers N, N processes share the port, the store, the local model and the metrics.
    """
    if config is not None and upstream is not None:
        raise click.UsageError("use --config or --upstream, not both")
    from vex_llm.server.run import run_server

    code = run_server(
        _serve(
            config, host, port, workers, upstream, upstream_kind, upstream_key_env, model, store,
            move_bad_cache, access_log,
        )
    )  # fmt: skip
    if code:
        sys.exit(code)


async def _serve(
    config: Path | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    upstream: str | None,
    kind: str,
    key_env: str | None,
    model: str | None,
    store: str | None,
    move_bad_cache: bool = False,
    access_log: bool = False,
) -> int:
    from vex_llm.server.app import create_app
    from vex_llm.server.run import OPEN_TENANT, ShutdownSignals, quick_settings, serve_app

    local = None
    providers = None
    try:
        if config is not None:
            settings = load_settings(config)
            settings = dataclasses.replace(
                settings,
                host=host or settings.host,
                port=settings.port if port is None else port,
                store_url=store or settings.store_url,
            )
        else:
            provider, model = _upstream_provider(upstream, kind, key_env, model)
            admin = os.environ.get("VEX_LLM_ADMIN_KEY")
            settings = quick_settings(
                model=model,
                base_url=upstream or "http://127.0.0.1/v1",
                kind=kind,
                api_key_env=key_env,
                store_url=_store_url(store),
                host=host or "127.0.0.1",
                port=8080 if port is None else port,
                admin_key_hashes=(hash_key(admin),) if admin else (),
            )
            providers = {model: provider}
            if upstream is None:
                local = provider
        if workers is not None:
            settings = dataclasses.replace(settings, workers=workers)
        if access_log:
            settings = dataclasses.replace(settings, access_log=True)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(f"[red]config:[/] {problem}", markup=True, highlight=False)
        raise click.ClickException("invalid configuration") from None
    url = settings.store_url
    try:
        if settings.workers > 1:
            # A bad SQLite file is found (and moved aside, if asked) once, here: else each
            # worker printed a traceback, and N workers raced to move one file.
            await _check_sqlite(_move_bad_file(url) if move_bad_cache else url)
            return await _serve_workers(settings, local)
        if move_bad_cache:
            settings = dataclasses.replace(settings, store_url=_move_bad_file(url))
        app = create_app(settings, providers=providers)
    except StoreError as exc:  # a bad SQLite file: one line saying which and what to do
        hint = "" if move_bad_cache else " (vex-llm serve --move-bad-cache does that)"
        movable = "bad_file=move_aside" in str(exc)
        raise click.ClickException(str(exc) + (hint if movable else "")) from None
    signals = ShutdownSignals()
    signals.install()
    try:
        if local is not None:
            await local.start()
        _announce(settings, OPEN_TENANT)
        await serve_app(
            app,
            settings.host,
            settings.port,
            signals=signals,
            limits=settings.limits,
            access_log=settings.access_log,
        )
    except asyncio.CancelledError:
        if not signals.received:
            raise
        err.print("interrupted during start-up", highlight=False)
    finally:
        signals.remove()
        if local is not None:
            await local.aclose()
    return 0


async def _serve_workers(settings: Any, local: Any) -> int:
    """``serve --workers N``: start the local model once, then supervise N workers."""
    from vex_llm.server.run import OPEN_TENANT, ShutdownSignals
    from vex_llm.server.workers import Supervisor

    signals = ShutdownSignals()
    signals.install()
    try:
        if local is not None:
            await local.start()
        signals.remove()
        supervisor = Supervisor(
            settings,
            local_base_url=local.base_url if local else None,
            local_embeddings_url=local.embeddings_base_url if local else None,
        )
        try:
            code = await supervisor.run(lambda real: _announce(real, OPEN_TENANT))
        except OSError as exc:
            err.print(f"[red]error:[/] {exc}", highlight=False)
            return 1
        err.print(f"stopped {settings.workers} workers", highlight=False)
        return code
    except asyncio.CancelledError:
        if not signals.received:
            raise
        err.print("interrupted during start-up", highlight=False)
        return 0
    finally:
        signals.remove()
        if local is not None:
            await local.aclose()


def _announce(settings: Any, open_tenant: str) -> None:
    base = f"http://{settings.host}:{settings.port}/v1"
    workers = f" ({settings.workers} workers)" if settings.workers > 1 else ""
    err.print(f"[bold green]vex-llm proxy[/] on {base}{workers}", highlight=False)
    for u in settings.upstreams:
        err.print(f"  model [bold]{u.name}[/] -> {u.kind} upstream", highlight=False)
    err.print(f"  cache store: {redact_url(settings.store_url)}", highlight=False)
    # The browser asks for a key there: it goes in the password (see server.dashboard).
    who = "open" if settings.open_tenant is not None else "a key as the password"
    err.print(f"  dashboard: {base.removesuffix('/v1')}/ui ({who})", highlight=False)
    if settings.open_tenant is not None:
        err.print(
            f"  [yellow]open access:[/] any client key is accepted, as tenant "
            f"'{settings.open_tenant}' (listening on {settings.host} only)",
            highlight=False,
        )
    err.print(
        f'  try: curl {base}/chat/completions -H "Content-Type: application/json" '
        f'-d \'{{"model": "{settings.upstreams[0].name}", "messages": '
        f'[{{"role": "user", "content": "Hello"}}]}}\'',
        highlight=False,
        markup=False,
    )


@main.command()
@click.argument("question")
@_upstream_options
@click.option("--no-cache", is_flag=True, help="Ask upstream even if an answer is cached.")
@click.option("--stream", is_flag=True, help="Print the answer as it arrives.")
@click.option("--system", metavar="TEXT", help="A system prompt.")
@click.option("--temperature", type=click.FloatRange(0, 2), help="Sampling temperature.")
@click.option(
    "--max-tokens", type=click.IntRange(1), default=256, show_default=True, help="Answer length."
)
def ask(
    question: str,
    upstream: str | None,
    upstream_kind: str,
    upstream_key_env: str | None,
    model: str | None,
    store: str | None,
    no_cache: bool,
    stream: bool,
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
) -> None:
    """Ask QUESTION through the cache; print the answer, then hit/miss and latency."""
    provider, model = _upstream_provider(upstream, upstream_kind, upstream_key_env, model)
    _run(_ask(question, provider, model, _store_url(store), no_cache, stream, system,
              temperature, max_tokens))  # fmt: skip


async def _ask(
    question: str,
    provider: Any,
    model: str,
    store_url: str,
    no_cache: bool,
    stream: bool,
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
) -> None:
    from vex_llm.cache.provider import CachedProvider
    from vex_llm.server.run import OPEN_TENANT

    config = LLMCacheConfig.default()
    # The proxy's quick path serves every client as OPEN_TENANT: asking as the same tenant
    # shares its cache, so a question asked with curl is a hit here, and back.
    request = LLMRequest(
        prompt=question,
        system=system,
        model=model,
        tenant_id=OPEN_TENANT,
        temperature=temperature,
        max_tokens=max_tokens,
        cache=CacheControl(no_cache=no_cache),
    )
    started = time.perf_counter()
    store = _open_store(store_url, config)
    try:
        # The cache closes the provider; the store opened here is closed here.
        async with CachedProvider(provider, config, store=store) as cached:
            if stream:
                opened = await cached.open_stream(request)
                try:
                    async for chunk in opened:
                        click.echo(chunk.delta, nl=False)
                finally:
                    await opened.aclose()
                click.echo()
                outcome, key = opened.outcome, opened.key
            else:
                result = await cached.complete_result(request)
                click.echo(result.response.content)
                outcome, key = result.outcome, result.key
    except LLMError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None
    finally:
        await store.aclose()
    elapsed = (time.perf_counter() - started) * 1000
    colour = "green" if outcome in ("hit", "coalesced") else "yellow"
    err.print(
        f"[{colour}]{outcome}[/] in {elapsed:.1f} ms  (key {short_key(key)}…)", highlight=False
    )


@main.command()
@click.argument("text", nargs=-1, required=True)
@_upstream_options
@click.option("--no-cache", is_flag=True, help="Ask upstream even if a vector is cached.")
@click.option("--dimensions", type=click.IntRange(1), help="Vector size, if the model can shorten.")
@click.option("--values", type=click.IntRange(0), default=5, show_default=True,
              help="How many leading values to print.")  # fmt: skip
def embed(
    text: tuple[str, ...],
    upstream: str | None,
    upstream_kind: str,
    upstream_key_env: str | None,
    model: str | None,
    store: str | None,
    no_cache: bool,
    dimensions: int | None,
    values: int,
) -> None:
    """Embed TEXT (one or more inputs) through the cache; print each vector's size and first
    values, then hit/miss/partial and latency."""
    provider, model = _upstream_provider(upstream, upstream_kind, upstream_key_env, model)
    _run(_embed(text, provider, model, _store_url(store), no_cache, dimensions, values))


async def _embed(
    texts: tuple[str, ...],
    provider: Any,
    model: str,
    store_url: str,
    no_cache: bool,
    dimensions: int | None,
    values: int,
) -> None:
    from vex_llm.cache.provider import CachedProvider
    from vex_llm.embeddings import EmbeddingRequest
    from vex_llm.server.run import OPEN_TENANT

    config = LLMCacheConfig.default()
    try:
        # As ``ask``: the proxy's quick path's tenant, so the CLI and curl share entries.
        request = EmbeddingRequest(
            texts,
            model=model,
            dimensions=dimensions,
            tenant_id=OPEN_TENANT,
            cache=CacheControl(no_cache=no_cache),
        )
    except (TypeError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    started = time.perf_counter()
    store = _open_store(store_url, config)
    try:
        async with CachedProvider(provider, config, store=store) as cached:
            result = await cached.embed_result(request)
    except LLMError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None
    finally:
        await store.aclose()
    elapsed = (time.perf_counter() - started) * 1000
    for item in result.response.data:
        head = ", ".join(f"{v:.6f}" for v in item.vector[:values])
        more = ", …" if len(item.vector) > values else ""
        click.echo(f"[{item.index}] {len(item.vector)} dims: [{head}{more}]")
    response = result.response
    colour = "green" if result.outcome in ("hit", "coalesced") else "yellow"
    err.print(
        f"[{colour}]{result.outcome}[/] in {elapsed:.1f} ms  ({result.hits} of "
        f"{len(response.data)} from the cache, {response.usage.prompt_tokens} tokens sent, "
        f"model {response.model})",
        highlight=False,
    )


@main.group()
def cache() -> None:
    """Inspect or clear a cache store."""


_store_option = click.option(
    "--store", metavar="URL", help="memory://, sqlite:///ABS/PATH or redis://HOST [default: the "
    "user cache dir's SQLite file]."
)  # fmt: skip


@cache.command("stats")
@_store_option
@click.option(
    "--server",
    metavar="URL",
    help="A running proxy (http://HOST:PORT): its lookups, tokens and dollars spent and saved, "
    "by tenant and model (GET /v1/cache/stats).",
)
@click.option(
    "--key-env",
    default="VEX_LLM_ADMIN_KEY",
    show_default=True,
    metavar="VAR",
    help="Environment variable holding the key for --server (the admin key sees every "
    "tenant, a tenant's key only its own).",
)
def cache_stats(store: str | None, server: str | None, key_env: str) -> None:
    """Show the number of entries, their size and evictions; with --server, a proxy's
    figures by tenant and model, with dollars spent and saved."""
    if server is not None:
        if store is not None:
            raise click.UsageError("give --store or --server, not both")
        _server_stats(server, os.environ.get(key_env))
        return
    url = _store_url(store)

    async def stats() -> tuple[int, int, dict[str, int]]:
        opened = _open_store(url, LLMCacheConfig.default())
        try:
            return await opened.count(), await opened.total_bytes(), dict(opened.evictions())
        finally:
            await opened.aclose()

    entries, nbytes, evictions = _run(stats())
    table = Table(title=f"cache {redact_url(url)}", show_header=False)
    table.add_row("entries", str(entries))
    table.add_row("bytes", f"{nbytes:,}")
    for cause, count in evictions.items():
        table.add_row(f"evictions ({cause}, this process)", str(count))
    Console().print(table)


def _server_stats(server: str, key: str | None) -> None:
    import httpx

    from vex_llm.stats_rows import STATS_COLUMNS, stats_rows

    url = server.rstrip("/").removesuffix("/v1") + "/v1/cache/stats"
    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        answer = httpx.get(url, headers=headers, timeout=10.0)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"{redact_url(url)}: {type(exc).__name__}: {exc}") from None
    try:
        body = answer.json()
    except ValueError:
        body = None
    if answer.status_code != 200 or not isinstance(body, dict):
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
        raise click.ClickException(
            f"{redact_url(url)} answered {answer.status_code}: {message or 'not cache stats'}"
        )
    table = Table(title=f"vex-llm {redact_url(url)}")
    for column in STATS_COLUMNS:
        # Folded, never cut to an ellipsis: a figure shown as "$0.00…" would say nothing.
        text = column in ("tenant", "model")
        table.add_column(column, justify="left" if text else "right", overflow="fold")
    for row in stats_rows(body):
        table.add_row(*row)
    Console().print(table)


@cache.command("clear")
@_store_option
@click.option(
    "--tenant",
    metavar="ID",
    help="Remove only this tenant's entries (the tenant id of the proxy's config).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def cache_clear(store: str | None, tenant: str | None, yes: bool) -> None:
    """Remove every entry of the store, or one tenant's."""
    url = _store_url(store)
    if tenant == "":
        raise click.BadParameter("must name a tenant", param_hint="--tenant")
    whose = "every entry" if tenant is None else f"every entry of tenant {tenant!r}"
    if not yes:
        click.confirm(f"Remove {whose} of {redact_url(url)}?", abort=True, err=True)

    async def clear() -> int:
        opened = _open_store(url, LLMCacheConfig.default())
        try:
            if tenant is not None:
                removed: int = await opened.clear_tenant(tenant)
                return removed
            count: int = await opened.count()
            await opened.clear()
            return count
        finally:
            await opened.aclose()

    removed = _run(clear())
    of_whom = "" if tenant is None else f" of tenant {tenant!r}"
    err.print(f"removed {removed} entries{of_whom} from {redact_url(url)}", highlight=False)


@main.group()
def config() -> None:
    """Work with proxy configuration files."""


@config.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def config_check(file: Path) -> None:
    """Validate FILE and list every problem with its location (exit 1 if any)."""
    problems = check_config(file)
    if not problems:
        err.print(f"[green]ok:[/] {file} is valid", highlight=False)
        return
    for problem in problems:
        click.echo(str(problem))
    raise click.ClickException(f"{len(problems)} problem(s) in {file}")
