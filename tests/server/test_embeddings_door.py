"""``POST /v1/embeddings`` through the proxy with the official openai SDK and LangChain, in
front of a fake OpenAI upstream on 127.0.0.1 that records every body it receives."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vex_llm import OpenAICompatibleProvider

from .conftest import KEY_A, KEY_B, MODEL, proxy, serve

UPSTREAM_MODEL = "text-embedding-fake-002"


def _vector(item: str | list[int], size: int = 6) -> list[float]:
    """A vector that depends on the input, with every digit a float64 can show."""
    digest = hashlib.sha256(json.dumps(item).encode()).digest()
    return [int.from_bytes(digest[4 * i : 4 * i + 4], "big") / 2**32 - 0.5 for i in range(size)]


class FakeEmbeddings:
    """OpenAI's ``/v1/embeddings``: keeps every body; ``gate`` (when set) holds answers."""

    def __init__(self, *, ignore_dimensions: bool = False) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.gate: asyncio.Event | None = None
        self.arrived = asyncio.Event()
        self.ignore_dimensions = ignore_dimensions
        self.app = Starlette(routes=[Route("/v1/embeddings", self.embed, methods=["POST"])])

    @property
    def inputs(self) -> list[Any]:
        return [body["input"] for body in self.bodies]

    async def embed(self, request: Request) -> Response:
        body = await request.json()
        self.bodies.append(body)
        self.arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        items = body["input"]
        size = 6 if self.ignore_dimensions else body.get("dimensions", 6)
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(item, size)}
            for i, item in enumerate(items)
        ]
        tokens = sum(len(i) // 4 + 1 if isinstance(i, str) else len(i) for i in items)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": UPSTREAM_MODEL,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
            headers={"x-request-id": f"req-{len(self.bodies)}"},
        )


@contextlib.asynccontextmanager
async def through_proxy(fake: FakeEmbeddings) -> AsyncIterator[str]:
    async with serve(fake.app) as upstream:
        provider = OpenAICompatibleProvider(f"{upstream}/v1", model=MODEL)
        async with proxy(provider) as base:
            yield base


