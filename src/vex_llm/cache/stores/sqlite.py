"""``SQLiteStore``: a persistent cache in one SQLite file, shareable by processes on one machine.

stdlib ``sqlite3`` in WAL mode (readers never block the writer) with a busy timeout (writers
from several processes queue instead of failing). Every call runs on one dedicated worker
thread that owns the connection (sqlite3 connections belong to the thread that made them),
so the event loop never waits on disk. Values are ``encode_entry`` JSON; a row that does not
decode reads as a miss and is deleted. ``set`` commits before it returns: with WAL and
``synchronous=NORMAL`` a committed write survives the process being killed (only a power
loss may drop the last few commits; pass ``synchronous="FULL"`` if that matters).

Lifetimes use the wall clock, shared by every process on the machine. LRU order is a sequence
number bumped on every read and write, so eviction order is exact across processes. A read
bumps it (and refreshes the idle deadline) in a small ``usage`` row, never in the entry's own
row, whose rewrite would copy the whole value; and a read of the entry that is already the
most recent writes nothing at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

from vex_llm.cache.config import shorter_lifetime
from vex_llm.cache.entry import CacheEntry, decode_entry, encode_entry
from vex_llm.cache.key import tenant_key_prefix
from vex_llm.cache.stores.base import EVICTION_CAUSES, StoreError, check_bounds
from vex_llm.cache.stores.sqlite_file import CacheFile

__all__ = ["SQLiteStore", "idle_deadline"]

T = TypeVar("T")
log = logging.getLogger("vex_llm.cache")

_NEXT_LRU = "(SELECT IFNULL(MAX(lru), 0) + 1 FROM usage)"
#: How far (s) a read may leave an idle deadline behind before it is written (at most a tenth
#: of the entry's tti): the price of hits on the most recent entry writing nothing.
_TOUCH_SLACK = 1.0
#: How long the connection waits for another process's write lock (ms) outside the writes
#: that must wait ``busy_timeout`` (see ``_patient``): a hit is a read, and its bookkeeping must
#: not wait out a long or stuck transaction.
_QUICK_WAIT_MS = 20


def idle_deadline(now: float, expires_at: float | None, tti: float | None) -> float | None:
    """When an entry read (or written) at ``now`` dies: the idle limit, capped by its ttl."""
    if tti is None:
        return expires_at
    idle = now + tti
    return idle if expires_at is None else min(idle, expires_at)


class SQLiteStore:
    """Entries in the SQLite file at ``path`` (created, with its folder, if missing).

    ``max_entries``/``max_bytes`` bound the file's live entries (None: unbounded), evicting
    least recently used first; ``ttl``/``tti`` (seconds) bound every entry's lifetimes.
    ``busy_timeout`` is how long a write waits for another process's transaction.
    Eviction counts are this process's own (another process's evictions are its own).

    A file that cannot be used (not a database, corrupt, truncated, read-only, from a newer
    vex-llm) raises :class:`BadCacheFile`, one line saying what to do; with
    ``bad_file="move_aside"`` a corrupt file is renamed ``<name>.bad-<time>`` and the store
    starts empty. A file deleted or replaced while the store is open is noticed at the next
    write (or read, at most once a second), logged, and recreated or followed.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_entries: int | None = None,
        max_bytes: int | None = None,
        ttl: float | None = None,
        tti: float | None = None,
        busy_timeout: float = 5.0,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        bad_file: Literal["fail", "move_aside"] = "fail",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or PathLike, not {type(path).__name__}")
        ttl, tti = check_bounds(max_entries, max_bytes, ttl, tti)
        if busy_timeout < 0:
            raise ValueError("busy_timeout must be >= 0")
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be 'NORMAL' or 'FULL'")
        if bad_file not in ("fail", "move_aside"):
            raise ValueError("bad_file must be 'fail' or 'move_aside'")
        self.path = Path(path)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.tti = tti
        self._file = CacheFile(self.path, busy_timeout, synchronous, bad_file)
        self._busy_ms = int(busy_timeout * 1000)
        self._quick_ms = min(_QUICK_WAIT_MS, self._busy_ms)
        self._checked_at = 0.0  # monotonic time of the last look at the file (reads)
        self._clock = clock
        self._evictions = dict.fromkeys(EVICTION_CAUSES, 0)
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._touch_failing = False
        self._pid = os.getpid()
        # What a forked child inherited from its parent: kept referenced, never used or
        # closed (a connection must not cross a fork; closing it could disturb the parent's).
        self._inherited: list[object] = []
        # One thread owns the connection: sqlite3 objects must stay on their thread, and one
        # writer per process is all SQLite allows anyway.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="vex-sqlite")
        try:
            self._call(self._open)
        except BaseException:
            self._executor.shutdown(wait=True)
            raise

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # -- plumbing: everything below runs on the worker thread -------------------------------

    def _open(self) -> None:
        self._conn = self._quick(self._file.open())

    def _quick(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        conn.execute(f"PRAGMA busy_timeout = {self._quick_ms}")
        return conn

    def _follow_file(self, *, reading: bool = False) -> None:
        """Reopen when the file was deleted or replaced (see ``CacheFile.follow``): each
        write looks (one ``stat``), reads at most once a second."""
        if reading:
            now = time.monotonic()
            if now - self._checked_at < 1.0:
                return
            self._checked_at = now
        if self._conn is not None:
            conn = self._file.follow(self._conn)
            if conn is not self._conn:
                self._conn = self._quick(conn)

    def _guard(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite cache {self.path}: {exc}") from exc
        except RuntimeError as exc:  # a newer schema (see migrate)
            raise StoreError(f"sqlite cache {self.path}: {exc}") from exc

    def _check_fork(self) -> None:
        """In a forked child, start over with a thread and a connection of its own.

        A store made before a fork (``gunicorn --preload``, ``multiprocessing``'s default on
        Linux) inherits a worker thread that does not exist in the child, so every call
        would wait forever, and a connection SQLite forbids using across a fork.
        """
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._inherited += [self._conn, self._executor]
        self._conn = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="vex-sqlite")
        if self._closed:
            self._executor.shutdown()  # closed before the fork: it stays closed
        else:
            self._call(self._open)

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the worker thread and wait (for the sync API and construction)."""
        self._check_fork()
        try:
            future = self._executor.submit(self._guard, fn, *args)
        except RuntimeError as exc:
            raise StoreError(f"sqlite cache {self.path} is closed") from exc
        return future.result()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        self._check_fork()
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, self._guard, fn, *args
            )
        except RuntimeError as exc:
            if self._closed:
                raise StoreError(f"sqlite cache {self.path} is closed") from exc
            raise

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"sqlite cache {self.path} is closed")
        return self._conn

    @contextmanager
    def _patient(self) -> Iterator[sqlite3.Connection]:
        """The connection, waiting up to ``busy_timeout`` for another process's write lock:
        writes must wait (they queue behind each other), a hit's bookkeeping must not."""
        conn = self._db
        conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
        try:
            yield conn
        finally:
            conn.execute(f"PRAGMA busy_timeout = {self._quick_ms}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._patient() as conn:
            conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlocks
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _reap(self, conn: sqlite3.Connection, now: float) -> int:
        return conn.execute(
            "DELETE FROM entries WHERE key IN (SELECT key FROM usage WHERE deadline <= ?)",
            (now,),
        ).rowcount

    def _get(self, key: str) -> CacheEntry | None:
        self._follow_file(reading=True)
        now = self._clock()
        conn = self._db
        # A read: the value, its lifetimes, its LRU rank and the top rank (from the index).
        row = conn.execute(
            "SELECT e.value, e.expires_at, e.tti, u.lru, u.deadline, "
            "(SELECT MAX(lru) FROM usage) FROM entries AS e JOIN usage AS u ON u.key = e.key "
            "WHERE e.key = ?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        value, expires_at, tti, lru, deadline, top = row
        if deadline is not None and deadline <= now:
            with contextlib.suppress(sqlite3.OperationalError):  # else the next write reaps it
                if conn.execute(
                    "DELETE FROM entries WHERE key = ? AND key IN "
                    "(SELECT key FROM usage WHERE key = ? AND deadline <= ?)",
                    (key, key, now),
                ).rowcount:
                    self._evictions["expired"] += 1
            return None
        try:
            entry = decode_entry(value)
        except ValueError as exc:
            log.warning("sqlite cache %s: dropping an unreadable entry (%s)", self.path, exc)
            with contextlib.suppress(sqlite3.OperationalError), self._patient():
                conn.execute("DELETE FROM entries WHERE key = ?", (key,))  # or the next set
            return None
        refreshed = deadline if tti is None else idle_deadline(now, expires_at, tti)
        # Already the most recent and the idle deadline barely moves: nothing to write (a
        # key hit again and again, the common case, costs no disk write at all).
        slack = _TOUCH_SLACK if tti is None else min(_TOUCH_SLACK, tti / 10)
        if lru != top or (refreshed or 0.0) - (deadline or 0.0) > slack:
            self._touch(conn, key, refreshed)
        return entry

    def _touch(self, conn: sqlite3.Connection, key: str, deadline: float | None) -> None:
        """Mark ``key`` most recently used, with its refreshed idle deadline: a small row of
        its own, never the value. Best effort: a full disk or a long lock does not fail a
        hit, it only leaves the LRU rank and idle time as they were (logged once)."""
        try:
            conn.execute(
                "UPDATE usage SET lru = (SELECT MAX(lru) FROM usage) + 1, deadline = ? "
                "WHERE key = ?",
                (deadline, key),
            )
        except sqlite3.OperationalError as exc:
            if not self._touch_failing:
                log.warning(
                    "sqlite cache %s: cannot record reads (%s); hits are still served, but "
                    "their LRU rank and idle time are not refreshed until writes work again",
                    self.path,
                    exc,
                )
            self._touch_failing = True
            return
        if self._touch_failing:
            self._touch_failing = False
            log.info("sqlite cache %s: reads are recorded again", self.path)

    def _set(self, key: str, entry: CacheEntry, ttl: float | None, tti: float | None) -> bool:
        blob = encode_entry(entry)
        if self.max_bytes is not None and len(blob) > self.max_bytes:
            self._evictions["size"] += 1
            return False
        self._follow_file()
        now = self._clock()
        ttl, tti = shorter_lifetime(self.ttl, ttl), shorter_lifetime(self.tti, tti)
        expires_at = None if ttl is None else now + ttl
        with self._transaction() as conn:
            expired = self._reap(conn, now)
            # entries.lru and entries.deadline are unused since migration 3 (see usage).
            conn.execute(
                "INSERT INTO entries (key, value, nbytes, expires_at, tti, deadline, lru) "
                "VALUES (?, ?, ?, ?, ?, NULL, 0) ON CONFLICT (key) DO UPDATE SET "
                "value = excluded.value, nbytes = excluded.nbytes, "
                "expires_at = excluded.expires_at, tti = excluded.tti",
                (key, blob, len(blob), expires_at, tti),
            )
            conn.execute(
                "INSERT INTO usage (key, lru, deadline) VALUES "
                f"(?, {_NEXT_LRU}, ?) ON CONFLICT (key) DO UPDATE SET "
                "lru = excluded.lru, deadline = excluded.deadline",
                (key, idle_deadline(now, expires_at, tti)),
            )
            evicted = self._evict_lru(conn, key)
        self._evictions["expired"] += expired
        self._evictions["size"] += evicted
        return True

    def _evict_lru(self, conn: sqlite3.Connection, keep: str) -> int:
        entries, nbytes = conn.execute("SELECT entries, bytes FROM totals").fetchone()
        excess_n = entries - self.max_entries if self.max_entries is not None else 0
        excess_b = nbytes - self.max_bytes if self.max_bytes is not None else 0
        if excess_n <= 0 and excess_b <= 0:
            return 0
        victims: list[tuple[str]] = []
        for victim, size in conn.execute(
            "SELECT u.key, e.nbytes FROM usage AS u JOIN entries AS e ON e.key = u.key "
            "WHERE u.key != ? ORDER BY u.lru",
            (keep,),
        ):
            victims.append((victim,))
            excess_n -= 1
            excess_b -= size
            if excess_n <= 0 and excess_b <= 0:
                break
        conn.executemany("DELETE FROM entries WHERE key = ?", victims)
        return len(victims)

    def _delete(self, key: str) -> bool:
        now = self._clock()
        with self._transaction() as conn:
            row = conn.execute("SELECT deadline FROM usage WHERE key = ?", (key,)).fetchone()
            removed = conn.execute("DELETE FROM entries WHERE key = ?", (key,)).rowcount
        if not removed:
            return False
        live = row is None or row[0] is None or row[0] > now
        self._evictions["explicit" if live else "expired"] += 1
        return live

    def _clear(self) -> None:
        self._follow_file()
        now = self._clock()
        with self._transaction() as conn:
            expired = self._reap(conn, now)
            removed = conn.execute("DELETE FROM entries").rowcount
            conn.execute("DELETE FROM usage")
            conn.execute("DELETE FROM leases WHERE expires_at <= ?", (now,))
        self._evictions["expired"] += expired
        self._evictions["explicit"] += removed

    def _clear_tenant(self, tenant: str | None) -> int:
        # A tenant's keys share a prefix: one range of the primary key, deleted in one
        # transaction (its usage rows follow by trigger, the totals too). Nothing is kept
        # beside the keys, so this works on a file written before a restart, by any process.
        prefix = tenant_key_prefix(tenant)
        after = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # the first string past the prefix
        self._follow_file()
        now = self._clock()
        with self._transaction() as conn:
            expired = self._reap(conn, now)
            removed = conn.execute(
                "DELETE FROM entries WHERE key >= ? AND key < ?", (prefix, after)
            ).rowcount
        self._evictions["expired"] += expired
        self._evictions["explicit"] += removed
        return int(removed)

    def _totals(self) -> tuple[int, int]:
        with self._patient() as conn:
            self._evictions["expired"] += self._reap(conn, self._clock())
            entries, nbytes = conn.execute("SELECT entries, bytes FROM totals").fetchone()
        return int(entries), int(nbytes)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- leases (LeaseStore) ------------------------------------------------------------------

    def _acquire(self, key: str, owner: str, ttl: float) -> bool:
        self._follow_file()
        with self._patient() as conn:
            return self._take_lease(conn, key, owner, ttl)

    def _take_lease(self, conn: sqlite3.Connection, key: str, owner: str, ttl: float) -> bool:
        now = self._clock()
        # Insert, or take over a lease whose holder let it run out; one atomic statement.
        return (
            conn.execute(
                "INSERT INTO leases (key, owner, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, "
                "expires_at = excluded.expires_at WHERE leases.expires_at <= ?",
                (key, owner, now + ttl, now),
            ).rowcount
            == 1
        )

    def _renew(self, key: str, owner: str, ttl: float) -> bool:
        with self._patient() as conn:
            return (
                conn.execute(
                    "UPDATE leases SET expires_at = ? WHERE key = ? AND owner = ? "
                    "AND expires_at > ?",
                    (self._clock() + ttl, key, owner, self._clock()),
                ).rowcount
                == 1
            )

    def _release(self, key: str, owner: str) -> None:
        with self._patient() as conn:
            conn.execute("DELETE FROM leases WHERE key = ? AND owner = ?", (key, owner))

    def _get_or_lease(self, key: str, owner: str, ttl: float) -> tuple[CacheEntry | None, bool]:
        entry = self._get(key)
        if entry is not None:
            return entry, False
        # A miss: look again and take the lease in one write transaction, so nobody stores
        # the answer in between (the hit path above stays a plain read).
        with self._transaction() as conn:
            stored = conn.execute(
                "SELECT 1 FROM entries AS e JOIN usage AS u ON u.key = e.key "
                "WHERE e.key = ? AND (u.deadline IS NULL OR u.deadline > ?)",
                (key, self._clock()),
            ).fetchone()
            if stored is None:
                return None, self._take_lease(conn, key, owner, ttl)
        return self._get(key), False

    def _set_and_release(
        self, key: str, entry: CacheEntry, ttl: float | None, tti: float | None, owner: str
    ) -> bool:
        try:
            return self._set(key, entry, ttl, tti)
        finally:
            self._release(key, owner)

    def _held(self, key: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM leases WHERE key = ? AND expires_at > ?", (key, self._clock())
        ).fetchone()
        return row is not None

    # -- the CacheStore / CacheStoreWithSyncOps / LeaseStore API ---------------------------------

    async def get(self, key: str) -> CacheEntry | None:
        """The live entry for ``key`` (marking it recently used), or None."""
        return await self._run(self._get, key)

    async def set(self, key: str, entry: CacheEntry, ttl: float | None, tti: float | None) -> bool:
        """Store and commit ``entry``; False (a ``size`` eviction) if it exceeds ``max_bytes``."""
        return await self._run(self._set, key, entry, ttl, tti)

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True if a live entry was there."""
        return await self._run(self._delete, key)

    async def clear(self) -> None:
        """Remove every entry in the file."""
        await self._run(self._clear)

    def clear_now(self) -> None:
        """Remove every entry, blocking until done."""
        self._call(self._clear)

    async def clear_tenant(self, tenant: str | None) -> int:
        """Remove ``tenant``'s entries in one transaction; return how many live ones went.
        A write by another process waits for it, so it lands wholly before or after."""
        return await self._run(self._clear_tenant, tenant)

    async def count(self) -> int:
        """The exact number of live entries in the file."""
        return (await self._run(self._totals))[0]

    def count_now(self) -> int:
        """:meth:`count`, blocking."""
        return self._call(self._totals)[0]

    async def total_bytes(self) -> int:
        """The encoded size of all live entries in the file."""
        return (await self._run(self._totals))[1]

    def bytes_now(self) -> int:
        """:meth:`total_bytes`, blocking."""
        return self._call(self._totals)[1]

    def evictions(self) -> Mapping[str, int]:
        """Evictions this process made, by cause."""
        return dict(self._evictions)

    async def acquire_lease(self, key: str, owner: str, ttl: float) -> bool:
        """Take the lease on ``key`` unless another owner holds a live one."""
        return await self._run(self._acquire, key, owner, ttl)

    async def renew_lease(self, key: str, owner: str, ttl: float) -> bool:
        """Extend ``owner``'s lease; False if it had run out or been taken over."""
        return await self._run(self._renew, key, owner, ttl)

    async def release_lease(self, key: str, owner: str) -> None:
        """Drop ``owner``'s lease on ``key``."""
        await self._run(self._release, key, owner)

    async def lease_held(self, key: str) -> bool:
        """True while a live lease on ``key`` exists."""
        return await self._run(self._held, key)

    async def get_or_lease(
        self, key: str, owner: str, ttl: float
    ) -> tuple[CacheEntry | None, bool]:
        """The live entry, or (None, whether ``owner`` took the lease): one worker call."""
        return await self._run(self._get_or_lease, key, owner, ttl)

    async def set_and_release(
        self, key: str, entry: CacheEntry, ttl: float | None, tti: float | None, owner: str
    ) -> bool:
        """Store and commit ``entry``, then drop ``owner``'s lease: one worker call."""
        return await self._run(self._set_and_release, key, entry, ttl, tti, owner)

    async def aclose(self) -> None:
        """Close the connection and stop the worker thread. Idempotent."""
        if self._closed:
            return
        self._check_fork()
        self._closed = True
        try:
            await self._run(self._close)
        finally:
            self._executor.shutdown(wait=False)

    def close(self) -> None:
        """:meth:`aclose` without an event loop (blocking). Idempotent."""
        if self._closed:
            return
        self._check_fork()
        self._closed = True
        try:
            self._call(self._close)
        finally:
            self._executor.shutdown(wait=True)
