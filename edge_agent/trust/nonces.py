"""Nonces of accepted signed requests, and the latest wall time known to be right; kept across restarts.

``nonces.sqlite3`` in the state directory. A nonce is kept until its request has certainly
expired: until ``expires_at + clock_skew_s`` is behind the *time floor*, the latest wall-clock
time the gateway saw while its clock was synchronised. The same floor decides, while the clock
is not synchronised, which requests have certainly expired (edge_agent.trust.envelope), so a
request whose nonce was forgotten is always refused as expired, never run twice.

Used from the trust thread only (edge_agent.trust.gateway).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

NONCE_DB = "nonces.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS nonces (
  key_id TEXT NOT NULL, nonce TEXT NOT NULL, request_id TEXT NOT NULL, expires_at INTEGER NOT NULL,
  PRIMARY KEY (key_id, nonce));
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value REAL NOT NULL);
"""


class NonceStore:
    """Claim nonces once; advance the time floor (see module docstring)."""

    def __init__(self, path: Path, *, skew_s: float = 120.0) -> None:
        self.path = path
        self.skew_s = skew_s
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        row = self.db.execute("SELECT value FROM meta WHERE name = 'time_floor'").fetchone()
        self.time_floor: float = float(row[0]) if row else 0.0

    def close(self) -> None:
        self.db.close()

    def claim(self, key_id: str, nonce: str, request_id: str, expires_at: int) -> str | None:
        """Record a nonce; None when it is new, else the request id it was first used with."""
        try:
            self.db.execute("INSERT INTO nonces VALUES (?, ?, ?, ?)", (key_id, nonce, request_id, expires_at))
        except sqlite3.IntegrityError:
            row = self.db.execute("SELECT request_id FROM nonces WHERE key_id = ? AND nonce = ?",
                                  (key_id, nonce)).fetchone()
            return str(row[0]) if row else ""
        return None

    def advance(self, now: float) -> int:
        """A synchronised clock says ``now``: raise the floor and forget nonces behind it; returns how many."""
        if now <= self.time_floor:
            return 0
        self.time_floor = now
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('time_floor', ?)", (now,))
        return int(self.db.execute("DELETE FROM nonces WHERE expires_at + ? < ?", (self.skew_s, now)).rowcount)

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM nonces").fetchone()[0])
