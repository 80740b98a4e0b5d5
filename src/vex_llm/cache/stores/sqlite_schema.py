"""The SQLite store's schema: an append-only list of migrations and the code that applies them.

Each migration is a tuple of statements; the database records how many it has applied in
``schema_version``. Migrations are never edited or removed once released, only appended: a
file written by any earlier version upgrades in place, and a file written by a newer version
is refused rather than misread. Applying runs under ``BEGIN IMMEDIATE`` so two processes
opening a fresh file at once cannot both migrate it.
"""

from __future__ import annotations

import sqlite3

__all__ = ["MIGRATIONS", "migrate", "schema_version"]

#: Migration N (1-based) brings the schema from version N-1 to N. Append only.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: entries with absolute and idle expiry, an LRU sequence, and running totals kept by
    #    triggers so that bounds are checked in O(1) instead of COUNT(*)/SUM() per write.
    (
        """CREATE TABLE entries (
            key        TEXT PRIMARY KEY,
            value      BLOB NOT NULL,      -- encode_entry() JSON, never pickle
            nbytes     INTEGER NOT NULL,
            expires_at REAL,               -- absolute deadline (unix s), NULL: none
            tti        REAL,               -- idle lifetime (s), NULL: none
            deadline   REAL,               -- when it dies: min(expires_at, last read + tti)
            lru        INTEGER NOT NULL    -- larger = used more recently
        )""",
        "CREATE INDEX entries_lru ON entries (lru)",
        "CREATE INDEX entries_deadline ON entries (deadline) WHERE deadline IS NOT NULL",
        """CREATE TABLE totals (
            id      INTEGER PRIMARY KEY CHECK (id = 0),
            entries INTEGER NOT NULL,
            bytes   INTEGER NOT NULL
        )""",
        "INSERT INTO totals (id, entries, bytes) VALUES (0, 0, 0)",
        """CREATE TRIGGER entries_insert AFTER INSERT ON entries BEGIN
            UPDATE totals SET entries = entries + 1, bytes = bytes + new.nbytes WHERE id = 0;
        END""",
        """CREATE TRIGGER entries_delete AFTER DELETE ON entries BEGIN
            UPDATE totals SET entries = entries - 1, bytes = bytes - old.nbytes WHERE id = 0;
        END""",
        """CREATE TRIGGER entries_update AFTER UPDATE OF nbytes ON entries BEGIN
            UPDATE totals SET bytes = bytes - old.nbytes + new.nbytes WHERE id = 0;
        END""",
    ),
    # 2: leases for cross-process single-flight (see LeaseStore).
    (
        """CREATE TABLE leases (
            key        TEXT PRIMARY KEY,
            owner      TEXT NOT NULL,
            expires_at REAL NOT NULL
        )""",
    ),
    # 3: what a read changes (the LRU rank and the idle deadline) moves to small rows of its
    #    own. Updating those columns in ``entries`` rewrote the whole row, value included: a
    #    hit on a 10 MB entry wrote 17 MB. ``entries.lru`` and ``entries.deadline`` stay (the
    #    schema is append-only) but are no longer read or kept up to date.
    (
        """CREATE TABLE usage (
            key      TEXT PRIMARY KEY,
            lru      INTEGER NOT NULL,  -- larger = used more recently
            deadline REAL               -- when it dies: min(expires_at, last read + tti)
        ) WITHOUT ROWID""",
        "INSERT INTO usage (key, lru, deadline) SELECT key, lru, deadline FROM entries",
        "DROP INDEX entries_lru",
        "DROP INDEX entries_deadline",
        "CREATE INDEX usage_lru ON usage (lru)",
        "CREATE INDEX usage_deadline ON usage (deadline) WHERE deadline IS NOT NULL",
        """CREATE TRIGGER entries_forget AFTER DELETE ON entries BEGIN
            DELETE FROM usage WHERE key = old.key;
        END""",
    ),
)


def schema_version(conn: sqlite3.Connection) -> int:
    """The number of migrations applied to ``conn``'s database (0 for a new file)."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(conn: sqlite3.Connection, migrations: tuple[tuple[str, ...], ...] = MIGRATIONS) -> int:
    """Apply the pending ``migrations`` in one transaction; return the resulting version.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Raises ``RuntimeError``
    if the file was written by a newer schema than this code knows.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(conn)
        if current > len(migrations):
            raise RuntimeError(
                f"cache database has schema version {current}, newer than this vex-llm "
                f"understands ({len(migrations)}); upgrade vex-llm or use another file"
            )
        for version in range(current + 1, len(migrations) + 1):
            for statement in migrations[version - 1]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(migrations)
