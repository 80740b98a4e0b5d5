"""OllamaProvider against a loopback server speaking Ollama's native ``/api/chat`` format."""

from __future__ import annotations

import pytest

from vex_llm import InvalidResponse, LLMRequest, OllamaProvider, Timeout, Usage

from .fakes import LoopbackServer, Recorded, Reply, json_reply, ndjson


def part(text: str) -> dict[str, object]:
    return {
        "model": "llama3.2",
        "created_at": "2024-07-01T00:00:00Z",
        "message": {"role": "assistant", "content": text},
        "done": False,
    }


FINAL = {
    "model": "llama3.2",
    "created_at": "2024-07-01T00:00:01Z",
    "message": {"role": "assistant", "content": ""},
    "done": True,
    "done_reason": "stop",
    "total_duration": 123,
    "prompt_eval_count": 26,
    "eval_count": 4,
}


async def test_complete_maps_options_and_counts_tokens() -> None:
    answer = {**FINAL, "message": {"role": "assistant", "content": "Bonjour"}}
    async with (
        LoopbackServer(lambda r: json_reply(answer)) as server,
        OllamaProvider(server.url, model="llama3.2") as provider,
    ):
        request = LLMRequest(
            prompt="hi",
            system="sys",
            temperature=0.2,
            max_tokens=9,
            top_p=0.5,
            stop=("x",),
            seed=1,
            presence_penalty=0.1,
            frequency_penalty=0.3,
        )
        response = await provider.complete(request)
    assert (response.content, response.usage, response.finish_reason) == (
        "Bonjour",
        Usage(26, 4),
        "stop",
    )
    (recorded,) = server.requests
    assert recorded.path == "/api/chat"
    assert recorded.json() == {
        "model": "llama3.2",
        "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}],
        "stream": False,
        "options": {
            "temperature": 0.2,
            "num_predict": 9,
            "top_p": 0.5,
            "seed": 1,
            "presence_penalty": 0.1,
            "frequency_penalty": 0.3,
            "stop": ["x"],
        },
    }


async def test_stream_is_ndjson_with_usage_on_the_done_line() -> None:
    body = ndjson(part("Bon"), part("jour"), {**FINAL, "done_reason": "length"})
    async with (
        LoopbackServer(lambda r: Reply(body=body)) as server,
        OllamaProvider(server.url) as provider,
    ):
        chunks = [c async for c in provider.stream(LLMRequest(prompt="hi", model="qwen"))]
    # One chunk per line, each keeping its line, then the terminal chunk (no raw).
    assert [c.delta for c in chunks] == ["Bon", "jour", "", ""]
    assert [c.raw for c in chunks[:-1]] == [p.decode().rstrip("\n") for p in body]  # type: ignore[union-attr]
    assert {c.raw_format for c in chunks[:-1]} == {"ollama.chat"}
    assert chunks[-1].raw is None
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].usage == Usage(26, 4)
    assert server.requests[0].json()["stream"] is True
    assert server.requests[0].json()["model"] == "qwen"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (ndjson(part("Bon"), part("jour")), "done"),  # no final line
        ([b'{"message": \n'], "not valid JSON"),
        (ndjson(part("a"), {"error": "model runner crashed"}), "model runner crashed"),
        (ndjson({"message": {"content": "x"}}), "done"),
    ],
)
async def test_malformed_streams_are_invalid(body: list[bytes | float], match: str) -> None:
    async with (
        LoopbackServer(lambda r: Reply(body=body)) as server,
        OllamaProvider(server.url) as provider,
    ):
        with pytest.raises(InvalidResponse, match=match):
            [c async for c in provider.stream(LLMRequest(prompt="hi"))]


async def test_a_partial_answer_to_a_plain_request_is_invalid() -> None:
    async with (
        LoopbackServer(lambda r: json_reply(part("half"))) as server,
        OllamaProvider(server.url) as provider,
    ):
        with pytest.raises(InvalidResponse, match="partial"):
            await provider.complete(LLMRequest(prompt="hi"))


async def test_a_slow_stream_times_out() -> None:
    body: list[bytes | float] = []
    for _ in range(20):
        body += [0.05, *ndjson(part("."))]
    async with (
        LoopbackServer(lambda r: Reply(body=body)) as server,
        OllamaProvider(server.url, timeout=0.3) as provider,
    ):
        with pytest.raises(Timeout):
            [c async for c in provider.stream(LLMRequest(prompt="hi"))]


async def test_is_available_asks_api_tags() -> None:
    def handler(request: Recorded) -> Reply:
        return json_reply({"models": []}) if request.path == "/api/tags" else Reply(404)

    async with LoopbackServer(handler) as server, OllamaProvider(server.url) as provider:
        assert await provider.is_available()
    assert server.requests[0].method == "GET"
    assert OllamaProvider().cache_identity() == ("ollama", "http://localhost:11434", "llama3.2")
