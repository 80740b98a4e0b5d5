"""The proxy in front of a real ``OpenAICompatibleProvider`` talking to a faulty fake upstream."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from tests.server.conftest import KEY_A, make_settings, serve
from tests.server.fake_upstream import FakeUpstream
from vex_llm import MemoryStore
from vex_llm.server.app import create_app
from vex_llm.server.settings import UpstreamSettings

UPSTREAM_SECRET = "sk-upstream-SECRET-4242"
AUTH = {"Authorization": f"Bearer {KEY_A}"}


@contextlib.asynccontextmanager
async def proxied(
    monkeypatch: pytest.MonkeyPatch, upstream_timeout: float = 5.0
) -> AsyncIterator[tuple[FakeUpstream, str]]:
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", UPSTREAM_SECRET)
    fake = FakeUpstream()
    async with serve(fake.app) as upstream_url:
        upstream = UpstreamSettings(
            name="fake",
            kind="openai",
            base_url=upstream_url + "/v1",
            model="fake",
            api_key_env="FAKE_UPSTREAM_KEY",
            timeout=upstream_timeout,
            retry=None,  # these tests are about passing failures on (retries: tests/resilience)
        )
        settings = make_settings(upstreams=(upstream,), retry_after_cap=60.0)
        app = create_app(settings, store=MemoryStore(100))
        async with serve(app) as base:
            yield fake, base + "/v1"


def ask(text: str, stream: bool = False) -> dict[str, object]:
    return {"model": "fake", "messages": [{"role": "user", "content": text}], "stream": stream}


async def test_answers_are_cached_and_the_upstream_key_stays_inside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with proxied(monkeypatch) as (fake, base):
        c = openai.AsyncOpenAI(base_url=base, api_key=KEY_A, max_retries=0)
        first = await c.chat.completions.with_raw_response.create(**ask("hello"))  # type: ignore[call-overload]
        second = await c.chat.completions.with_raw_response.create(**ask("hello"))  # type: ignore[call-overload]
        await c.close()
    assert (first.headers["x-vex-cache"], second.headers["x-vex-cache"]) == ("miss", "hit")
    assert second.parse().choices[0].message.content == "echo: hello"
    assert fake.calls == 1
    # The upstream saw the proxy's key, never the client's; the client never saw the proxy's.
    assert fake.authorizations == [f"Bearer {UPSTREAM_SECRET}"]
    for response in (first, second):
        assert UPSTREAM_SECRET not in response.http_response.text
        assert UPSTREAM_SECRET not in str(response.headers)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(
    ("prompt", "status", "retry_after"),
    [("fault:429", 429, "60"), ("fault:500", 502, None), ("fault:slow", 504, None)],
)
async def test_upstream_faults_are_passed_on_not_retried_not_stored(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    prompt: str,
    status: int,
    retry_after: str | None,
    stream: bool,
) -> None:
    """A stream waits for the upstream's first event before its status line: a failure
    before it gets the same status, headers and error body as a JSON request."""
    caplog.set_level(logging.DEBUG)
    async with (
        proxied(monkeypatch, upstream_timeout=0.3) as (fake, base),
        httpx.AsyncClient(base_url=base, headers=AUTH, timeout=10) as c,
    ):
        responses = [await c.post("/chat/completions", json=ask(prompt, stream)) for _ in range(2)]
    for response in responses:
        assert response.status_code == status, response.text
        assert response.headers.get("retry-after") == retry_after
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
        assert UPSTREAM_SECRET not in response.text
    assert fake.calls == 2  # one upstream call per request: no retries, nothing cached
    assert UPSTREAM_SECRET not in caplog.text
    if status == 502:
        assert "[redacted]" in responses[0].json()["error"]["message"]


async def test_a_stream_cut_midway_is_not_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    async with (
        proxied(monkeypatch) as (fake, base),
        httpx.AsyncClient(base_url=base, headers=AUTH, timeout=10) as c,
    ):
        for _ in range(2):
            async with c.stream("POST", "/chat/completions", json=ask("fault:cut", True)) as r:
                assert r.status_code == 200
                assert r.headers["x-vex-cache"] == "miss"
                lines = [line async for line in r.aiter_lines() if line.startswith("data: ")]
            assert "data: [DONE]" not in lines
            assert "error" in json.loads(lines[-1][6:])
        good = [await c.post("/chat/completions", json=ask("fine", True)) for _ in range(2)]
    assert fake.calls == 3
    assert [r.headers["x-vex-cache"] for r in good] == ["miss", "hit"]
    assert good[0].text.replace("chatcmpl", "").count("data:") >= 3


@pytest.mark.parametrize("stream", [False, True])
async def test_a_successful_answer_echoing_the_upstream_key_is_scrubbed_on_miss_and_hit(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, stream: bool
) -> None:
    caplog.set_level(logging.DEBUG)
    async with (
        proxied(monkeypatch) as (fake, base),
        httpx.AsyncClient(base_url=base, headers=AUTH, timeout=10) as c,
    ):
        responses = [
            await c.post("/chat/completions", json=ask("fault:echo", stream)) for _ in range(2)
        ]
    assert [r.headers["x-vex-cache"] for r in responses] == ["miss", "hit"]
    assert fake.calls == 1
    for response in responses:
        assert response.status_code == 200
        assert UPSTREAM_SECRET not in response.text
        assert "[redacted]" in response.text
    assert UPSTREAM_SECRET not in caplog.text


def test_an_oversized_answer_is_a_clear_502() -> None:
    from vex_llm import AnswerTooLarge
    from vex_llm.server.failures import failure_for

    failure = failure_for(AnswerTooLarge("the answer is larger than the limit"), retry_after_cap=1)
    assert (failure.status, failure.code) == (502, "upstream_answer_too_large")


@pytest.mark.parametrize("stream", [False, True])
async def test_a_gzip_bomb_from_the_upstream_is_a_502_not_20_mb(
    monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    async with (
        proxied(monkeypatch) as (_, base),
        httpx.AsyncClient(base_url=base, headers=AUTH, timeout=10) as c,
    ):
        bombed = await c.post("/chat/completions", json=ask("fault:bomb", stream))
        fine = await c.post("/chat/completions", json=ask("fine"))
    assert bombed.status_code == 502, bombed.text
    assert bombed.json()["error"]["code"] == "upstream_answer_too_large"
    assert fine.status_code == 200
