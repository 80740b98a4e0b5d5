"""Embeddings over HTTP: OpenAI's ``/embeddings`` and Ollama's ``/api/embed``, against fakes
(httpx's ``MockTransport``): what is sent, how answers are read, what is refused."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from vex_llm import CachedProvider, OllamaProvider, OpenAICompatibleProvider
from vex_llm.embeddings import EmbeddingRequest
from vex_llm.errors import InvalidResponse, RequestFailed, UnsupportedFeature


def _client(answer: Any, seen: list[dict[str, Any]], status: int = 200) -> httpx.AsyncClient:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append({"path": request.url.path, "body": json.loads(request.content)})
        body = answer(seen[-1]["body"]) if callable(answer) else answer
        return httpx.Response(status, json=body, headers={"x-request-id": "req-1"})

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


def _openai_answer(body: dict[str, Any]) -> dict[str, Any]:
    data = [
        {"object": "embedding", "index": i, "embedding": [float(i), 0.5]}
        for i in range(len(body["input"]))
    ]
    return {
        "object": "list",
        "data": list(reversed(data)),  # any order: the index says where each goes
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 7, "total_tokens": 7},
    }


async def test_openai_compatible_embeddings() -> None:
    seen: list[dict[str, Any]] = []
    async with _client(_openai_answer, seen) as http:
        provider = OpenAICompatibleProvider("http://up/v1", "sk-x", "emb", http_client=http)
        request = EmbeddingRequest(["a", "b"], extra={"user": "u1"})  # type: ignore[arg-type]
        response = await provider.embed(request)
    assert seen == [
        {
            "path": "/v1/embeddings",
            "body": {"user": "u1", "model": "emb", "input": ["a", "b"], "encoding_format": "float"},
        }
    ]
    assert response.vectors == [(0.0, 0.5), (1.0, 0.5)]
    assert response.model == "text-embedding-3-small"
    assert response.usage.prompt_tokens == 7
    assert ("x-request-id", "req-1") in response.headers


async def test_token_arrays_and_dimensions_are_sent() -> None:
    seen: list[dict[str, Any]] = []

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        return {"data": [{"index": 0, "embedding": [0.1] * body["dimensions"]}], "model": "m"}

    async with _client(answer, seen) as http:
        provider = OpenAICompatibleProvider("http://up/v1", None, "emb", http_client=http)
        response = await provider.embed(EmbeddingRequest([[1, 2, 3]], dimensions=3))
    assert seen[0]["body"]["input"] == [[1, 2, 3]]
    assert seen[0]["body"]["dimensions"] == 3
    assert response.usage.prompt_tokens == 0  # the upstream did not say


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"data": [{"index": 0, "embedding": [1.0, 2.0]}]}, UnsupportedFeature),  # ignored dims
        ({"data": []}, InvalidResponse),
        ({"data": [{"index": 3, "embedding": [1.0, 2.0, 3.0]}]}, InvalidResponse),
        ({"data": [{"index": 0, "embedding": ["x", 1, 2]}]}, InvalidResponse),
        ({"nothing": True}, InvalidResponse),
    ],
)
async def test_bad_answers_are_refused(answer: dict[str, Any], error: type[Exception]) -> None:
    async with _client(answer, []) as http:
        provider = OpenAICompatibleProvider("http://up/v1", None, "emb", http_client=http)
        cached = CachedProvider(provider)
        with pytest.raises(error):
            await cached.embed(EmbeddingRequest(["a"], dimensions=3))
        assert cached.stats().entries == 0


async def test_an_upstream_4xx_is_request_failed() -> None:
    async with _client({"error": {"message": "bad"}}, [], status=400) as http:
        provider = OpenAICompatibleProvider("http://up/v1", None, "emb", http_client=http)
        with pytest.raises(RequestFailed):
            await provider.embed(EmbeddingRequest(["a"]))


async def test_ollama_embed() -> None:
    seen: list[dict[str, Any]] = []

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        return {
            "model": body["model"],
            "embeddings": [[0.25, float(len(text))] for text in body["input"]],
            "prompt_eval_count": 4,
        }

    async with _client(answer, seen) as http:
        provider = OllamaProvider("http://ollama:11434", "nomic-embed-text", http_client=http)
        cached = CachedProvider(provider)
        request = EmbeddingRequest(["ab", "c"], extra={"user": "u", "truncate": True})  # type: ignore[arg-type]
        response = await cached.embed(request)
        # ``truncate`` may change a vector, so it is keyed; ``user`` is not.
        again = await cached.embed_result(
            EmbeddingRequest(["c", "dddd"], extra={"truncate": True})  # type: ignore[arg-type]
        )
    assert seen[0] == {
        "path": "/api/embed",
        "body": {"truncate": True, "model": "nomic-embed-text", "input": ["ab", "c"]},
    }
    assert response.vectors == [(0.25, 2.0), (0.25, 1.0)]
    assert response.usage.prompt_tokens == 4
    assert seen[1]["body"]["input"] == ["dddd"]
    assert again.outcome == "partial"


async def test_ollama_refuses_token_arrays_before_any_io() -> None:
    seen: list[dict[str, Any]] = []
    async with _client({}, seen) as http:
        provider = OllamaProvider("http://ollama:11434", "m", http_client=http)
        with pytest.raises(UnsupportedFeature, match="input"):
            await provider.embed(EmbeddingRequest([[1, 2]]))
    assert seen == []
