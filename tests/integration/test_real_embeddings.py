"""End to end: the embedded default's embeddings. ``LocalModelProvider`` starts SmolLM2 twice
(chat, and ``--embeddings --pooling mean``), the proxy serves ``/v1/embeddings`` from it to the
official openai SDK, and a partly cached batch sends only its missing inputs to the real
server, with vectors equal to the server's own (llama-server's own counters update after it
answers, so what was sent is read from the answer's usage, not from them)."""

from __future__ import annotations

import math

import httpx
import openai
import pytest

from tests.server.conftest import KEY_A, make_settings, serve
from vex_llm import MemoryStore
from vex_llm.local.provider import LOCAL_MODEL, LocalModelProvider
from vex_llm.server.app import create_app

pytestmark = pytest.mark.integration


async def test_the_local_model_serves_embeddings_through_the_proxy() -> None:
    local = LocalModelProvider(progress=lambda _line: None)
    settings = make_settings({LOCAL_MODEL: LOCAL_MODEL})
    app = create_app(settings, providers={LOCAL_MODEL: local}, store=MemoryStore(1000))
    async with serve(app) as root:
        await local.start()
        assert await local.is_available()
        embed_url = local.embeddings_base_url
        assert embed_url is not None
        async with openai.AsyncOpenAI(base_url=root + "/v1", api_key=KEY_A) as client:
            first = await client.embeddings.create(
                model=LOCAL_MODEL, input=["the cat sat", "on the mat"], encoding_format="float"
            )
            vector = first.data[0].embedding
            assert len(vector) == 576
            assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-3)
            raw = await client.embeddings.with_raw_response.create(
                model=LOCAL_MODEL,
                input=["on the mat", "a new sentence", "the cat sat"],
                encoding_format="float",
            )
            second = raw.parse()
            assert raw.headers["x-vex-cache"] == "partial"
            assert raw.headers["x-vex-cache-hits"] == "2"
            assert [d.index for d in second.data] == [0, 1, 2]
            assert second.data[0].embedding == first.data[1].embedding
            assert second.data[2].embedding == first.data[0].embedding
            # usage counts what went upstream: the one new input's tokens.
            assert 0 < second.usage.prompt_tokens < first.usage.prompt_tokens
            # Only "a new sentence" reached the server, and its vector is the server's own.
            async with httpx.AsyncClient() as http:
                direct = await http.post(
                    f"{embed_url}/embeddings", json={"input": ["a new sentence"]}
                )
            assert second.data[1].embedding == direct.json()["data"][0]["embedding"]
            # The SDK's default (base64) is the same entries as float32.
            decoded = await client.embeddings.create(model=LOCAL_MODEL, input="the cat sat")
            assert decoded.data[0].embedding == pytest.approx(vector, abs=1e-7)
        # Chat still works beside it.
        async with openai.AsyncOpenAI(base_url=root + "/v1", api_key=KEY_A) as client:
            chat = await client.chat.completions.create(
                model=LOCAL_MODEL,
                messages=[{"role": "user", "content": "Say hi."}],
                max_tokens=8,
                temperature=0,
            )
            assert chat.choices[0].message.content
    assert local.embeddings_base_url is None  # the app closed it, both servers stopped
