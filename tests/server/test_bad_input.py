"""Malformed requests: each a 4xx in OpenAI's error shape naming the problem, never a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.conftest import KEY_A, MODEL, make_settings, proxy
from vex_llm import MemoryStore, MockProvider
from vex_llm.server.app import create_app

OK_MESSAGES = [{"role": "user", "content": "hi"}]


def body(**fields: object) -> bytes:
    doc: dict[str, object] = {"model": MODEL, "messages": OK_MESSAGES}
    doc.update(fields)
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


CASES: list[tuple[str, bytes, int, str | None]] = [
    ("not json", b"hello there", 400, None),
    ("invalid utf-8", b'{"model": "\xff\xfe", "messages": []}', 400, None),
    ("json array", b"[1, 2]", 400, None),
    ("json string", b'"hi"', 400, None),
    ("empty body", b"", 400, None),
    ("NaN", b'{"model": "test-model", "messages": [], "temperature": NaN}', 400, None),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, 400, None),
    ("missing messages", body(messages=...), 400, "messages"),
    ("messages not a list", body(messages="hi"), 400, "messages"),
    ("empty messages", body(messages=[]), 400, "messages"),
    ("message not an object", body(messages=["hi"]), 400, "messages[0]"),
    ("bad role", body(messages=[{"role": "wizard", "content": "x"}]), 400, "messages[0].role"),
    (
        "content a number",
        body(messages=[{"role": "user", "content": 5}]),
        400,
        "messages[0].content",
    ),
    ("content missing", body(messages=[{"role": "user"}]), 400, "messages[0].content"),
    (
        "part without a type",
        body(messages=[{"role": "user", "content": [{"type": 5}]}]),
        400,
        "messages[0].content[0]",
    ),
    (
        "tool_calls not an array",
        body(messages=[{"role": "assistant", "content": None, "tool_calls": "x"}]),
        400,
        "messages[0].tool_calls",
    ),
    (
        "tool call without a function",
        body(messages=[{"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}]),
        400,
        "messages[0].tool_calls[0].function",
    ),
    (
        "lone surrogate in content",
        b'{"model": "test-model", "messages": [{"role": "user", "content": "x\\ud800y"}]}',
        400,
        "messages[0].content",
    ),
    (
        "lone surrogate in stop",
        b'{"model": "test-model", "messages": [{"role": "user", "content": "x"}],'
        b' "stop": ["\\udc00"], "stream": true}',
        400,
        "stop[0]",
    ),
    ("model missing", body(model=...), 400, "model"),
    ("model a number", body(model=3), 400, "model"),
    ("temperature a string", body(temperature="hot"), 400, "temperature"),
    ("temperature out of range", body(temperature=5), 400, "temperature"),
    ("top_p a bool", body(top_p=True), 400, "top_p"),
    ("negative max_tokens", body(max_tokens=-1), 400, "max_tokens"),
    ("fractional max_tokens", body(max_tokens=1.5), 400, "max_tokens"),
    ("zero max_completion_tokens", body(max_completion_tokens=0), 400, "max_completion_tokens"),
    ("stop a number", body(stop=7), 400, "stop"),
    ("stream a string", body(stream="yes"), 400, "stream"),
    ("n = 0", body(n=0), 400, "n"),
    ("tools", body(tools=[{"type": "function"}]), 400, "tools"),
    ("tools not an array", body(tools={"type": "function"}), 400, "tools"),
    ("tool_choice a number", body(tool_choice=3), 400, "tool_choice"),
    ("response_format a string", body(response_format="json"), 400, "response_format"),
    ("logprobs a string", body(logprobs="yes"), 400, "logprobs"),
    ("top_logprobs too many", body(top_logprobs=99), 400, "top_logprobs"),
    ("logit_bias not numbers", body(logit_bias={"1": "x"}), 400, "logit_bias"),
    ("user a number", body(user=5), 400, "user"),
    ("metadata not strings", body(metadata={"a": 1}), 400, "metadata"),
    (
        "include_usage a string",
        body(stream=True, stream_options={"include_usage": "yes"}),
        400,
        "stream_options.include_usage",
    ),
    ("seed too big", body(seed=2**70), 400, "seed"),
]


@pytest.fixture
async def raw() -> AsyncIterator[httpx.AsyncClient]:
    settings_ = make_settings()
    app = create_app(settings_, {MODEL: MockProvider.constant("x")}, MemoryStore(100))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://proxy",
        headers={"Authorization": f"Bearer {KEY_A}"},
    ) as c:
        yield c


def assert_openai_error(response: httpx.Response, status: int, param: str | None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param, error


@pytest.mark.parametrize(("name", "content", "status", "param"), CASES, ids=[c[0] for c in CASES])
async def test_malformed_body_is_a_clear_4xx(
    raw: httpx.AsyncClient, name: str, content: bytes, status: int, param: str | None
) -> None:
    response = await raw.post("/v1/chat/completions", content=content)
    assert_openai_error(response, status, param)


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("max-age=abc", False),
        ("only-if-cached, no-cache", False),
        ("max-age=60", True),
        ("no-store, private, x-unknown=1", True),
    ],
)
async def test_cache_control_header(raw: httpx.AsyncClient, header: str, ok: bool) -> None:
    response = await raw.post(
        "/v1/chat/completions", content=body(), headers={"Cache-Control": header}
    )
    if ok:
        assert response.status_code == 200
    else:
        assert_openai_error(response, 400, "Cache-Control")


async def test_oversized_prompt_is_a_400_before_the_upstream() -> None:
    settings_ = make_settings()
    upstream = MockProvider.constant("x")
    app = create_app(settings_, {MODEL: upstream}, MemoryStore(100))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://proxy"
    ) as c:
        response = await c.post(
            "/v1/chat/completions",
            content=body(messages=[{"role": "user", "content": "x" * 5_000_000}]),
            headers={"Authorization": f"Bearer {KEY_A}"},
        )
    assert_openai_error(response, 400, "messages")
    assert upstream.calls == 0


async def test_body_cap_holds_for_declared_and_chunked_bodies() -> None:
    settings_ = make_settings(max_body_bytes=64 * 1024)
    upstream = MockProvider.constant("x")
    big = body(messages=[{"role": "user", "content": "x" * 100_000}])

    async def chunked() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    async with proxy(upstream, settings_) as base, httpx.AsyncClient(base_url=base) as c:
        auth = {"Authorization": f"Bearer {KEY_A}"}
        declared = await c.post("/chat/completions", content=big, headers=auth)
        streamed = await c.post("/chat/completions", content=chunked(), headers=auth)
        assert "content-length" not in streamed.request.headers
        ok = await c.post("/chat/completions", content=body(), headers=auth)
    assert_openai_error(declared, 413, None)
    assert_openai_error(streamed, 413, None)
    assert ok.status_code == 200
    assert upstream.calls == 1


async def test_unknown_route_and_method_are_json_errors(raw: httpx.AsyncClient) -> None:
    assert_openai_error(await raw.get("/v1/nothing"), 404, None)
    assert_openai_error(await raw.get("/v1/chat/completions"), 405, None)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
fields = st.dictionaries(
    st.sampled_from(
        [
            "model",
            "messages",
            "temperature",
            "max_tokens",
            "stop",
            "stream",
            "n",
            "seed",
            "top_p",
            "stream_options",
            "user",
        ]
    ),
    json_values,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(doc=fields)
async def test_any_json_body_is_answered_without_a_500(raw: httpx.AsyncClient, doc: dict) -> None:  # type: ignore[type-arg]
    response = await raw.post("/v1/chat/completions", content=json.dumps(doc).encode())
    assert response.status_code < 500, response.text
