"""The embedded defaults end to end: ``vex-llm serve`` with the real local model.

No config and no ``--upstream``: vex-llm starts llama.cpp's ``llama-server`` with
SmolLM2-135M-Instruct as its own child process. The official openai client gets a real answer,
then the same answer as a hit, streamed or not; on SIGTERM the model's server goes too.
"""

from __future__ import annotations

import re
import signal
import socket
from pathlib import Path

import httpx
import openai
import pytest

from tests.server.processes import serving

pytestmark = pytest.mark.integration

MODEL = "smollm2-135m"
MESSAGES = [{"role": "user", "content": "Name one colour of the sky."}]


async def test_embedded_defaults_answer_cache_and_clean_up(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'cache.db'}"
    async with serving("--store", store, ready_timeout=180) as proxy:
        async with httpx.AsyncClient() as raw:
            ready = await raw.get(f"{proxy.base}/readyz")
        assert ready.status_code == 200, ready.text
        client = openai.AsyncOpenAI(base_url=f"{proxy.base}/v1", api_key="any", max_retries=0)
        options = {"model": MODEL, "messages": MESSAGES, "temperature": 0, "max_tokens": 16}
        first = await client.chat.completions.with_raw_response.create(**options)  # type: ignore[call-overload]
        second = await client.chat.completions.with_raw_response.create(**options)  # type: ignore[call-overload]
        streams = []
        # Another question: a stream may be a hit on a stored completion (and vice versa).
        options["messages"] = [{"role": "user", "content": "Name one fruit."}]
        for _ in range(2):
            raw_stream = await client.chat.completions.with_raw_response.create(
                **options, stream=True
            )  # type: ignore[call-overload]
            deltas = [
                event.choices[0].delta.content
                async for event in raw_stream.parse()
                if event.choices
            ]
            streams.append((raw_stream.headers["x-vex-cache"], deltas))
        await client.close()
        code = await proxy.stop(signal.SIGTERM)
    assert (first.headers["x-vex-cache"], second.headers["x-vex-cache"]) == ("miss", "hit")
    answer = first.parse().choices[0].message.content
    assert answer
    assert second.parse().choices[0].message.content == answer
    (o1, d1), (o2, d2) = streams
    assert (o1, o2) == ("miss", "hit")
    assert d1 == d2
    assert "".join(filter(None, d1))
    assert code == 0, proxy.stderr
    match = re.search(r"local model ready at http://127\.0\.0\.1:(\d+)/v1", proxy.stderr)
    assert match, proxy.stderr
    model_server = ("127.0.0.1", int(match[1]))
    with pytest.raises(ConnectionRefusedError), socket.create_connection(model_server, 1):
        pass  # the model's server is gone with vex-llm


async def test_two_workers_share_one_local_model_and_stop_it(tmp_path: Path) -> None:
    from tests.server.test_workers import ask_each_on_a_new_connection, children, workers_of

    def is_llama(pid: int) -> bool:
        return b"llama-server" in Path(f"/proc/{pid}/cmdline").read_bytes()

    store = f"sqlite:///{tmp_path / 'cache.db'}"
    async with serving("--store", store, "--workers", "2", ready_timeout=180) as proxy:
        await workers_of(proxy, 2)
        descendants = children(proxy.process.pid)
        llama = [pid for pid in descendants if is_llama(pid)]
        outcomes = await ask_each_on_a_new_connection(proxy.base, 4, model=MODEL)
        async with httpx.AsyncClient(timeout=60) as http:
            embedded = await http.post(
                f"{proxy.base}/v1/embeddings",
                json={"model": MODEL, "input": ["a worker embeds"]},
                headers={"authorization": "Bearer any"},
            )
        code = await proxy.stop(signal.SIGINT)
    assert embedded.status_code == 200, embedded.text
    assert len(embedded.json()["data"][0]["embedding"]) == 576
    assert len(llama) == 2  # one chat and one embeddings server, for both workers
    assert outcomes == ["miss", "hit", "hit", "hit"]
    assert code == 0, proxy.stderr
    match = re.search(
        r"local model ready at http://127\.0\.0\.1:(\d+)/v1 "
        r"\(embeddings: http://127\.0\.0\.1:(\d+)/v1\)",
        proxy.stderr,
    )
    assert match, proxy.stderr
    for port in (match[1], match[2]):
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.1", int(port)), 1),
        ):
            pass
