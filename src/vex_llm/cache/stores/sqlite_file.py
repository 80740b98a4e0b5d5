"""The SQLite store's file: what is wrong with a bad one, moving it aside, noticing it vanish.

A cache file can be unusable when the store opens it: not a database at all (overwritten,
zeroed), corrupt or truncated, written by a newer vex-llm, or not writable (read-only file,
folder or file system). :func:`diagnose` turns the failure into :class:`BadCacheFile`, one
sentence naming the file, what is wrong and what to do. The file only holds cached answers,
so a broken one may be moved aside (:func:`move_aside`) and replaced by an empty one, but only
when asked: the path may name a file that is not ours. :class:`FileIdentity` notices that the
file was deleted or replaced while the store had it open (its writes would go to a file
nobody will ever open again).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vex_llm.cache.stores.base import StoreError
from vex_llm.cache.stores.sqlite_schema import migrate

__all__ = ["BadCacheFile", "CacheFile", "FileIdentity", "check_writable", "diagnose", "move_aside"]

log = logging.getLogger("vex_llm.cache")

_MOVABLE_REMEDY = (
    "it holds only cached answers: delete it or move it away, or open the store with "
    "bad_file=move_aside to have it moved aside and start empty"
)

_READ_ONLY = (
    "give the proxy's user write access to the file and its folder, or point the store at "
    "another file"
)


class BadCacheFile(StoreError):
    """The SQLite cache file cannot be used; the message is one line: file, problem, remedy.

    ``movable`` is True when moving the file aside and starting empty would fix it (a
    corrupt file), False when it would not or must not (read-only, a newer vex-llm's file).
    """

    def __init__(self, path: Path, problem: str, remedy: str, *, movable: bool) -> None:
        super().__init__(f"sqlite cache {path} {problem}: {remedy}")
        self.path = path
        self.problem = problem
        self.movable = movable


def check_writable(path: Path) -> None:
    """Raise :class:`BadCacheFile` if ``path`` (or, for a new file, its folder) is read-only.

    SQLite opens a file it cannot write read-only without a word, and only the first write
    fails, long after start-up.
    """
    try:
        if path.exists():
            os.close(os.open(path, os.O_RDWR))
        elif not os.access(path.parent, os.W_OK | os.X_OK):
            raise PermissionError(13, "its folder is not writable")
    except OSError as exc:  # EACCES, EPERM (immutable), EROFS (read-only file system)
        problem = f"cannot be written ({exc.strerror or exc})"
        raise BadCacheFile(path, problem, _READ_ONLY, movable=False) from exc


def diagnose(path: Path, exc: BaseException) -> BadCacheFile | None:
    """What ``exc``, raised while opening ``path``, says about the file (None: not the file's
    fault, e.g. a lock held by another process)."""
    if isinstance(exc, RuntimeError):  # migrate(): a newer schema
        return BadCacheFile(
            path,
            "was written by a newer vex-llm",
            "upgrade vex-llm, or point the store at another file",
            movable=False,
        )
    if not isinstance(exc, sqlite3.Error):
        return None
    name = getattr(exc, "sqlite_errorname", "")
    if name == "SQLITE_NOTADB":
        problem = "is not a SQLite database (overwritten or zeroed?)"
        return BadCacheFile(path, problem, _MOVABLE_REMEDY, movable=True)
    if name.startswith("SQLITE_CORRUPT"):
        problem = "is corrupt or truncated (database disk image is malformed)"
        return BadCacheFile(path, problem, _MOVABLE_REMEDY, movable=True)
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")):
        return BadCacheFile(path, f"cannot be written ({exc})", _READ_ONLY, movable=False)
    return None


def move_aside(path: Path) -> Path:
    """Rename ``path`` (and its ``-wal``/``-shm`` files) to ``<name>.bad-<UTC time>``; return
    the new name of the main file."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.bad-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.bad-{stamp}-{n}")
    for suffix in ("-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.rename(target.with_name(target.name + suffix))
    path.rename(target)
    return target


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """A file's device and inode: the same path may later name another file, or none."""

    device: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> FileIdentity | None:
        """The identity of the file at ``path`` now (None: there is none)."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        return cls(st.st_dev, st.st_ino)


class CacheFile:
    """Connections to the cache file at ``path``: opened with a diagnosis of a bad file, and
    followed when the file is deleted or replaced. Runs on the store's worker thread."""

    def __init__(
        self,
        path: Path,
        busy_timeout: float,
        synchronous: Literal["NORMAL", "FULL"],
        bad_file: Literal["fail", "move_aside"],
    ) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous
        self._bad_file = bad_file
        self._identity: FileIdentity | None = None
        # Connections to a replaced file: never used again, never closed (see follow).
        self._abandoned: list[sqlite3.Connection] = []

    def open(self) -> sqlite3.Connection:
        """A migrated connection in WAL mode; :class:`BadCacheFile` if the file is unusable
        (a corrupt one is moved aside first when ``bad_file="move_aside"``)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadCacheFile(
                self.path,
                f"cannot be created ({exc.strerror or exc})",
                "create its folder, or point the store at another file",
                movable=False,
            ) from exc
        check_writable(self.path)
        try:
            conn = self._connect()
        except (sqlite3.Error, RuntimeError) as exc:
            bad = diagnose(self.path, exc)
            if bad is None:
                raise
            if not (bad.movable and self._bad_file == "move_aside"):
                raise bad from exc
            moved = move_aside(self.path)
            log.warning(
                "sqlite cache %s %s: moved it to %s, starting with an empty cache",
                self.path,
                bad.problem,
                moved.name,
            )
            conn = self._connect()
        self._identity = FileIdentity.of(self.path)
        return conn

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        try:
            self._wal(conn)
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _wal(self, conn: sqlite3.Connection) -> None:
        """Put the file in WAL mode (it stays so: later opens find it there).

        Switching needs the file to itself, and SQLite answers "database is locked" at once
        rather than waiting when another process is opening or migrating the same new file
        (two workers starting together): that is retried until ``busy_timeout``.
        """
        deadline = time.monotonic() + self._busy_timeout
        pause = 0.005
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)  # on the store's own thread, never the event loop
            pause = min(pause * 2, 0.1)

    def follow(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        """``conn``, or a new connection if the file was deleted (recreated) or replaced
        (the new file is used) since it was opened; each is logged once.

        Writes to a deleted file are lost on restart, and another process may have created a
        new one already.
        """
        current = FileIdentity.of(self.path)
        if current == self._identity:
            return conn
        if current is None:
            log.warning(
                "sqlite cache %s was deleted while in use: recreating it (entries stored "
                "before are gone)",
                self.path,
            )
            # Its -wal and -shm belong to the deleted file: a new file must not replay them.
            for suffix in ("-wal", "-shm"):
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
            conn.close()
        else:
            log.warning(
                "sqlite cache %s was replaced by another file while in use: using the new one",
                self.path,
            )
            # Our -wal may still sit beside the new file, which would read it as its own:
            # fold it into the old file and empty it. Not closed: the last connection to a
            # file deletes "<path>-wal" on close, and that may be the new file's by now.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._abandoned.append(conn)
        return self.open()