def _f32(values: list[float]) -> list[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


async def test_sdk_partly_cached_batch_sends_only_the_missing_inputs() -> None:
    fake = FakeEmbeddings()
    async with (
        through_proxy(fake) as base,
        openai.AsyncOpenAI(base_url=base, api_key=KEY_A, max_retries=0) as client,
    ):
        warm = await client.embeddings.create(
            model=MODEL, input=["b", "d", "e"], encoding_format="float"
        )
        assert [d.embedding for d in warm.data] == [_vector(i) for i in ("b", "d", "e")]
        batch = ["a", "b", "c", "d", "e"]
        raw = await client.embeddings.with_raw_response.create(
            model=MODEL, input=batch, encoding_format="float"
        )
        answer = raw.parse()
        assert fake.inputs == [["b", "d", "e"], ["a", "c"]]  # only the missing ones, in order
        assert raw.headers["x-vex-cache"] == "partial"
        assert raw.headers["x-vex-cache-hits"] == "3"
        assert raw.headers["x-request-id"] == "req-2"
        assert [d.index for d in answer.data] == [0, 1, 2, 3, 4]
        assert [d.embedding for d in answer.data] == [_vector(i) for i in batch]  # exact
        assert answer.model == UPSTREAM_MODEL
        assert answer.usage.prompt_tokens == 2  # what was sent: "a" and "c"
        # The SDK's default is base64: the same entries, as little-endian float32.
        decoded = await client.embeddings.create(model=MODEL, input=batch)
        assert len(fake.bodies) == 2
        assert [d.embedding for d in decoded.data] == [_f32(_vector(i)) for i in batch]
        async with httpx.AsyncClient() as http:
            got = await http.post(
                f"{base}/embeddings",
                json={"model": MODEL, "input": "c", "encoding_format": "base64"},
                headers={"authorization": f"Bearer {KEY_A}"},
            )
        item = got.json()["data"][0]
        assert isinstance(item["embedding"], str)
        raw_bytes = base64.b64decode(item["embedding"])
        assert list(struct.unpack("<6f", raw_bytes)) == _f32(_vector("c"))
        assert got.headers["x-vex-cache"] == "hit"
        assert got.json()["usage"] == {"prompt_tokens": 0, "total_tokens": 0}


async def test_token_arrays_and_tenants() -> None:
    fake = FakeEmbeddings()
    async with (
        through_proxy(fake) as base,
        openai.AsyncOpenAI(base_url=base, api_key=KEY_A, max_retries=0) as a,
        openai.AsyncOpenAI(base_url=base, api_key=KEY_B, max_retries=0) as b,
    ):
        one = await a.embeddings.create(model=MODEL, input=[[1, 2], [3]], encoding_format="float")
        assert one.data[1].embedding == _vector([3])
        await a.embeddings.create(model=MODEL, input=[[1, 2]], encoding_format="float")
        await b.embeddings.create(model=MODEL, input=[[1, 2]], encoding_format="float")
        assert fake.inputs == [[[1, 2], [3]], [[1, 2]]]  # tenant B did not get A's entry


async def test_identical_batches_at_once_make_one_upstream_call_per_input() -> None:
    fake = FakeEmbeddings()
    fake.gate = asyncio.Event()
    async with (
        through_proxy(fake) as base,
        openai.AsyncOpenAI(base_url=base, api_key=KEY_A, max_retries=0) as client,
    ):
        batch = [f"text {i}" for i in range(20)]
        first = asyncio.create_task(
            client.embeddings.with_raw_response.create(
                model=MODEL, input=batch, encoding_format="float"
            )
        )
        await fake.arrived.wait()  # the first batch is upstream, held there
        second = asyncio.create_task(
            client.embeddings.with_raw_response.create(
                model=MODEL, input=batch, encoding_format="float"
            )
        )
        # Whenever the second arrives (joining the flights, or after them, from the store),
        # nothing of it goes upstream.
        await asyncio.sleep(0.05)
        fake.gate.set()
        one, two = await first, await second
        assert fake.inputs == [batch]
        assert one.headers["x-vex-cache"] == "miss"
        assert two.headers["x-vex-cache"] in ("coalesced", "hit")
        assert one.parse().data == two.parse().data


async def test_langchain_openai_embeddings() -> None:
    from langchain_openai import OpenAIEmbeddings

    fake = FakeEmbeddings()
    async with through_proxy(fake) as base, httpx.AsyncClient() as http:
        embeddings = OpenAIEmbeddings(
            model=MODEL,
            base_url=base,
            api_key=KEY_A,  # type: ignore[arg-type]
            check_embedding_ctx_length=False,  # no tiktoken download: send text as it is
            max_retries=0,
            http_async_client=http,  # closed here (LangChain never closes its own)
        )
        documents = ["the cat", "sat on", "the mat"]
        vectors = await embeddings.aembed_documents(documents)
        assert vectors == [_f32(_vector(d)) for d in documents]
        again = await embeddings.aembed_documents(["the mat", "a hat", "the cat"])
        assert again[0] == vectors[2]
        assert again[2] == vectors[0]
        query = await embeddings.aembed_query("sat on")
        assert query == vectors[1]
        assert fake.inputs == [documents, ["a hat"]]


async def test_cache_control_and_dimensions() -> None:
    fake = FakeEmbeddings()
    async with through_proxy(fake) as base, httpx.AsyncClient() as http:
        headers = {"authorization": f"Bearer {KEY_A}"}

        async def post(body: dict[str, Any], **more: str) -> httpx.Response:
            return await http.post(f"{base}/embeddings", json=body, headers={**headers, **more})

        miss = await post({"model": MODEL, "input": ["x"]}, **{"cache-control": "only-if-cached"})
        assert miss.status_code == 504
        assert fake.bodies == []
        small = await post({"model": MODEL, "input": "x", "dimensions": 3, "user": "u-1"})
        assert len(small.json()["data"][0]["embedding"]) == 3
        assert fake.bodies[-1] == {
            "user": "u-1",
            "model": MODEL,
            "input": ["x"],
            "encoding_format": "float",
            "dimensions": 3,
        }
        full = await post({"model": MODEL, "input": "x"})
        assert full.headers["x-vex-cache"] == "miss"  # another dimensions, another entry
        fresh = await post({"model": MODEL, "input": "x"}, **{"cache-control": "no-cache"})
        assert fresh.headers["x-vex-cache"] == "bypass"
        assert len(fake.bodies) == 3


async def test_an_upstream_that_ignores_dimensions_is_a_400_naming_it() -> None:
    fake = FakeEmbeddings(ignore_dimensions=True)
    async with through_proxy(fake) as base, httpx.AsyncClient() as http:
        got = await http.post(
            f"{base}/embeddings",
            json={"model": MODEL, "input": "x", "dimensions": 3},
            headers={"authorization": f"Bearer {KEY_A}"},
        )
    assert got.status_code == 400
    assert got.json()["error"]["param"] == "dimensions"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": MODEL, "input": []}, "input"),
        ({"model": MODEL, "input": ["x"] * 2049}, "input"),
        ({"model": MODEL, "input": ""}, "input"),
        ({"model": MODEL, "input": [""]}, "input"),
        ({"model": MODEL, "input": ["a", 1]}, "input"),
        ({"model": MODEL, "input": [1, "a"]}, "input"),
        ({"model": MODEL, "input": [[1, [2]]]}, "input"),
        ({"model": MODEL, "input": [[1, "x"]]}, "input"),
        ({"model": MODEL, "input": [[1], []]}, "input"),
        ({"model": MODEL, "input": [[-1]]}, "input"),
        ({"model": MODEL, "input": [1.5]}, "input"),
        ({"model": MODEL, "input": [None]}, "input"),
        ({"model": MODEL, "input": {"a": 1}}, "input"),
        ({"model": MODEL, "input": 5}, "input"),
        ({"model": MODEL}, "input"),
        ({"model": MODEL, "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": MODEL, "input": "x", "dimensions": "5"}, "dimensions"),
        ({"model": MODEL, "input": "x", "dimensions": True}, "dimensions"),
        ({"model": MODEL, "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"model": MODEL, "input": "x", "user": 5}, "user"),
        ({"input": "x"}, "model"),
        ([1, 2], None),
    ],
)
async def test_bad_input_is_a_400_in_openais_shape(body: Any, param: str | None) -> None:
    fake = FakeEmbeddings()
    async with through_proxy(fake) as base, httpx.AsyncClient() as http:
        got = await http.post(
            f"{base}/embeddings", json=body, headers={"authorization": f"Bearer {KEY_A}"}
        )
    assert got.status_code == 400, got.text
    error = got.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert fake.bodies == []


async def test_other_refusals() -> None:
    fake = FakeEmbeddings()
    async with through_proxy(fake) as base, httpx.AsyncClient() as http:
        url = f"{base}/embeddings"
        auth = {"authorization": f"Bearer {KEY_A}"}
        assert (await http.post(url, json={"model": MODEL, "input": "x"})).status_code == 401
        unknown = await http.post(url, json={"model": "nope", "input": "x"}, headers=auth)
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "model_not_found"
        broken = await http.post(url, content=b"{nope", headers=auth)
        assert broken.status_code == 400
        assert fake.bodies == []


async def test_cli_embed_prints_sizes_then_hit_or_miss(tmp_path: Any) -> None:
    from .processes import vex_llm

    fake = FakeEmbeddings()
    store = f"sqlite:///{tmp_path / 'cache.db'}"
    async with serve(fake.app) as upstream:
        args = ("--upstream", f"{upstream}/v1", "--model", "emb", "--store", store)
        code1, out1, err1 = await vex_llm("embed", "hello", *args)
        code2, out2, err2 = await vex_llm("embed", "hello", "world", *args, "--values", "2")
    assert (code1, code2) == (0, 0), err1 + err2
    assert out1.startswith("[0] 6 dims: [")
    assert err1.startswith("miss in ")
    assert out2.splitlines()[1].startswith("[1] 6 dims: [")
    assert err2.startswith("partial in ")
    assert "1 of 2 from the cache" in err2
    assert fake.inputs == [["hello"], ["world"]]
