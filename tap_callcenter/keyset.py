"""A set of primary keys whose memory does not grow with the window.

The engine remembers every key it emitted from a window, to drop repeats (pages shift
under live inserts). A window of a million calls would hold a million keys in memory;
past ``SPILL_AFTER`` keys the set moves to a temporary SQLite file (exact, not a
probabilistic filter: a false "seen" would lose a call), so peak memory stays that of
``SPILL_AFTER`` keys whatever the window holds.
"""

from __future__ import annotations

import sqlite3
import typing as t

import msgspec

Key = tuple[t.Any, ...]

#: Keys held in memory before the set moves to disk (about 2.5 MiB of them; at 100,000
#: a million calls in one window peaked 9 MiB above 30,000 calls in 30 windows).
SPILL_AFTER = 20_000

_encode = msgspec.json.encode


class KeySet:
    """``add`` and ``in`` for primary keys (tuples of JSON values)."""

    def __init__(self, spill_after: int = SPILL_AFTER) -> None:
        self.spill_after = spill_after
        self._memory: set[Key] = set()
        self._disk: sqlite3.Connection | None = None
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __contains__(self, key: Key) -> bool:
        if self._disk is None:
            return key in self._memory
        row = self._disk.execute("SELECT 1 FROM keys WHERE key = ?", (_encode(key),))
        return row.fetchone() is not None

    def add(self, key: Key) -> None:
        """Remember ``key`` (no effect if it is already there)."""
        if self._disk is None:
            if key not in self._memory:
                self._memory.add(key)
                self._size += 1
                if self._size > self.spill_after:
                    self._spill()
            return
        cursor = self._disk.execute("INSERT OR IGNORE INTO keys VALUES (?)", (_encode(key),))
        self._size += cursor.rowcount

    def _spill(self) -> None:
        # "": SQLite's private temporary database, on disk, deleted when closed
        self._disk = sqlite3.connect("")
        self._disk.execute("PRAGMA journal_mode = OFF")
        self._disk.execute("PRAGMA synchronous = OFF")
        self._disk.execute("CREATE TABLE keys (key BLOB PRIMARY KEY) WITHOUT ROWID")
        self._disk.executemany(
            "INSERT INTO keys VALUES (?)", ((_encode(key),) for key in self._memory)
        )
        self._memory = set()

    def close(self) -> None:
        """Forget every key (and the file, if the set spilled)."""
        self._memory = set()
        if self._disk is not None:
            self._disk.close()
            self._disk = None
