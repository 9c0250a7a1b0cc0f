"""Trust benchmarks: the cost of checking one signed command and of appending one audit record.

``run()`` returns (name, value, unit) rows, each against the bare library call underneath:

* ``verify_command``: a signed ``set_override`` from raw bytes to the verdict (JSON parse, envelope
  model, canonical bytes, Ed25519 verify, validity and role), against PyNaCl's bare ``verify`` of
  the same bytes;
* ``claim_nonce``: recording the nonce in the persisted store (SQLite, WAL);
* ``append_audit``: one hash-chained record appended and committed, against a bare SQLite INSERT
  of the same row with the same journal settings.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent.trust.audit import AuditLog
from edge_agent.trust.canonical import unb64
from edge_agent.trust.envelope import check, sign_request, signed_bytes
from edge_agent.trust.keys import new_key
from edge_agent.trust.nonces import NonceStore
from edge_agent.trust.policy import Keyring, SecurityConf

N = 3000
GW = "central-library/gw-floor-3"
NOW = 1_741_083_362.0


def per_call_us(fn: Callable[[int], object], n: int = N, repeats: int = 5) -> float:
    """Microseconds per call, the best of ``repeats`` rounds (the least disturbed by other work on the
    machine); ``fn`` gets a number never passed before (unique keys)."""
    counter = iter(range(10**9))
    for _ in range(min(200, n)):  # warm up
        fn(next(counter))
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(n // repeats):
            fn(next(counter))
        best = min(best, (time.perf_counter() - started) / (n // repeats))
    return best * 1e6


def run() -> list[tuple[str, float, str]]:
    key = new_key("central-1")
    ring = Keyring(SecurityConf.model_validate({"keys": [{"id": "central-1", "role": "central",
                                                          "public_key": key.public}]}))
    args = {"target_kind": "zone", "target": "z1-quiet", "level": 0.6, "duration_s": 3600}
    raw = json.dumps(sign_request(key, "set_override", GW, {"id": "ov-17", "args": args}, now=NOW)).encode()
    doc = json.loads(raw)
    public, message = key.signing.verify_key, signed_bytes(doc)
    signature = unb64(doc["auth"]["signature"])

    def full(_: int) -> object:
        verdict = check(ring, "set_override", GW, json.loads(raw), now=NOW + 1, synced=True, time_floor=0)
        assert verdict.accepted and verdict.reason is None
        return verdict

    verify_us = per_call_us(full)
    bare_us = per_call_us(lambda _: public.verify(message, signature))
    rows = [("verify_command (signed set_override, bytes to verdict)", verify_us, "us"),
            ("verify_command / bare Ed25519 verify", verify_us / bare_us, "x"),
            ("bare Ed25519 verify (PyNaCl)", bare_us, "us")]
    with tempfile.TemporaryDirectory() as tmp:
        nonces = NonceStore(Path(tmp) / "nonces.sqlite3")
        rows.append(("claim_nonce (SQLite, WAL)", per_call_us(lambda i: nonces.claim("central-1", f"n{i:020d}",
                                                                                     f"r{i}", 2_000_000_000)), "us"))
        nonces.close()
        log = AuditLog(Path(tmp) / "audit.sqlite3")
        data = {"command": "set_override", "request_id": "ov-17", "args": args, "ok": True,
                "auth": {"policy": "required", "key_id": "central-1", "role": "central", "expiry_checked": True}}
        append_us = per_call_us(lambda i: log.append("command", "central-1", data, at=NOW + i, synced=True))
        log.close()
        bare = sqlite3.connect(Path(tmp) / "bare.sqlite3", isolation_level=None)
        bare.execute("PRAGMA journal_mode=WAL")
        bare.execute("PRAGMA synchronous=NORMAL")
        bare.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, at REAL, synced INTEGER, kind TEXT, actor TEXT, "
                     "data TEXT, prev TEXT, hash TEXT)")
        text, digest = json.dumps(data), "0" * 64
        bare_insert_us = per_call_us(lambda i: bare.execute("INSERT INTO t VALUES (?, ?, 1, 'command', 'c', ?, ?, ?)",
                                                            (i + 1_000_000, NOW, text, digest, digest)))
        bare.close()
    rows += [("append_audit (hash-chained record, committed)", append_us, "us"),
             ("append_audit / bare SQLite INSERT", append_us / bare_insert_us, "x"),
             ("bare SQLite INSERT (WAL, synchronous=NORMAL)", bare_insert_us, "us")]
    return rows


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:<58} {value:>10.4g} {unit}")
