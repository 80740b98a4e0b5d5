"""End to end: a failing primary, and the proxy falls back to the real local model.

The official openai client asks for the primary; the primary answers 503 every time, so
the proxy's fallback, the real SmolLM2 behind llama-server, answers, and says so in
``x-vex-upstream``. The answer is stored as the local model's, not the primary's.
"""

from __future__ import annotations

import openai
import pytest

from tests.resilience.faulty_upstream import FaultyUpstream
from tests.server.conftest import KEY_A, make_settings, serve
from vex_llm import MemoryStore
from vex_llm.local import LlamaServer
from vex_llm.server.app import create_app
from vex_llm.server.settings import UpstreamSettings

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "Name one colour of the sky."}]


async def test_a_failing_primary_falls_back_to_the_real_local_model(llama: LlamaServer) -> None:
    primary = FaultyUpstream()
    primary.mode = "down"
    async with serve(primary.app) as primary_url:
        settings = make_settings(
            upstreams=(
                UpstreamSettings(
                    "primary", "openai", primary_url + "/v1", "primary", fallbacks=("local",)
                ),
                UpstreamSettings("local", "openai", llama.base_url, llama.alias, timeout=120),
            )
        )
        app = create_app(settings, store=MemoryStore(100))
        async with serve(app) as root:
            client = openai.AsyncOpenAI(base_url=root + "/v1", api_key=KEY_A, max_retries=0)
            options = {"messages": MESSAGES, "temperature": 0, "max_tokens": 16}
            first = await client.chat.completions.with_raw_response.create(
                model="primary", **options
            )  # type: ignore[call-overload]
            direct = await client.chat.completions.with_raw_response.create(
                model="local", **options
            )  # type: ignore[call-overload]
            await client.close()
    assert first.headers["x-vex-upstream"] == "local"
    answer = first.parse().choices[0].message.content
    assert answer
    # The local model's answer was stored as the local model's: asking it directly hits.
    assert direct.headers["x-vex-cache"] == "hit"
    assert direct.parse().choices[0].message.content == answer
    assert primary.calls["5xx"] >= 1
