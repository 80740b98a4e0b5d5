"""Cache-Control parsing: strict delta-seconds, huge values are "a very long time", never a 500."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.server.conftest import KEY_A, MODEL, proxy
from vex_llm import MockProvider
from vex_llm.models import CacheControl
from vex_llm.server.cache_control import MAX_DELTA_SECONDS, cache_control
from vex_llm.server.wire import WireError


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, CacheControl()),
        ("no-cache", CacheControl(no_cache=True)),
        ("No-Store", CacheControl(no_store=True)),
        ("max-age=60", CacheControl(ttl=60)),
        ("max-age=0", CacheControl(no_cache=True)),
        ("max-age=000", CacheControl(no_cache=True)),
        ('max-age="30", no-store', CacheControl(ttl=30, no_store=True)),
        ("max-age=60, max-age=5", CacheControl(ttl=5)),
        ("only-if-cached", CacheControl(only_if_cached=True)),
        ("private, stale-while-revalidate=5", CacheControl()),
        ("max-age=" + "9" * 400, CacheControl(ttl=MAX_DELTA_SECONDS)),
        ("max-age=2147483649", CacheControl(ttl=MAX_DELTA_SECONDS)),
        ("max-age=" + "0" * 400 + "7", CacheControl(ttl=7)),
    ],
)
def test_cache_control_header(header: str | None, expected: CacheControl) -> None:
    assert cache_control(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        "max-age=-1",
        "max-age=1.5",
        "max-age=",
        "max-age=²",
        "max-age=1²",
        "max-age=\u0663",  # ARABIC-INDIC DIGIT THREE: isdigit() says yes, HTTP says no
        "max-age=Â²",  # "²" as it arrives: header bytes read as latin-1
        'max-age="',
        "max-age=+5",
        "max-age= 5 5",
        "only-if-cached, no-cache",
    ],
)
def test_bad_cache_control_is_a_400(header: str) -> None:
    with pytest.raises(WireError) as caught:
        cache_control(header)
    assert caught.value.param == "Cache-Control"
    assert caught.value.status == 400


@given(st.text(max_size=60))
def test_any_header_is_a_control_or_a_400(header: str) -> None:
    error = None
    try:
        cache_control(header)
    except WireError as err:
        error = err
    assert error is None or error.status == 400


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ("max-age=" + "9" * 400, 200),
        ("max-age=²".encode(), 400),
        ("max-age=99999999999999999999", 200),
    ],
)
async def test_the_proxy_answers_bad_max_ages_without_a_500(
    header: str | bytes, status: int
) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {KEY_A}", "Cache-Control": header}
    async with proxy(MockProvider.constant("x")) as base, httpx.AsyncClient(base_url=base) as raw:
        response = await raw.post("/chat/completions", json=body, headers=headers)
    assert response.status_code == status, response.text
