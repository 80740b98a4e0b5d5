"""The SQLite store's file: bad files at start-up, moving one aside, deleted while serving."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vex_llm.cache.stores import SQLiteStore, StoreError
from vex_llm.cache.stores.sqlite_file import BadCacheFile
from vex_llm.cache.stores.sqlite_schema import MIGRATIONS

from .test_conformance import entry


def _good_file(path: Path) -> None:
    store = SQLiteStore(path)
    for i in range(50):
        store._call(store._set, f"k{i}", entry("x" * 3000), None, None)
    store.close()


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a sqlite file" * 100)


def _zeroed(path: Path) -> None:
    _good_file(path)
    path.write_bytes(b"\0" * path.stat().st_size)


def _truncated(path: Path) -> None:
    _good_file(path)
    os.truncate(path, path.stat().st_size // 2)


def bad_copies(folder: Path) -> list[Path]:
    """The files moved aside in ``folder`` (not their -wal/-shm)."""
    return sorted(folder.glob("*.bad-*[0-9]Z"))


BAD_FILES: dict[str, tuple[Callable[[Path], None], str]] = {
    "garbage": (_garbage, "is not a SQLite database"),
    "zeroed": (_zeroed, "is not a SQLite database"),
    "truncated": (_truncated, "is corrupt or truncated"),
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_a_bad_file_is_one_clear_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "cache.db"
    spoil, problem = BAD_FILES[kind]
    spoil(path)
    with pytest.raises(BadCacheFile) as caught:
        SQLiteStore(path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    assert problem in message
    assert "bad_file=move_aside" in message  # what to do
    assert caught.value.movable
    assert isinstance(caught.value, StoreError)


@pytest.mark.parametrize("kind", BAD_FILES)
async def test_move_aside_keeps_the_bad_file_and_starts_empty(
    tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache.db"
    BAD_FILES[kind][0](path)
    original = path.read_bytes()
    with caplog.at_level(logging.WARNING, logger="vex_llm.cache"):
        store = SQLiteStore(path, bad_file="move_aside")
    assert await store.count() == 0
    assert await store.set("k", entry("v"), None, None)
    await store.aclose()
    (moved,) = bad_copies(tmp_path)
    assert moved.read_bytes() == original
    assert f"moved it to {moved.name}" in caplog.text
    reopened = SQLiteStore(path)
    assert reopened.count_now() == 1
    reopened.close()


def test_a_newer_schema_is_never_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS) + 1,))
    conn.close()
    with pytest.raises(BadCacheFile, match="newer vex-llm: upgrade vex-llm") as caught:
        SQLiteStore(path, bad_file="move_aside")
    assert not caught.value.movable
    assert bad_copies(tmp_path) == []


@pytest.fixture
def read_only() -> Iterator[Callable[[Path], None]]:
    """Make a file unwritable even for root (immutable), or skip where that is impossible."""
    made: list[Path] = []

    def make(path: Path) -> None:
        path.chmod(0o444)
        if os.geteuid() == 0:
            chattr = shutil.which("chattr")
            if chattr is None or subprocess.run([chattr, "+i", str(path)]).returncode != 0:
                pytest.skip("cannot make a file read-only for root here")
            made.append(path)

    yield make
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def test_a_read_only_file_is_refused_at_start_up_not_at_the_first_write(
    tmp_path: Path, read_only: Callable[[Path], None]
) -> None:
    # SQLite opens a file it cannot write read-only without a word: the first write failed,
    # long after start-up.
    path = tmp_path / "ro.db"
    _good_file(path)
    read_only(path)
    with pytest.raises(BadCacheFile, match=r"cannot be written .*write access") as caught:
        SQLiteStore(path, bad_file="move_aside")
    assert str(path) in str(caught.value)
    assert not caught.value.movable
    assert bad_copies(tmp_path) == []  # moving it aside would not help


async def test_a_file_deleted_while_serving_is_recreated_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "gone.db"
    store = SQLiteStore(path)
    await store.set("before", entry("old"), None, None)
    path.unlink()  # an operator's rm; the -wal and -shm stay behind
    with caplog.at_level(logging.WARNING, logger="vex_llm.cache"):
        await store.set("after", entry("new"), None, None)
        await store.set("after 2", entry("new"), None, None)
    assert caplog.text.count("was deleted while in use") == 1
    assert path.exists()
    assert await store.get("after") is not None
    await store.aclose()
    reopened = SQLiteStore(path)  # what a restart finds: the entries written afterwards
    assert reopened.count_now() == 2
    assert reopened._call(reopened._get, "after") is not None
    reopened.close()


async def test_a_file_replaced_while_serving_is_followed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "live.db"
    store = SQLiteStore(path)
    await store.set("mine", entry("v"), None, None)
    other = SQLiteStore(tmp_path / "other.db")
    await other.set("theirs", entry("w"), None, None)
    await other.aclose()
    os.replace(tmp_path / "other.db", path)
    with caplog.at_level(logging.WARNING, logger="vex_llm.cache"):
        await store.set("next", entry("x"), None, None)
    assert "replaced by another file" in caplog.text
    assert await store.get("theirs") is not None
    assert await store.count() == 2
    await store.aclose()


def test_the_cli_prints_one_line_and_exits_1_for_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    _zeroed(path)
    url = f"sqlite:///{path}"
    for args in (
        ["cache", "stats", "--store", url],
        ["serve", "--upstream", "http://127.0.0.1:9/v1", "--model", "m", "--store", url],
        ["serve", "--upstream", "http://127.0.0.1:9/v1", "--model", "m", "--store", url,
         "--workers", "2"],
    ):  # fmt: skip
        result = subprocess.run(
            [sys.executable, "-m", "vex_llm", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert str(path) in lines[0]
        assert "is not a SQLite database" in lines[0]
    assert "--move-bad-cache" in lines[0]
