"""The shared argument checks: the right exception type, a message naming the argument."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from vex_llm import LeasePolicy, LLMCacheConfig
from vex_llm.cache.stores.base import check_bounds
from vex_llm.validation import is_number, positive_int, seconds


def test_is_number() -> None:
    assert is_number(1) and is_number(1.5)  # noqa: PT018
    assert not is_number(True)
    assert not is_number("1")


def test_positive_int() -> None:
    assert positive_int("n", 3) == 3
    assert positive_int("n", None, optional=True) is None
    assert positive_int("port", 0, low=0) == 0
    for bad, error in ((0, ValueError), (-1, ValueError), (True, TypeError), (1.0, TypeError)):
        with pytest.raises(error, match="n must be"):
            positive_int("n", bad)
    with pytest.raises(TypeError, match="n must be an int,"):
        positive_int("n", None)


def test_seconds() -> None:
    assert seconds("ttl", 2) == 2.0
    assert seconds("ttl", timedelta(minutes=1)) == 60.0
    assert seconds("ttl", None) is None
    assert seconds("wait", 0, zero=True) == 0.0
    for bad in (0, -1, math.nan, math.inf, timedelta(0)):
        with pytest.raises(ValueError, match="ttl must be a positive"):
            seconds("ttl", bad)
    for wrong in ("5", True):
        with pytest.raises(TypeError, match="ttl must be seconds"):
            seconds("ttl", wrong)
    with pytest.raises(TypeError):
        seconds("ttl", None, optional=False)


def test_the_cache_and_its_stores_use_them() -> None:
    with pytest.raises(TypeError, match="max_entries must be an int or None"):
        LLMCacheConfig(max_entries=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_bytes must be at least 1"):
        check_bounds(None, 0, None, None)
    with pytest.raises(TypeError, match="lease ttl must be seconds"):
        LeasePolicy(ttl="5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lease first_poll must be a positive"):
        LeasePolicy(first_poll=math.nan)
    assert LeasePolicy(max_wait=0).max_wait == 0.0
