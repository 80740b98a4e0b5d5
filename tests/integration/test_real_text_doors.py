"""``/v1/completions`` and ``/v1/responses`` against the real model: llama-server speaks both.

Through the proxy, the official openai SDK gets what llama-server itself answers (bar what
differs between any two of its answers: ids, clocks, timings), JSON and streamed; a repeat is
a hit that leaves the server's own counters alone, and a JSON hit from a stored stream is the
same answer.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.server.conftest import KEY_A
from vex_llm.local import LlamaServer

from .conftest import server_counter
from .test_real_fidelity import TIMEOUT, through_proxy

pytestmark = pytest.mark.integration

VOLATILE = ("id", "created", "timings")
AUTH = {"authorization": f"Bearer {KEY_A}"}


def _steady(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in VOLATILE}


async def _work(llama: LlamaServer) -> float:
    return await server_counter(llama, "tokens_predicted_total")


async def test_a_completion_equals_llama_servers_own_and_repeats_as_a_hit(
    llama: LlamaServer,
) -> None:
    body = {
        "model": llama.alias,
        "prompt": "def fibonacci(n):",
        "max_tokens": 8,
        "temperature": 0,
        "stop": ["\n\n"],
        "cache_prompt": False,
    }
    async with (
        through_proxy(llama) as url,
        httpx.AsyncClient(timeout=TIMEOUT) as http,
        openai.AsyncOpenAI(base_url=url, api_key=KEY_A, max_retries=0, timeout=TIMEOUT) as sdk,
    ):
        direct = await http.post(f"{llama.base_url}/completions", json=body)
        miss = await http.post(f"{url}/completions", json=body, headers=AUTH)
        work = await _work(llama)
        asked = {k: v for k, v in body.items() if k != "cache_prompt"}
        extra = {"cache_prompt": False}  # llama.cpp's own field, as an SDK user sends it
        hit = await sdk.completions.with_raw_response.create(**asked, extra_body=extra)
        stream = await sdk.completions.create(**asked, extra_body=extra, stream=True)
        streamed = "".join([c.choices[0].text async for c in stream if c.choices])
        assert await _work(llama) == work  # the repeats cost the server nothing
    assert direct.status_code == miss.status_code == 200, miss.text
    assert (miss.headers["x-vex-cache"], hit.headers["x-vex-cache"]) == ("miss", "hit")
    assert _steady(miss.json()) == _steady(direct.json())
    assert json.loads(hit.http_response.text) == miss.json()  # id and created included
    assert hit.parse().choices[0].text == streamed == direct.json()["choices"][0]["text"]


async def test_a_streamed_completion_replays_and_answers_json_from_the_stream(
    llama: LlamaServer,
) -> None:
    body = {
        "model": llama.alias,
        "prompt": "The three primary colours are",
        "max_tokens": 8,
        "temperature": 0,
        "stream": True,
    }
    async with through_proxy(llama) as url, httpx.AsyncClient(timeout=TIMEOUT) as http:
        first = await http.post(f"{url}/completions", json=body, headers=AUTH)
        work = await _work(llama)
        again = await http.post(f"{url}/completions", json=body, headers=AUTH)
        whole = await http.post(f"{url}/completions", json={**body, "stream": False}, headers=AUTH)
        assert await _work(llama) == work
    assert (first.headers["x-vex-cache"], again.headers["x-vex-cache"]) == ("miss", "hit")
    assert again.text == first.text  # every event, as llama-server sent it
    assert first.text.endswith("data: [DONE]\n\n")
    events = [
        json.loads(line.removeprefix("data: "))
        for line in first.text.split("\n\n")
        if line.startswith("data: {")
    ]
    text = "".join(e["choices"][0]["text"] for e in events if e["choices"])
    assert whole.headers["x-vex-cache"] == "hit"
    answer = whole.json()
    assert answer["choices"][0]["text"] == text
    assert answer["id"] == events[0]["id"]
    assert answer["usage"]["completion_tokens"] == events[-1]["usage"]["completion_tokens"]


async def test_responses_through_the_proxy_to_llama_server(llama: LlamaServer) -> None:
    request: dict[str, Any] = {
        "model": llama.alias,
        "input": "Name a colour.",
        "instructions": "Answer in one word.",
        "max_output_tokens": 8,
        "temperature": 0,
    }
    async with (
        through_proxy(llama) as url,
        openai.AsyncOpenAI(base_url=url, api_key=KEY_A, max_retries=0, timeout=TIMEOUT) as sdk,
    ):
        miss = await sdk.responses.with_raw_response.create(**request)
        work = await _work(llama)
        hit = await sdk.responses.with_raw_response.create(**request)
        events = [e async for e in await sdk.responses.create(**request, stream=True)]
        assert await _work(llama) == work
    assert (miss.headers["x-vex-cache"], hit.headers["x-vex-cache"]) == ("miss", "hit")
    assert json.loads(hit.http_response.text) == json.loads(miss.http_response.text)
    text = miss.parse().output_text
    assert text
    assert [e.type for e in events][-1] == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == text  # the stored answer, streamed
