"""Streaming through the proxy: replayed hits, shared upstream streams, disconnects, failures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai

from tests.gated_store import GatedWrites
from tests.server.conftest import KEY_A, MODEL, make_settings, proxy
from vex_llm import (
    Chunk,
    LLMProvider,
    LLMRequest,
    LLMResponse,
    MemoryStore,
    MockProvider,
    ServerError,
    Usage,
)
from vex_llm.server.app import create_app

MESSAGES = [{"role": "user", "content": "Stream me a story."}]
AUTH = {"Authorization": f"Bearer {KEY_A}"}


class SlowStream(LLMProvider):
    """Streams ``pieces`` with a pause between them; can fail after ``fail_after`` pieces."""

    def __init__(self, pieces: list[str], pause: float = 0.05, fail_after: int | None = None):
        self.pieces = pieces
        self.pause = pause
        self.fail_after = fail_after
        self.calls = 0

    def name(self) -> str:
        return "slow"

    async def is_available(self) -> bool:
        return True

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.calls += 1
        return LLMResponse("".join(self.pieces), "slow", Usage(1, len(self.pieces)))

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        self.calls += 1
        for i, piece in enumerate(self.pieces):
            if self.fail_after is not None and i == self.fail_after:
                raise ServerError(500, "upstream died")
            await asyncio.sleep(self.pause)
            yield Chunk(piece, model="slow")
        yield Chunk("", finish_reason="stop", usage=Usage(1, len(self.pieces)), model="slow")


def body(stream: bool = True, **extra: object) -> dict[str, object]:
    return {"model": MODEL, "messages": MESSAGES, "stream": stream, **extra}


def _scope(request: bytes) -> dict[str, object]:
    """The ASGI scope of a chat completion POST of ``request`` by tenant A."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"authorization", f"Bearer {KEY_A}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(request)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }


@dataclass
class Exchange:
    """One request to the app called as ASGI: the messages it sent, an event set when its
    response ended, and the handler's task (which may go on after that)."""

    sent: list[dict[str, Any]]
    ended: asyncio.Event
    task: asyncio.Task[None]

    @property
    def start(self) -> dict[str, Any]:
        """The ``http.response.start`` message."""
        assert self.sent[0]["type"] == "http.response.start"
        return self.sent[0]

    def bodies(self) -> list[bytes]:
        """The non-empty bodies, in order."""
        return [m["body"] for m in self.sent if m["type"] == "http.response.body" and m["body"]]


def exchange(app: Any, request: bytes, *headers: tuple[bytes, bytes]) -> Exchange:
    """Start ``request`` (a chat completion body) with ``headers`` added; a client that
    never leaves."""
    sent: list[dict[str, Any]] = []
    ended = asyncio.Event()
    incoming = [{"type": "http.request", "body": request, "more_body": False}]

    async def receive() -> dict[str, object]:
        if incoming:
            return incoming.pop()
        await asyncio.sleep(3600)  # the client never leaves
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            ended.set()

    scope = _scope(request)
    scope["headers"] = [*scope["headers"], *headers]  # type: ignore[misc]
    return Exchange(sent, ended, asyncio.create_task(app(scope, receive, send)))


async def test_second_stream_is_a_replayed_hit_identical_to_the_first() -> None:
    upstream = MockProvider.constant("Once upon a time, a cache kept every answer.", chunk_size=5)
    async with proxy(upstream) as base:
        c = openai.AsyncOpenAI(base_url=base, api_key=KEY_A, max_retries=0)
        runs = []
        for _ in range(2):
            raw = await c.chat.completions.with_raw_response.create(
                model=MODEL, messages=MESSAGES, stream=True,  # type: ignore[arg-type]
                stream_options={"include_usage": True},
            )  # fmt: skip
            deltas, finish, usage = [], None, None
            async for event in raw.parse():
                if event.choices:
                    deltas.append(event.choices[0].delta.content)
                    finish = event.choices[0].finish_reason or finish
                if event.usage is not None:
                    usage = event.usage.total_tokens
            runs.append((raw.headers["x-vex-cache"], deltas, finish, usage))
        await c.close()
    (o1, d1, f1, u1), (o2, d2, f2, u2) = runs
    assert (o1, o2) == ("miss", "hit")
    assert d1 == d2
    assert "".join(filter(None, d1)) == "Once upon a time, a cache kept every answer."
    assert len([d for d in d1 if d]) > 1
    assert (f1, u1) == (f2, u2) == ("stop", u1)
    assert u1
    assert upstream.calls == 1


async def read_events(response: httpx.Response, limit: int | None = None) -> list[str]:
    events = []
    async for line in response.aiter_lines():
        if line.startswith("data: "):
            events.append(line[6:])
            if limit is not None and len(events) >= limit:
                break
    return events


async def test_a_client_leaving_mid_stream_does_not_break_the_shared_stream() -> None:
    upstream = SlowStream([f"piece{i} " for i in range(10)])
    async with proxy(upstream) as base, httpx.AsyncClient(base_url=base, headers=AUTH) as c:
        # Handshakes, not sleeps: the second client joins while the first is reading, and
        # the first leaves only once the second has joined (a loaded machine keeps order).
        first_read, joined = asyncio.Event(), asyncio.Event()

        async def leaver() -> list[str]:
            events: list[str] = []
            async with c.stream("POST", "/chat/completions", json=body()) as response:
                async for line in response.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    events.append(line[6:])
                    if len(events) == 1:
                        first_read.set()
                        await joined.wait()
                    if len(events) == 2:
                        return events
            return events

        async def stayer() -> tuple[str, list[str]]:
            await first_read.wait()
            async with c.stream("POST", "/chat/completions", json=body()) as response:
                joined.set()
                return response.headers["x-vex-cache"], await read_events(response)

        left, (outcome, stayed) = await asyncio.gather(leaver(), stayer())
        assert len(left) == 2
        assert outcome == "coalesced"
        assert stayed[-1] == "[DONE]"
        text = "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in stayed[:-1])
        assert text == "".join(upstream.pieces)
        after = await c.post("/chat/completions", json=body(stream=False))
    assert after.headers["x-vex-cache"] == "hit"
    assert upstream.calls == 1


