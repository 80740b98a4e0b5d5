"""``FrozenJSON``: a JSON value that cannot change once built, kept as its compact text.

Requests and answers carry JSON that vex-llm does not interpret — a tool's parameter schema,
a ``response_format``, fields a backend added last month — and must hand it on exactly as it
came. Holding it as text makes it immutable (safe to share between coroutines and to keep in a
cache), cheap to hash into a cache key, and cheap to store; :attr:`FrozenJSON.value` gives a
fresh copy to read. Object key order is kept as given, because order can change an answer (a
structured-output schema's property order is the order the model writes the fields in).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_JSON_DEPTH", "FrozenJSON", "freeze", "freeze_optional"]

#: How deeply a value may nest: deep enough for any real schema, shallow enough that walking
#: it can never exhaust the stack.
MAX_JSON_DEPTH = 64


def _check(value: object, where: str, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"{where} nests deeper than {MAX_JSON_DEPTH} levels")
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} holds {value!r}, which JSON cannot carry")
        return
    if isinstance(value, Mapping):
        for name, item in value.items():
            if not isinstance(name, str):
                raise TypeError(f"{where} has a non-string key {name!r}")
            _check(item, f"{where}.{name}", depth + 1)
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]", depth + 1)
        return
    raise TypeError(f"{where} holds a {type(value).__name__}, which is not JSON")


@dataclass(frozen=True, slots=True)
class FrozenJSON:
    """An immutable JSON value, held as compact JSON text (``text``).

    Build it with :meth:`of`; equality is equality of the text, so two values are equal when
    they would be sent identically.
    """

    text: str

    @classmethod
    def of(cls, value: object, name: str = "value") -> FrozenJSON:
        """Freeze ``value`` (dicts, lists, str, int, finite float, bool, None).

        ``TypeError`` for anything JSON cannot hold, ``ValueError`` for NaN/infinity or
        nesting deeper than :data:`MAX_JSON_DEPTH`, each naming where (``name.a[2]``).
        """
        if isinstance(value, FrozenJSON):
            return value
        _check(value, name, 0)
        return cls(json.dumps(value, ensure_ascii=False, separators=(",", ":")))

    @property
    def value(self) -> Any:
        """A fresh copy of the value (changing it changes nothing here)."""
        return json.loads(self.text)

    def __repr__(self) -> str:
        text = self.text if len(self.text) <= 80 else self.text[:77] + "..."
        return f"FrozenJSON({text})"


def freeze(value: object, name: str) -> FrozenJSON:
    """``value`` as a :class:`FrozenJSON` (already frozen values pass through)."""
    return FrozenJSON.of(value, name)


def freeze_optional(value: object, name: str) -> FrozenJSON | None:
    """Like :func:`freeze`, with None kept as None."""
    return None if value is None else FrozenJSON.of(value, name)
