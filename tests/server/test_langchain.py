"""LangChain's ``ChatOpenAI`` (langchain-openai) through the proxy, as a real app would use it.

Tool binding, structured output (every method LangChain has) and streaming each reach a fake
OpenAI upstream exactly as LangChain sent them, come back as the upstream answered, and repeat
as hits that never reach the upstream. The fake's answers depend on the request (the question,
the tool, the schema), and every answer has its own ``id``, so a wrong forward or a hit served
from the wrong entry shows. LangChain's async API throughout: the proxy runs in the test's loop.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, BaseMessageChunk
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from vex_llm import OpenAICompatibleProvider

from .conftest import KEY_A, MODEL, proxy, serve


class Weather(BaseModel):
    """The weather in a city."""

    city: str
    degrees: int


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def _fill(schema: dict[str, Any], text: str) -> Any:
    """A value of ``schema`` made from ``text``: a lost or changed schema changes the answer."""
    kind = schema.get("type")
    if kind == "object":
        return {name: _fill(sub, text) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [_fill(schema.get("items", {}), text)]
    if kind == "integer":
        return len(text)
    if kind == "number":
        return len(text) / 2
    if kind == "boolean":
        return True
    return text


class LangChainUpstream:
    """A fake OpenAI upstream: tool calls, json_schema and json_object, text, streamed or not."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    @property
    def calls(self) -> int:
        return len(self.bodies)

    def _message(self, doc: dict[str, Any]) -> dict[str, Any]:
        text = doc["messages"][-1]["content"]
        tools = doc.get("tools") or []
        choice = doc.get("tool_choice", "auto")
        if tools and choice != "none":
            named = choice["function"]["name"] if isinstance(choice, dict) else None
            function = next(t["function"] for t in tools if named in (None, t["function"]["name"]))
            arguments = json.dumps(_fill(function["parameters"], text))
            call = {
                "id": f"call_{self.calls}",
                "type": "function",
                "function": {"name": function["name"], "arguments": arguments},
            }
            return {"role": "assistant", "content": None, "tool_calls": [call]}
        fmt = doc.get("response_format") or {"type": "text"}
        if fmt["type"] == "json_schema":
            content = json.dumps(_fill(fmt["json_schema"]["schema"], text))
        elif fmt["type"] == "json_object":  # the schema is in the prompt, not the request
            content = json.dumps({"city": text, "degrees": -len(text)})
        else:
            content = f"echo: {text}"
        return {"role": "assistant", "content": content, "refusal": None, "annotations": []}

    async def chat(self, request: Request) -> Response:
        doc = await request.json()
        self.bodies.append(doc)
        message = self._message(doc)
        head = {
            "id": f"chatcmpl-{self.calls}",  # each answer its own: a hit shows whose it is
            "created": 1_750_000_000 + self.calls,
            "model": f"{doc['model']}-2025-01-01",
            "system_fingerprint": "fp_lc",
        }
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        if doc.get("stream"):
            events = _events(head, message, finish, usage, doc.get("stream_options") or {})
            return StreamingResponse(events, media_type="text/event-stream")
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        body = {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
        return JSONResponse(body)


async def _events(
    head: dict[str, Any],
    message: dict[str, Any],
    finish: str,
    usage: dict[str, int],
    options: dict[str, Any],
) -> AsyncIterator[bytes]:
    """OpenAI's chunks: role first, text in 4-character pieces, tool-call argument fragments."""

    def event(delta: dict[str, Any] | None, finish_reason: str | None = None) -> bytes:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": None}]
        if choices and finish_reason:
            choices[0]["finish_reason"] = finish_reason
        body = {**head, "object": "chat.completion.chunk", "choices": choices}
        if delta is None:
            body["usage"] = usage
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    text: str = message.get("content") or ""
    yield event({"role": "assistant", "content": None if message.get("tool_calls") else ""})
    for start in range(0, len(text), 4):
        yield event({"content": text[start : start + 4]})
    for k, call in enumerate(message.get("tool_calls") or []):
        function = call["function"]
        opening = {"name": function["name"], "arguments": ""}
        yield event(
            {
                "tool_calls": [
                    {"index": k, "id": call["id"], "type": "function", "function": opening}
                ]
            }
        )
        for start in range(0, len(function["arguments"]), 5):
            piece = {"arguments": function["arguments"][start : start + 5]}
            yield event({"tool_calls": [{"index": k, "function": piece}]})
    yield event({}, finish)
    if options.get("include_usage"):
        yield event(None)
    yield b"data: [DONE]\n\n"


@dataclass
class Rig:
    """The fake upstream, a ChatOpenAI through the proxy, and the bodies LangChain sent."""

    upstream: LangChainUpstream
    llm: ChatOpenAI
    proxy_url: str
    sent: list[dict[str, Any]] = field(default_factory=list)

    async def hits(self) -> int:
        async with httpx.AsyncClient() as client:
            stats = await client.get(
                f"{self.proxy_url}/cache/stats", headers={"authorization": f"Bearer {KEY_A}"}
            )
        hits: int = stats.json()["hits"]
        return hits


@contextlib.asynccontextmanager
async def rig(headers: bool = True) -> AsyncIterator[Rig]:
    """``headers``: LangChain puts the response headers in ``response_metadata`` (it warns,
    and the suite makes warnings errors, when a streamed call has a ``response_format``)."""
    upstream = LangChainUpstream()
    sent: list[dict[str, Any]] = []

    async def record(request: httpx.Request) -> None:
        sent.append(json.loads(request.content))

    async with serve(upstream.app) as upstream_url:
        provider = OpenAICompatibleProvider(f"{upstream_url}/v1", model=MODEL)
        async with (
            proxy(provider) as proxy_url,
            httpx.AsyncClient(event_hooks={"request": [record]}) as http,
        ):
            llm = ChatOpenAI(
                model=MODEL,
                base_url=proxy_url,
                api_key=KEY_A,  # type: ignore[arg-type]
                max_retries=0,
                timeout=10,
                include_response_headers=headers,
                http_async_client=http,
            )
            yield Rig(upstream, llm, proxy_url, sent)


def _travel(body: dict[str, Any]) -> dict[str, Any]:
    """A body minus how it travels, which the proxy decides upstream: it always asks a stream's
    usage (and drops it on the way back unless asked) and leaves out ``stream: false``."""
    return {k: v for k, v in body.items() if k not in ("stream", "stream_options")}


def _same_answer(a: AIMessage, b: AIMessage) -> None:
    """Equal in everything the upstream said (its ``id`` is in ``response_metadata``; the
    message ``id`` is LangChain's run id); only the proxy's own headers may differ."""
    assert (a.content, a.tool_calls, a.usage_metadata) == (
        b.content,
        b.tool_calls,
        b.usage_metadata,
    )
    meta_a = {k: v for k, v in a.response_metadata.items() if k != "headers"}
    meta_b = {k: v for k, v in b.response_metadata.items() if k != "headers"}
    assert meta_a == meta_b
    assert meta_a["id"] == "chatcmpl-1"  # the first answer's, not a second one's


def _merged(chunks: Sequence[BaseMessage]) -> AIMessageChunk:
    """A stream's chunks added up (``astream`` is typed as yielding whole messages)."""
    whole = chunks[0]
    assert isinstance(whole, AIMessageChunk)
    for chunk in chunks[1:]:
        assert isinstance(chunk, AIMessageChunk)
        whole += chunk
    return whole


def _said(chunk: AIMessageChunk) -> tuple[Any, ...]:
    """What the upstream said in a stream (LangChain does not expose a streamed ``id``)."""
    meta = {k: v for k, v in chunk.response_metadata.items() if k != "headers"}
    return (chunk.content, chunk.tool_calls, chunk.tool_call_chunks, chunk.usage_metadata, meta)


def _outcome(message: AIMessage | BaseMessageChunk) -> str:
    outcome: str = message.response_metadata["headers"]["x-vex-cache"]
    return outcome


async def test_bind_tools_returns_the_tool_call_and_repeats_as_a_hit() -> None:
    async with rig() as r:
        bound = r.llm.bind_tools([get_weather], tool_choice="required")
        first = await bound.ainvoke("Weather in Paris?")
        second = await bound.ainvoke("Weather in Paris?")
        assert isinstance(first, AIMessage)
        assert isinstance(second, AIMessage)
        assert r.upstream.calls == 1
        # Every field LangChain sent, unchanged.
        assert _travel(r.upstream.bodies[0]) == _travel(r.sent[0])
        assert r.upstream.bodies[0]["tool_choice"] == "required"
    assert first.tool_calls == [
        {
            "name": "get_weather",
            "args": {"city": "Weather in Paris?"},
            "id": "call_1",
            "type": "tool_call",
        }
    ]
    assert first.response_metadata["finish_reason"] == "tool_calls"
    assert (_outcome(first), _outcome(second)) == ("miss", "hit")
    _same_answer(first, second)


async def test_streamed_tool_call_assembles_and_replays_from_the_cache() -> None:
    async with rig() as r:
        bound = r.llm.bind_tools([get_weather])
        streams: list[tuple[str, AIMessageChunk]] = []
        for _ in range(2):
            chunks = [c async for c in bound.astream("Weather in Oslo?")]
            assert len(chunks) > 3  # argument fragments, not one blob
            streams.append((_outcome(chunks[0]), _merged(chunks)))
        # A JSON call for the same question: a hit on the stored stream, the same call.
        joined = await bound.ainvoke("Weather in Oslo?")
        assert r.upstream.calls == 1
        assert _travel(r.upstream.bodies[0]) == _travel(r.sent[0])
    (o1, s1), (o2, s2) = streams
    assert (o1, o2) == ("miss", "hit")
    assert s1.tool_calls == [
        {
            "name": "get_weather",
            "args": {"city": "Weather in Oslo?"},
            "id": "call_1",
            "type": "tool_call",
        }
    ]
    assert _said(s2) == _said(s1)
    assert isinstance(joined, AIMessage)
    assert _outcome(joined) == "hit"
    assert (joined.response_metadata["id"], joined.tool_calls) == ("chatcmpl-1", s1.tool_calls)


# What langchain-openai 1.x sends for each method of with_structured_output.
STRUCTURED = {
    "json_schema": lambda body: (
        body["response_format"]["type"] == "json_schema"
        and body["response_format"]["json_schema"]["name"] == "Weather"
        and "tools" not in body
    ),
    "json_mode": lambda body: (
        body["response_format"] == {"type": "json_object"} and "tools" not in body
    ),
    "function_calling": lambda body: (
        body["tools"][0]["function"]["name"] == "Weather"
        and body["tool_choice"]["function"]["name"] == "Weather"
        and "response_format" not in body
    ),
}


@pytest.mark.parametrize("method", list(STRUCTURED))
async def test_structured_output_is_parsed_and_repeats_as_a_hit(method: str) -> None:
    question = "Weather in Rome as JSON with city and degrees."
    async with rig() as r:
        structured = r.llm.with_structured_output(Weather, method=method, include_raw=True)  # type: ignore[arg-type]
        first = await structured.ainvoke(question)
        second = await structured.ainvoke(question)
        assert r.upstream.calls == 1
        body = r.upstream.bodies[0]
        assert _travel(body) == _travel(r.sent[0])
        assert STRUCTURED[method](body), body
        assert await r.hits() == 1
    assert isinstance(first, dict)
    assert isinstance(second, dict)
    assert first["parsing_error"] is None
    degrees = -len(question) if method == "json_mode" else len(question)
    assert first["parsed"] == Weather(city=question, degrees=degrees)
    assert second["parsed"] == first["parsed"]
    assert (_outcome(first["raw"]), _outcome(second["raw"])) == ("miss", "hit")
    _same_answer(first["raw"], second["raw"])


# langchain-openai dumps the SDK's parsed stream events with pydantic, which warns about the
# parsed model it finds in them: LangChain's own noise, whatever the upstream answers.
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
async def test_streamed_structured_output_is_a_hit_on_the_stored_answer() -> None:
    question = "Weather in Lima?"
    async with rig(headers=False) as r:
        structured = r.llm.with_structured_output(Weather)
        first = await structured.ainvoke(question)
        streamed = [part async for part in structured.astream(question)]
        again = [part async for part in structured.astream(question)]
        assert r.upstream.calls == 1
        assert await r.hits() == 2
    assert first == Weather(city=question, degrees=len(question))
    assert streamed[-1] == again[-1] == first


async def test_stream_yields_the_text_and_repeats_as_a_hit() -> None:
    async with rig() as r:
        runs = []
        for _ in range(2):
            chunks = [c async for c in r.llm.astream("Say hello to Ada")]
            runs.append((_outcome(chunks[0]), _said(_merged(chunks)), len(chunks)))
        # The same question as one JSON answer: a hit on the recorded stream.
        whole = await r.llm.ainvoke("Say hello to Ada")
        assert r.upstream.calls == 1
        assert r.upstream.bodies[0]["stream"] is True
        assert _travel(r.upstream.bodies[0]) == _travel(r.sent[0])
    (o1, said1, n1), (o2, said2, n2) = runs
    assert (o1, o2) == ("miss", "hit")
    assert said1[0] == "echo: Say hello to Ada"
    assert said1 == said2
    assert n1 == n2 > 3  # replayed chunk for chunk, not one blob
    assert isinstance(whole, AIMessage)
    assert (_outcome(whole), whole.content) == ("hit", said1[0])
    assert whole.response_metadata["id"] == "chatcmpl-1"
