"""The shared HTTP boundary: Retry-After, status mapping, SSE and line parsing, client ownership."""

from __future__ import annotations

import itertools

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vex_llm import (
    AuthenticationFailed,
    InvalidResponse,
    RateLimited,
    RequestFailed,
    ServerError,
)
from vex_llm.providers._status import error_for_status, parse_retry_after
from vex_llm.providers.base import HTTPClientOwner, Secret, normalise_base_url
from vex_llm.providers.sse import LineSplitter, SSEDecoder, SSEEvent, parse_json

NOW = 1_445_412_480.0  # Wed, 21 Oct 2015 07:28:00 GMT


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: retry now
        ("Wed, 21 Oct 2015 07:29:00 -0000", 60.0),
        (None, None),
        ("", None),
        ("-5", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, AuthenticationFailed),
        (403, AuthenticationFailed),
        (429, RateLimited),
        (400, RequestFailed),
        (404, RequestFailed),
        (422, RequestFailed),
        (500, ServerError),
        (503, ServerError),
        (529, ServerError),
    ],
)
def test_error_for_status(status: int, kind: type[Exception]) -> None:
    error = error_for_status(status, "the   backend\nsays no", "3", now=NOW)
    assert type(error) is kind
    assert "the backend says no" in str(error)
    if isinstance(error, RequestFailed):
        assert error.status == status
    if isinstance(error, RateLimited):
        assert error.retry_after == 3.0


def test_success_is_no_error_and_bodies_are_excerpted() -> None:
    assert error_for_status(200, "") is None
    error = error_for_status(400, "x" * 10_000)
    assert isinstance(error, RequestFailed)
    assert len(error.body) == 200


def test_a_secret_never_shows_the_key() -> None:
    secret = Secret("sk-live-abc")
    assert "sk-live-abc" not in repr(secret) + str(secret) + f"{secret}"
    assert secret.reveal() == "sk-live-abc"
    with pytest.raises(ValueError, match="empty"):
        Secret(" ")
    with pytest.raises(ValueError, match="line breaks"):
        Secret("a\nb")


def test_sse_decoder_follows_the_spec() -> None:
    decoder = SSEDecoder()
    lines = [
        ": a comment",
        "event: message_start",
        'data: {"a":',
        "data:1}",
        "",
        "",
        "data: [DONE]",
        "",
        "data: cut off",  # no blank line: never dispatched
    ]
    events = [e for e in map(decoder.feed, lines) if e is not None]
    assert events == [
        SSEEvent("message_start", '{"a":\n1}'),
        SSEEvent("message", "[DONE]"),
    ]


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", '"str"', b"\xff"])
def test_parse_json_rejects_non_objects(text: str | bytes) -> None:
    with pytest.raises(InvalidResponse):
        parse_json(text, "test")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTP://LocalHost:8080/v1/", "http://localhost:8080/v1"),
        ("https://api.openai.com:443/v1", "https://api.openai.com/v1"),
        ("https://api.deepseek.com/", "https://api.deepseek.com"),
    ],
)
def test_normalise_base_url(url: str, expected: str) -> None:
    assert normalise_base_url(url) == expected


@pytest.mark.parametrize(
    "url", ["localhost:8080", "ftp://x/y", "http://user:pw@host/v1", "http://h/v1?x=1", ""]
)
def test_bad_base_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        normalise_base_url(url)


@pytest.mark.parametrize("url", ["ftp://u:sk-secret@h/v1", "http://u:sk-secret@"])
def test_a_refused_base_url_never_echoes_its_credentials(url: str) -> None:
    with pytest.raises(ValueError, match="base_url") as caught:
        normalise_base_url(url)
    assert "sk-secret" not in str(caught.value)


async def test_a_client_passed_in_is_not_closed() -> None:
    client = httpx.AsyncClient()
    owner = HTTPClientOwner(client)
    assert owner.client is client
    assert not owner.owned
    await owner.aclose()
    assert not client.is_closed
    await client.aclose()


async def test_an_own_client_is_made_lazily_and_closed() -> None:
    owner = HTTPClientOwner(None)
    client = owner.client
    assert owner.owned
    await owner.aclose()
    await owner.aclose()  # idempotent
    assert client.is_closed
    with pytest.raises(RuntimeError, match="closed"):
        _ = owner.client


def test_http_client_must_be_an_async_client() -> None:
    with pytest.raises(TypeError, match="AsyncClient"):
        HTTPClientOwner(httpx.Client())  # type: ignore[arg-type]


def split_incrementally(text: str, cuts: list[int]) -> list[str]:
    splitter = LineSplitter()
    lines: list[str] = []
    bounds = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    for start, end in itertools.pairwise(bounds):
        lines += splitter.feed(text[start:end])
    return lines + splitter.flush()


@given(
    st.text(alphabet=st.sampled_from(["a", "b", " ", "\r", "\n", "\u2028", "\x85"])),
    st.lists(st.integers(min_value=0, max_value=60)),
)
def test_line_splitter_matches_splitlines_however_the_text_is_cut(
    text: str, cuts: list[int]
) -> None:
    assert split_incrementally(text, cuts) == text.splitlines()


@pytest.mark.parametrize(
    ("pieces", "lines"),
    [
        (["data: a\r", "\ndata: b\r\n\r\n"], ["data: a", "data: b", ""]),
        (["da", "ta: x", "\n\n"], ["data: x", ""]),
        (["tail without end"], ["tail without end"]),
        (["x\r"], ["x"]),
    ],
)
def test_line_splitter_joins_line_ends_cut_between_pieces(
    pieces: list[str], lines: list[str]
) -> None:
    splitter = LineSplitter()
    got = [line for piece in pieces for line in splitter.feed(piece)]
    assert got + splitter.flush() == lines
