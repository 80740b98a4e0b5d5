"""SQLiteStore specifics: schema migrations, corrupt rows and files, WAL, closing, leases."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest

from vex_llm.cache.entry import encode_entry
from vex_llm.cache.stores import SQLiteStore, StoreError
from vex_llm.cache.stores.sqlite import idle_deadline
from vex_llm.cache.stores.sqlite_schema import MIGRATIONS, migrate, schema_version

from .test_conformance import entry


def test_idle_deadline_is_capped_by_the_ttl() -> None:
    assert idle_deadline(100.0, None, None) is None
    assert idle_deadline(100.0, 150.0, None) == 150.0
    assert idle_deadline(100.0, None, 30.0) == 130.0
    assert idle_deadline(100.0, 110.0, 30.0) == 110.0


def test_new_file_gets_every_migration_and_wal(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "sub" / "dir" / "c.db")  # folders are created
    store.close()
    conn = sqlite3.connect(tmp_path / "sub" / "dir" / "c.db")
    assert schema_version(conn) == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_an_old_file_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS[:1])  # a file written before leases existed
    conn.close()
    store = SQLiteStore(path)
    try:
        store.count_now()
        conn = sqlite3.connect(path)
        assert schema_version(conn) == len(MIGRATIONS)
        assert conn.execute("SELECT COUNT(*) FROM leases").fetchone() == (0,)
        conn.close()
    finally:
        store.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS) + 1,))
    conn.close()
    with pytest.raises(StoreError, match="written by a newer vex-llm: upgrade"):
        SQLiteStore(path)


def test_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a sqlite file" * 100)
    with pytest.raises(StoreError, match=r"junk\.db"):
        SQLiteStore(path)


def test_bad_arguments_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        SQLiteStore(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_entries"):
        SQLiteStore(tmp_path / "x.db", max_entries=0)


async def test_corrupt_row_reads_as_a_miss_and_goes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c.db"
    store = SQLiteStore(path)
    await store.set("good", entry("fine"), None, None)
    await store.set("bad", entry("soon broken"), None, None)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE entries SET value = ? WHERE key = 'bad'", (b'{"v": 1, "content": ',))
    conn.commit()
    conn.close()
    with caplog.at_level(logging.WARNING, logger="vex_llm.cache"):
        assert await store.get("bad") is None
    assert "unreadable entry" in caplog.text
    assert await store.count() == 1
    assert await store.get("good") is not None
    await store.aclose()


async def test_set_is_committed_when_it_returns(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    store = SQLiteStore(path)
    await store.set("k", entry("durable"), None, None)
    # Another connection (as another process would) sees it at once: nothing is buffered.
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM entries WHERE key = 'k'").fetchone() == (1,)
    conn.close()
    await store.aclose()


async def test_two_stores_on_one_file_share_entries_and_bounds(tmp_path: Path) -> None:
    a = SQLiteStore(tmp_path / "s.db", max_entries=2)
    b = SQLiteStore(tmp_path / "s.db", max_entries=2)
    await a.set("1", entry("one"), None, None)
    await b.set("2", entry("two"), None, None)
    assert await a.get("1") is not None  # "2" is now least recently used, across both
    await b.set("3", entry("three"), None, None)
    assert await a.get("2") is None
    assert await a.count() == await b.count() == 2
    await a.aclose()
    await b.aclose()


async def test_closed_store_raises_store_error(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "z.db")
    await store.aclose()
    await store.aclose()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        await store.get("k")
    with pytest.raises(StoreError, match="closed"):
        store.count_now()


async def test_locked_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = SQLiteStore(path, busy_timeout=0.05)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    try:
        with pytest.raises(StoreError, match="locked"):
            await store.set("k", entry("v"), None, None)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert await store.set("k", entry("v"), None, None)
    await store.aclose()


async def test_leases(tmp_path: Path) -> None:
    now = [1000.0]
    store = SQLiteStore(tmp_path / "l.db", clock=lambda: now[0])
    assert await store.acquire_lease("k", "a", 5.0)
    assert not await store.acquire_lease("k", "b", 5.0)
    assert await store.lease_held("k")
    assert not await store.renew_lease("k", "b", 5.0)
    now[0] += 4.0
    assert await store.renew_lease("k", "a", 5.0)  # good until 1009
    now[0] += 4.5
    assert not await store.acquire_lease("k", "b", 5.0)
    now[0] += 1.0  # the holder went quiet: its lease ran out
    assert not await store.lease_held("k")
    assert await store.acquire_lease("k", "b", 5.0)
    await store.release_lease("k", "a")  # not a's any more: no effect
    assert await store.lease_held("k")
    await store.release_lease("k", "b")
    assert not await store.lease_held("k")
    await store.aclose()


def _use_inherited_store(store: SQLiteStore) -> None:
    import asyncio
    import os

    async def roundtrip() -> str:
        await store.set("from-child", entry("child answer"), None, None)
        got = await store.get("from-child")
        return "" if got is None else got.response.content

    try:
        answer = asyncio.run(asyncio.wait_for(roundtrip(), 5))
    except BaseException:
        os._exit(2)  # hung (TimeoutError) or failed
    os._exit(0 if answer == "child answer" else 3)


def test_a_store_inherited_through_fork_works_in_the_child(tmp_path: Path) -> None:
    # A store made before a fork (gunicorn --preload, multiprocessing's default on Linux)
    # inherits a worker thread that does not exist in the child: calls must not hang.
    import multiprocessing

    store = SQLiteStore(tmp_path / "forked.db")
    try:
        child = multiprocessing.get_context("fork").Process(
            target=_use_inherited_store, args=(store,)
        )
        child.start()
        child.join(20)
        assert child.exitcode == 0
        assert store.count_now() == 1  # the child's write is in the shared file
    finally:
        store.close()


def _bytes_written() -> int:
    """Bytes this process has passed to write calls so far (Linux)."""
    with open("/proc/self/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("wchar:"))


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io")
async def test_hits_do_not_rewrite_the_value(tmp_path: Path) -> None:
    # A hit used to update the LRU and idle columns in the entry's own row, which rewrote
    # the whole row: five hits on a 10 MB entry wrote 86 MB (and failed on a full disk).
    store = SQLiteStore(tmp_path / "h.db", tti=3600)
    big = entry("x" * 2_000_000)
    await store.set("big", big, None, None)
    await store.set("small", entry("s"), None, None)  # "big" is not the most recent
    before = _bytes_written()
    for _ in range(5):
        got = await store.get("big")
        assert got is not None
        assert got.response.content == big.response.content
    written = _bytes_written() - before
    assert written < 100_000, written  # one small usage row per rank change, not 10 MB
    await store.aclose()


async def test_hits_on_the_most_recent_entry_write_nothing(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    store = SQLiteStore(path)
    await store.set("k", entry("v"), None, None)
    blocker = sqlite3.connect(path, isolation_level=None)
    changes = blocker.execute("PRAGMA data_version").fetchone()
    for _ in range(5):
        assert await store.get("k") is not None
    assert blocker.execute("PRAGMA data_version").fetchone() == changes  # nobody committed
    blocker.close()
    await store.aclose()


async def test_a_hit_is_served_when_its_rank_cannot_be_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A full disk, or another process holding the write lock too long: the hit is a read,
    # and the failed bookkeeping only leaves its LRU rank where it was (logged once).
    path = tmp_path / "w.db"
    store = SQLiteStore(path)  # writes would wait 5 s for the lock; a hit does not
    await store.set("a", entry("first"), None, None)
    await store.set("b", entry("second"), None, None)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with caplog.at_level(logging.WARNING, logger="vex_llm.cache"):
            for _ in range(3):
                started = time.perf_counter()
                got = await store.get("a")
                assert time.perf_counter() - started < 1.0
                assert got is not None
                assert got.response.content == "first"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert caplog.text.count("cannot record reads") == 1
    assert await store.get("a") is not None
    await store.aclose()


async def test_a_version_2_file_keeps_its_entries_order_and_deadlines(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS[:2])
    blob = encode_entry(entry("old"))
    rows = [("a", 3, None), ("b", 1, None), ("c", 2, 9e12)]  # b is least recently used
    for key, lru, deadline in rows:
        conn.execute(
            "INSERT INTO entries (key, value, nbytes, expires_at, tti, deadline, lru) "
            "VALUES (?, ?, ?, NULL, NULL, ?, ?)",
            (key, blob, len(blob), deadline, lru),
        )
    conn.close()
    store = SQLiteStore(path, max_entries=3)
    assert await store.count() == 3
    await store.set("d", entry("new"), None, None)
    assert await store.get("b") is None  # the oldest went, as ranked before the upgrade
    assert [await store.get(k) is not None for k in "acd"] == [True, True, True]
    await store.aclose()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT deadline FROM usage WHERE key = 'c'").fetchone() == (9e12,)
    conn.close()
