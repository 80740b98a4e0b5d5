"""Bad bounds and lifetimes are refused when a store is built, never silently kept."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vex_llm.cache.stores import MemoryStore, RedisStore, SQLiteStore, open_store

BAD = [
    ({"ttl": -1.0}, ValueError),
    ({"ttl": 0}, ValueError),
    ({"tti": float("nan")}, ValueError),
    ({"tti": float("inf")}, ValueError),
    ({"ttl": "60"}, TypeError),
    ({"max_entries": 0}, ValueError),
    ({"max_bytes": -5}, ValueError),
    ({"max_entries": True}, (TypeError, ValueError)),
]


def _makers(tmp_path: Path) -> dict[str, Callable[..., Any]]:
    return {
        "memory": lambda **kw: MemoryStore(**{"max_entries": 10, **kw}),
        "sqlite": lambda **kw: SQLiteStore(tmp_path / "c.db", **kw),
        "redis": lambda **kw: RedisStore("redis://127.0.0.1:1/0", **kw),
        "url": lambda **kw: open_store(f"sqlite:///{tmp_path}/u.db", **kw),
    }


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis", "url"])
@pytest.mark.parametrize(("options", "error"), BAD)
def test_bad_bounds_are_refused(
    kind: str, options: dict[str, Any], error: type[Exception], tmp_path: Path
) -> None:
    with pytest.raises(error, match=r"ttl|tti|max_entries|max_bytes"):
        _makers(tmp_path)[kind](**options)
