"""The Anthropic door on the embedded defaults: the official anthropic SDK against ``vex-llm
serve`` with the real local model (llama-server behind an OpenAI-compatible provider, so the
request and the answer go through the translation both ways), miss then hit, JSON and
streamed.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from anthropic import AsyncAnthropic

from tests.server.processes import serving

pytestmark = pytest.mark.integration

MODEL = "smollm2-135m"


async def test_anthropic_sdk_through_the_real_local_model(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'cache.db'}"
    async with serving("--store", store, ready_timeout=180) as proxy:
        client = AsyncAnthropic(base_url=proxy.base, api_key="any", max_retries=0)
        options = {
            "model": MODEL,
            "max_tokens": 16,
            "system": "Answer in one word.",
            "messages": [{"role": "user", "content": "Name one colour of the sky."}],
            "extra_body": {"temperature": 0},
        }
        first = await client.messages.with_raw_response.create(**options)  # type: ignore[arg-type]
        second = await client.messages.with_raw_response.create(**options)  # type: ignore[arg-type]
        options["messages"] = [{"role": "user", "content": "Name one fruit."}]
        streamed = []
        for _ in range(2):
            async with client.messages.stream(**options) as stream:  # type: ignore[arg-type]
                texts = [text async for text in stream.text_stream]
                final = await stream.get_final_message()
            streamed.append((texts, final))
        await client.close()
        code = await proxy.stop(signal.SIGTERM)
    assert (first.headers["x-vex-cache"], second.headers["x-vex-cache"]) == ("miss", "hit")
    answer = await first.parse()
    assert answer.content
    assert answer.content[0].type == "text"
    assert answer.content[0].text
    assert answer.stop_reason in ("end_turn", "max_tokens")
    assert answer.usage.input_tokens > 0
    assert answer.usage.output_tokens > 0
    assert (await second.parse()).content == answer.content
    (texts1, final1), (texts2, final2) = streamed
    assert "".join(texts1)
    assert texts1 == texts2
    assert final1.content == final2.content
    assert final1.usage.output_tokens > 0
    assert code == 0, proxy.stderr
