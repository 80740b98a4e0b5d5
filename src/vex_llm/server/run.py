"""Running the proxy: the three ways to get Settings, and uvicorn with clean shutdown.

- a config file (``--config``),
- the quick path (``--upstream URL``): one upstream, any client key, one tenant, loopback only,
- the embedded defaults (neither): the local model as upstream, SQLite in the user cache dir.

``serve_app`` runs uvicorn in the caller's event loop and, on SIGINT or SIGTERM, stops
accepting, finishes what it can and *returns*, so the caller's ``finally`` stops what it
started (the local model's process group) before the process exits.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vex_llm.server.settings import Settings, UpstreamSettings

__all__ = [
    "OPEN_TENANT",
    "default_store_url",
    "quick_settings",
    "serve_app",
]

#: The tenant every client of the quick path and the embedded defaults belongs to.
OPEN_TENANT = "local"


def default_store_url() -> str:
    """``sqlite:///<user cache dir>/vex-llm/cache.db`` (the directory is created)."""
    try:
        import platformdirs
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "vex-llm serve needs the server extra: pip install 'vex-llm[server]'"
        ) from exc
    folder = Path(platformdirs.user_cache_dir("vex-llm"))
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'cache.db').resolve()}"


def quick_settings(
    *,
    model: str,
    base_url: str,
    kind: str = "openai",
    api_key_env: str | None = None,
    store_url: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    admin_key_hashes: tuple[bytes, ...] = (),
) -> Settings:
    """Settings for one upstream, open to any client key as tenant ``local`` (loopback only)."""
    upstream = UpstreamSettings(
        name=model, kind=kind, base_url=base_url, model=model, api_key_env=api_key_env
    )
    return Settings(
        upstreams=(upstream,),
        tenants=(),
        open_tenant=OPEN_TENANT,
        admin_key_hashes=admin_key_hashes,
        store_url=store_url,
        host=host,
        port=port,
    )


def _uvicorn() -> Any:
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "vex-llm serve needs the server extra: pip install 'vex-llm[server]'"
        ) from exc
    return uvicorn


async def serve_app(app: Any, host: str, port: int, *, log_level: str = "info") -> None:
    """Serve ``app`` until SIGINT/SIGTERM (or an error); return after a graceful stop."""
    uvicorn = _uvicorn()

    class _Server(uvicorn.Server):  # type: ignore[misc, name-defined]
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn's own version re-raises the signal after shutdown, which for SIGTERM
            # kills the process before the caller can stop its child processes.
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            sigs = (signal.SIGINT, signal.SIGTERM)
            originals = {sig: signal.signal(sig, self.handle_exit) for sig in sigs}
            try:
                yield
            finally:
                for sig, handler in originals.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, ws="none", lifespan="on"
    )
    server = _Server(config)
    await server.serve()
    if not server.started and not server.should_exit:
        raise OSError(f"could not serve on {host}:{port} (is the port in use?)")
