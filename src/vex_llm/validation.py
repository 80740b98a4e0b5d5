"""The argument checks every constructor needs, once: counts, durations and numbers.

A bad value fails where it enters, with a ``TypeError`` (wrong type: ``True`` is not a size,
``"5"`` is not a duration) or a ``ValueError`` (right type, impossible value: zero, negative,
NaN or infinite), and the message names the argument. Library code checks with these instead of
spelling the same tests again (the review found them five times, each a little different).
A leaf module: it imports nothing from ``vex_llm``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta

__all__ = [
    "flag",
    "int_between",
    "is_finite_number",
    "is_int",
    "is_number",
    "json_type",
    "number_between",
    "number_in",
    "positive_int",
    "positive_number",
    "seconds",
]


def is_number(value: object) -> bool:
    """An int or float, but not a bool (``True`` as a temperature is a caller's bug, not 1.0)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_int(value: object) -> bool:
    """An int, but not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: object) -> bool:
    """An int or float (not a bool), neither NaN nor infinite: what JSON numbers may be."""
    return is_number(value) and math.isfinite(value)  # type: ignore[arg-type]


def number_between(low: float, high: float) -> Callable[[object], bool]:
    """A predicate: a finite number in ``[low, high]`` (the proxy's JSON field checks)."""
    return lambda v: is_finite_number(v) and low <= v <= high  # type: ignore[operator]


def int_between(low: int, high: int) -> Callable[[object], bool]:
    """A predicate: an int (not a bool) in ``[low, high]``."""
    return lambda v: is_int(v) and low <= v <= high  # type: ignore[operator]


def json_type(value: object) -> str:
    """How an error message names ``value``'s JSON type ("a number", "an array", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "a string" if isinstance(value, str) else type(value).__name__


def flag(name: str, value: object) -> bool:
    """``value`` as a bool; anything else (``1``, ``"yes"``) is a ``TypeError``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")
    return value


def number_in(
    name: str,
    value: object,
    low: float,
    high: float,
    *,
    optional: bool = True,
    above_low: bool = False,
) -> float | None:
    """``value`` as a float between ``low`` and ``high`` (inclusive, or above ``low`` when
    ``above_low``; never NaN, never -0.0).

    -0.0 becomes 0.0: equal numbers come out as one value with one ``repr``, which the cache
    key relies on."""
    if value is None and optional:
        return None
    if not is_number(value):
        wanted = "a number or None" if optional else "a number"
        raise TypeError(f"{name} must be {wanted}, not {type(value).__name__}")
    number = float(value)  # type: ignore[arg-type]
    if math.isnan(number) or not low <= number <= high or (above_low and number == low):
        span = f"in ({low}, {high}]" if above_low else f"between {low} and {high}"
        raise ValueError(f"{name} must be {span}, got {value!r}")
    return number + 0.0  # -0.0 + 0.0 is 0.0


def positive_number(
    name: str, value: object, *, zero: bool = False, optional: bool = False
) -> float | None:
    """``value`` as a finite float above 0 (or at least 0, when ``zero``); None passes when
    ``optional``. For sizes, rates and ratios; durations that may be a ``timedelta`` use
    :func:`seconds`."""
    if value is None and optional:
        return None
    if not is_number(value):
        wanted = "a number or None" if optional else "a number"
        raise TypeError(f"{name} must be {wanted}, not {type(value).__name__}")
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number) or number < 0 or (number == 0 and not zero):
        bound = "non-negative" if zero else "positive"
        raise ValueError(f"{name} must be a {bound}, finite number, got {value!r}")
    return number + 0.0


def positive_int(name: str, value: object, *, optional: bool = False, low: int = 1) -> int | None:
    """``value`` as an int of at least ``low`` (1 unless given); None too when ``optional``.

    An int subclass (an ``IntEnum``) comes out as a plain int: one value, one ``repr``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        wanted = "an int or None" if optional else "an int"
        raise TypeError(f"{name} must be {wanted}, not {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value!r}")
    return value if type(value) is int else int(value)


def seconds(name: str, value: object, *, optional: bool = True, zero: bool = False) -> float | None:
    """A duration given as seconds (int/float) or a ``timedelta``, as float seconds.

    It must be finite and positive (or zero, when ``zero``); None passes when ``optional``.
    A zero or negative time-to-live or timeout is a caller's mistake, not "no limit".
    """
    if value is None and optional:
        return None
    if isinstance(value, timedelta):
        number = value.total_seconds()
    elif is_number(value):
        number = float(value)  # type: ignore[arg-type]
    else:
        raise TypeError(
            f"{name} must be seconds (int or float) or a timedelta, not {type(value).__name__}"
        )
    if not math.isfinite(number) or number < 0 or (number == 0 and not zero):
        bound = ">= 0" if zero else "positive"
        raise ValueError(f"{name} must be a {bound}, finite duration, got {value!r}")
    return number