async def test_a_stream_failing_midway_sends_an_error_event_and_stores_nothing() -> None:
    upstream = SlowStream(["a ", "b ", "c "], pause=0.0, fail_after=2)
    async with proxy(upstream) as base, httpx.AsyncClient(base_url=base, headers=AUTH) as c:
        async with c.stream("POST", "/chat/completions", json=body()) as response:
            assert response.status_code == 200
            events = await read_events(response)
        assert "[DONE]" not in events
        error = json.loads(events[-1])["error"]
        assert error["code"] == "upstream_error"
        # The text that came before the failure reaches the client, even when it was still
        # waiting to be written with the next chunks at hand.
        text = [json.loads(e)["choices"][0]["delta"].get("content") for e in events[:-1]]
        assert "".join(t or "" for t in text) == "a b "
        again = await c.post("/chat/completions", json=body(stream=False))
    assert again.headers["x-vex-cache"] == "miss"
    assert upstream.calls == 2


async def test_stream_only_if_cached_miss_is_504_before_any_event() -> None:
    upstream = MockProvider.constant("x")
    async with proxy(upstream) as base, httpx.AsyncClient(base_url=base, headers=AUTH) as c:
        response = await c.post(
            "/chat/completions", json=body(), headers={"Cache-Control": "only-if-cached"}
        )
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "cache_miss"
    assert upstream.calls == 0


class PausedFinal(SlowStream):
    """Like SlowStream, but the terminal chunk too comes after a pause, and closing takes a
    moment (an HTTP provider releasing its connection)."""

    async def stream(self, request: LLMRequest) -> AsyncIterator[Chunk]:
        try:
            async for chunk in super().stream(request):
                if chunk.is_final:
                    await asyncio.sleep(self.pause)
                yield chunk
        finally:
            await asyncio.sleep(self.pause)


async def test_a_live_stream_sends_its_terminal_chunk_with_the_done_line() -> None:
    # The terminal chunk carries no text; the client is done only at [DONE]: one write for
    # both, not two. Called as ASGI to see each body message.
    app = create_app(
        make_settings(),
        {MODEL: PausedFinal(["Once", " upon"], pause=0.02)},
        MemoryStore(100, 1 << 20),
    )
    call = exchange(app, json.dumps(body()).encode())
    await call.task
    last = call.bodies()[-1].decode()
    assert '"finish_reason":"stop"' in last
    assert last.endswith("data: [DONE]\n\n")
    assert "upon" not in last  # the text before it went out as it came


async def test_a_stream_miss_ends_its_response_before_the_answer_is_stored() -> None:
    # The client's last byte does not wait for the bookkeeping: the response is complete
    # while the store write still waits; once stored, the same request is a hit.
    store = GatedWrites(100, 1 << 20)
    app = create_app(
        make_settings(), {MODEL: MockProvider.constant("Once upon a time", chunk_size=4)}, store
    )
    request = json.dumps(body()).encode()
    first = exchange(app, request)
    async with asyncio.timeout(5):
        await first.ended.wait()  # the response is whole...
        await store.writing.wait()  # ...while the answer is still being stored
    assert not first.task.done()  # the handler waits for that write
    assert b"".join(first.bodies()).endswith(b"data: [DONE]\n\n")
    store.gate.set()
    await first.task

    again = exchange(app, request)
    await again.task
    assert (b"x-vex-cache", b"hit") in again.start["headers"]


async def test_a_request_while_a_stream_miss_is_being_stored_is_a_hit() -> None:
    # The response ends before the store write is over (SQLite, Redis: a thread hop or a
    # round trip): the client's next identical request, or an only-if-cached one, comes
    # meanwhile and must find the answer as it will be stored, not join the finished call
    # (coalesced) or miss.
    store = GatedWrites()
    app = create_app(
        make_settings(), {MODEL: MockProvider.constant("Once upon a time", chunk_size=4)}, store
    )
    streamed = json.dumps(body()).encode()
    only_if_cached = json.dumps(body(stream=False)).encode()
    first = exchange(app, streamed)
    async with asyncio.timeout(5):
        await first.ended.wait()
        await store.writing.wait()  # the write is under way, held at the gate
    again = exchange(app, streamed)
    only = exchange(app, only_if_cached, (b"cache-control", b"only-if-cached"))
    async with asyncio.timeout(5):
        await again.ended.wait()
        await only.ended.wait()

    assert (b"x-vex-cache", b"hit") in again.start["headers"]
    assert b"".join(again.bodies()).count(b"data: ") == b"".join(first.bodies()).count(b"data: ")
    assert only.start["status"] == 200
    assert (b"x-vex-cache", b"hit") in only.start["headers"]
    answer = json.loads(b"".join(only.bodies()))
    assert answer["choices"][0]["message"]["content"] == "Once upon a time"
    store.gate.set()
    await asyncio.gather(first.task, again.task, only.task)
