"""The audit log: append-only, hash-chained, in SQLite in the state directory (``audit.sqlite3``).

Each record holds what happened (``kind``, ``actor``, ``data``), when (wall time and whether the
clock was synchronised), its sequence number, the hash of the record before it (``prev``) and its
own hash: SHA-256 of the canonical JSON of ``{seq, at, synced, kind, actor, data, prev}``
(:mod:`edge_agent.trust.canonical`). Editing, deleting, inserting or reordering records breaks
the chain at the first record touched, and :meth:`AuditLog.verify` names that record.

A chain alone does not stop someone who can write the file from rewriting it all from some record
on; the gateway's signed heads (``audit/head`` on MQTT), kept by a central system, do: a later log
must extend every head it saw (docs/mqtt.md, docs/security.md).

Retention: :meth:`AuditLog.prune` removes the oldest records after checking them, and leaves a
*checkpoint* in their place: the last removed record's sequence number and hash, signed with the
gateway key, from which verification then starts. Triggers refuse any UPDATE, and any DELETE
not behind the checkpoint, so a bug in the daemon cannot rewrite history either.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nacl.signing import VerifyKey

from drivers.errors import TrustError
from edge_agent.trust.canonical import canonical
from edge_agent.trust.keys import verify

GENESIS = "0" * 64  # the prev of the first record ever written
AUDIT_DB = "audit.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY, at REAL NOT NULL, synced INTEGER NOT NULL, kind TEXT NOT NULL,
  actor TEXT NOT NULL, data TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoint (
  id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL, at REAL NOT NULL,
  gateway TEXT NOT NULL, key_id TEXT NOT NULL, signature TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
  WHEN OLD.seq > (SELECT COALESCE(MAX(seq), 0) FROM checkpoint)
  BEGIN SELECT RAISE(ABORT, 'audit records are removed only behind a checkpoint'); END;
"""

#: ``sign(statement bytes) -> (key id, base64 signature)``: the gateway key (edge_agent.trust.keys.KeyFile).
Signer = Callable[[bytes], tuple[str, str]]


def record_hash(seq: int, at: float, synced: bool, kind: str, actor: str, data: Any, prev: str) -> str:
    doc = {"seq": seq, "at": at, "synced": synced, "kind": kind, "actor": actor, "data": data, "prev": prev}
    return hashlib.sha256(canonical(doc)).hexdigest()


def head_statement(gateway: str, seq: int, hash_: str) -> bytes:
    """What the gateway key signs for a head or a checkpoint: ``{"audit_seq", "gateway", "hash"}``, canonical."""
    return canonical({"gateway": gateway, "audit_seq": seq, "hash": hash_})


@dataclass(frozen=True)
class Head:
    seq: int  # 0: nothing written yet
    hash: str


@dataclass(frozen=True)
class Verification:
    """What :meth:`AuditLog.verify` found; ``broken_at`` is the first record that does not verify."""

    ok: bool
    checked: int
    first_seq: int | None
    head: Head
    broken_at: int | None = None
    problem: str = ""
    checkpoint: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()


