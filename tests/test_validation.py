"""The shared argument checks: the right exception type, a message naming the argument."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from vex_llm import LeasePolicy, LLMCacheConfig
from vex_llm.cache.stores.base import check_bounds
from vex_llm.validation import (
    flag,
    int_between,
    is_finite_number,
    is_int,
    is_number,
    json_type,
    number_between,
    number_in,
    positive_int,
    positive_number,
    seconds,
)


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


def test_positive_number() -> None:
    assert positive_number("rate", 2) == 2.0
    assert positive_number("rate", 0, zero=True) == 0.0
    assert positive_number("rate", None, optional=True) is None
    for bad in (0, -1, math.nan, math.inf):
        with pytest.raises(ValueError, match="rate must be a positive, finite number"):
            positive_number("rate", bad)
    with pytest.raises(ValueError, match="rate must be a non-negative"):
        positive_number("rate", -0.5, zero=True)
    for wrong in ("5", True, None):
        with pytest.raises(TypeError, match="rate must be a number"):
            positive_number("rate", wrong)


def test_flag_and_ranges() -> None:
    assert flag("enabled", False) is False
    with pytest.raises(TypeError, match="enabled must be a bool, not int"):
        flag("enabled", 1)
    assert number_in("p", 1, 0, 1, above_low=True) == 1.0
    with pytest.raises(ValueError, match=r"p must be in \(0, 1\]"):
        number_in("p", 0, 0, 1, above_low=True)


def test_json_shapes() -> None:
    assert is_int(3) and not is_int(True) and not is_int(3.0)  # noqa: PT018
    assert is_finite_number(1.5) and not is_finite_number(math.inf)  # noqa: PT018
    assert not is_finite_number(False)
    between = number_between(0, 2)
    assert between(2) and not between(2.5) and not between(math.nan)  # noqa: PT018
    assert int_between(1, 3)(2) and not int_between(1, 3)(2.0)  # noqa: PT018
    shapes = [None, True, 1, 1.5, "s", [1], {"a": 1}]
    assert [json_type(v) for v in shapes] == [
        "null",
        "a boolean",
        "a number",
        "a number",
        "a string",
        "an array",
        "an object",
    ]
