"""Fuzzing the proxy: any request body and any value of the headers it reads get an answer
below 500, and the server is healthy afterwards. One loopback server (in a thread, so that
hypothesis drives plain synchronous examples) serves every example; bounded and fast."""

from __future__ import annotations

import asyncio
import json
import socket
import string
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.server.conftest import ADMIN_KEY, KEY_A, MODEL, QuietServer, make_settings
from vex_llm import MemoryStore, MockProvider
from vex_llm.server.app import create_app
from vex_llm.server.run import uvicorn_config


@pytest.fixture(scope="module")
def client(base: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    settings_ = make_settings()
    app = create_app(
        settings_, providers={MODEL: MockProvider.constant("fuzzed")}, store=MemoryStore(1000)
    )
    config = uvicorn_config(app, "127.0.0.1", 0, settings_.limits, log_level="error")
    config.timeout_graceful_shutdown = 1
    server = QuietServer(config)
    thread = threading.Thread(target=asyncio.run, args=(server.serve(sockets=[sock]),))
    thread.start()
    try:
        for _ in range(1000):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        assert server.started
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


# Lone surrogates included: JSON can carry them (``"\\ud800"``), and the door refuses them.
text = st.text(max_size=12)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | text
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "tool"]) | values},
    optional={"content": text | values, "name": values},
)
FIELDS = (
    "stream",
    "stream_options",
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "top_p",
    "stop",
    "seed",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "tools",
    "response_format",
    "logprobs",
    "user",
)
document = st.fixed_dictionaries(
    {},
    optional={
        "model": st.just(MODEL) | values,
        "messages": st.lists(message | values, max_size=3) | values,
        **dict.fromkeys(FIELDS, values),
    },
)
body = (
    document.map(lambda d: json.dumps(d).encode())
    | st.binary(max_size=200)
    | values.map(lambda v: json.dumps(v).encode())
)
header_value = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40
).map(lambda s: s.strip().encode("latin-1"))
authorization = st.sampled_from([f"Bearer {KEY_A}".encode(), f"Bearer {ADMIN_KEY}".encode()])
directive = st.sampled_from(
    ["no-cache", "no-store", "only-if-cached", "max-age=", "stale-if-error=", "private"]
)
cache_control = st.lists(directive.map(str.encode) | header_value, max_size=3).map(
    lambda parts: b", ".join(parts).strip()
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "authorization": authorization | header_value,
        "cache-control": cache_control,
        "content-type": st.just(b"application/json") | header_value,
    },
)


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = json.loads(response.content)["error"]
        assert set(error) == {"message", "type", "param", "code"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=body, headers=headers)
def test_no_request_gets_a_5xx(
    client: httpx.Client, body: bytes, headers: dict[str, bytes]
) -> None:
    check(client.post("/v1/chat/completions", content=body, headers=headers))


url_text = st.text(string.ascii_letters + string.digits + "%&=[]_-.~+;", max_size=12)
query = (
    st.lists(
        st.tuples(
            st.sampled_from(["tenant", "TENANT", "tenant[]", "tenant%00", ""]) | url_text, url_text
        ),
        max_size=3,
    ).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))
    | url_text
)


@settings(max_examples=60, deadline=None)
@given(query=query, body=st.binary(max_size=20))
@example(query="tenant=t%2B1", body=b"")  # one tenant's clear, always tried
def test_admin_endpoints_refuse_what_they_do_not_understand(
    client: httpx.Client, query: str, body: bytes
) -> None:
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}
    stats = client.get(f"/v1/cache/stats?{query}", headers=auth)
    cleared = client.request("DELETE", f"/v1/cache?{query}", content=body, headers=auth)
    check(stats)
    check(cleared)
    if stats.status_code == 200:
        assert not query
    if cleared.status_code == 200:  # the plain request clears all; ?tenant=X alone, X's
        assert not body
        answer = cleared.json()
        if query:
            assert query.startswith("tenant=")
            assert "&" not in query
            assert parse_qsl(query) == [("tenant", answer["tenant"])]
        else:
            assert "tenant" not in answer


def test_the_server_is_healthy_after_the_fuzzing(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    payload: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    auth = {"authorization": f"Bearer {KEY_A}"}
    answer = client.post("/v1/chat/completions", json=payload, headers=auth)
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == "fuzzed"