class AuditLog:
    """One audit database; use from one thread at a time (the daemon's trust thread, or the CLI)."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        if readonly:
            if not path.exists():
                raise TrustError(f"{path}: no audit log there (the daemon creates it in its state directory)",
                                 reason="missing")
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA secure_delete=ON")  # pruned records name staff: their pages are zeroed
            self.db.executescript(_SCHEMA)
        self._head = self._read_head()

    def close(self) -> None:
        self.db.close()

    # -- writing --------------------------------------------------------------------------------
    def append(self, kind: str, actor: str, data: Mapping[str, Any], *, at: float, synced: bool) -> Head:
        """Add one record after the current head; returns the new head."""
        doc = json.loads(canonical(dict(data)))  # what is stored is what is hashed, floats included
        seq, prev, at = self._head.seq + 1, self._head.hash, round(at, 3)
        digest = record_hash(seq, at, synced, kind, actor, doc, prev)
        self.db.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (seq, at, int(synced), kind, actor, canonical(doc).decode(), prev, digest))
        self._head = Head(seq, digest)
        return self._head

    @property
    def head(self) -> Head:
        return self._head

    def _read_head(self) -> Head:
        row = self.db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        if row is not None:
            return Head(int(row[0]), str(row[1]))
        cp = self.checkpoint()
        return Head(int(cp["seq"]), str(cp["hash"])) if cp else Head(0, GENESIS)

    def checkpoint(self) -> dict[str, Any] | None:
        row = self.db.execute("SELECT seq, hash, at, gateway, key_id, signature FROM checkpoint").fetchone()
        if row is None:
            return None
        return dict(zip(("seq", "hash", "at", "gateway", "key_id", "signature"), row, strict=True))

    def prune(self, before: float, gateway: str, sign: Signer) -> int:
        """Remove the oldest records written before wall time ``before``, behind a signed checkpoint.

        Only a prefix that verifies is removed (pruning must never launder a broken chain). Returns
        how many records went.
        """
        check = self.verify(None)
        limit = check.broken_at or self._head.seq + 1
        rows = self.db.execute("SELECT seq, hash, at FROM audit WHERE seq < ? ORDER BY seq", (limit,))
        last: tuple[int, str] | None = None
        try:
            for seq, digest, at in rows:
                if at >= before:
                    break
                last = (int(seq), str(digest))
        finally:
            rows.close()  # an unfinished read would keep the WAL checkpoint below from truncating
        if last is None or last[0] >= self._head.seq:  # keep at least the head record
            return 0
        key_id, signature = sign(head_statement(gateway, last[0], last[1]))
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("INSERT OR REPLACE INTO checkpoint VALUES (1, ?, ?, ?, ?, ?, ?)",
                            (last[0], last[1], before, gateway, key_id, signature))
            gone = self.db.execute("DELETE FROM audit WHERE seq <= ?", (last[0],)).rowcount
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # nothing of them stays in the WAL either
        return int(gone)

    # -- reading --------------------------------------------------------------------------------
    def records(self, *, since: float | None = None, kind: str | None = None, from_seq: int | None = None,
                limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Records in sequence order, optionally from a wall time, of one kind, from a sequence number."""
        where: list[str] = []
        args: list[float | str | int] = []
        if since is not None:
            where.append("at >= ?")
            args.append(since)
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        if from_seq is not None:
            where.append("seq >= ?")
            args.append(from_seq)
        sql = "SELECT seq, at, synced, kind, actor, data, prev, hash FROM audit"
        sql += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        for seq, at, synced, kind_, actor, data, prev, digest in self.db.execute(sql, args):
            yield {"seq": seq, "at": at, "synced": bool(synced), "kind": kind_, "actor": actor,
                   "data": json.loads(data), "prev": prev, "hash": digest}

    def verify(self, public_key: VerifyKey | None, *, known: Head | None = None) -> Verification:
        """Check the whole chain from its checkpoint (whose signature is checked with ``public_key``).

        ``known``: a head seen earlier (by a central system); the log must still hold it.
        """
        cp = self.checkpoint()
        notes: list[str] = []
        prev, expected = GENESIS, 1
        if cp is not None:
            prev, expected = str(cp["hash"]), int(cp["seq"]) + 1
            if public_key is None:
                notes.append(f"checkpoint at record {cp['seq']}: signature not checked (no gateway public key)")
            elif not verify(public_key, head_statement(cp["gateway"], int(cp["seq"]), prev), str(cp["signature"])):
                return Verification(False, 0, None, Head(int(cp["seq"]), prev), int(cp["seq"]),
                                    f"the checkpoint at record {cp['seq']} is not signed by the gateway key",
                                    cp, tuple(notes))
        first = expected
        checked, found_known = 0, known is None
        rows = self.db.execute("SELECT seq, at, synced, kind, actor, data, prev, hash FROM audit ORDER BY seq")
        for seq, at, synced, kind, actor, data, row_prev, digest in rows:
            problem = ""
            if seq != expected:
                problem = (f"record {expected} is missing (the next record is {seq})" if seq > expected
                           else f"record {seq} is out of place")
                seq = expected
            elif row_prev != prev:
                problem = f"record {seq} does not follow record {seq - 1}: its prev hash is not that record's hash"
            else:
                try:
                    ok = record_hash(seq, at, bool(synced), kind, actor, json.loads(data), row_prev) == digest
                except (ValueError, TypeError):
                    ok = False
                if not ok:
                    problem = f"record {seq} was changed after it was written: its content does not match its hash"
            if problem:
                return Verification(False, checked, first, Head(expected - 1, prev), seq, problem, cp, tuple(notes))
            if known is not None and seq == known.seq:
                if digest != known.hash:
                    return Verification(False, checked, first, Head(seq, digest), seq,
                                        f"record {seq} is not the one in the head seen earlier ({known.hash[:12]})",
                                        cp, tuple(notes))
                found_known = True
            prev, expected, checked = digest, expected + 1, checked + 1
        head = Head(expected - 1, prev)
        if known is not None and not found_known:
            if cp is not None and known.seq == int(cp["seq"]) and known.hash == cp["hash"]:
                found_known = True
            elif cp is not None and known.seq < int(cp["seq"]):
                notes.append(f"the head seen earlier (record {known.seq}) is behind the checkpoint: it was pruned")
                found_known = True
        if not found_known and known is not None:
            return Verification(False, checked, first, head, known.seq,
                                f"the log ends at record {head.seq}: record {known.seq} of the head seen earlier "
                                "is gone (truncated)", cp, tuple(notes))
        return Verification(True, checked, first if checked else None, head, None, "", cp, tuple(notes))
