"""The audit log: tampering with a copied database (edit, delete, insert, reorder) is found at the first
record touched; a clean log, pruned or not, always verifies; ``audit verify`` and ``audit show``."""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.cli import cli
from edge_agent.trust.audit import AuditLog, Head, head_statement, record_hash
from edge_agent.trust.keys import gateway_key
from tests.trust.conftest import AUDIENCE, GATEWAY, NOW


def written(state: Path, n: int = 8) -> AuditLog:
    gateway_key(state, GATEWAY)
    log = AuditLog(state / "audit.sqlite3")
    for i in range(n):
        log.append("command" if i % 2 else "override", f"key-{i % 3}",
                   {"command": "set_override", "level": i / 7, "note": "é ✓", "n": i}, at=NOW + i * 60, synced=True)
    return log


def tamper(db: Path, *statements: str | tuple[str, tuple[Any, ...]]) -> None:
    """What someone with the SD card does: drop the guards, change rows."""
    con = sqlite3.connect(db)
    con.executescript("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
    for st_ in statements:
        sql, args = st_ if isinstance(st_, tuple) else (st_, ())
        con.execute(sql, args)
    con.commit()
    con.close()


def verify(db: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["audit", "verify", "--db", str(db), *extra])
    return result.exit_code, result.output


def forged_insert(db: Path) -> list[tuple[str, tuple[Any, ...]]]:
    """Move records 5.. up by one and write a well-formed record 5 chained to record 4."""
    con = sqlite3.connect(db)
    (prev,) = con.execute("SELECT hash FROM audit WHERE seq = 4").fetchone()
    con.close()
    data = {"command": "set_override", "level": 1.0}
    digest = record_hash(5, NOW, True, "command", "intruder", data, prev)
    return [("UPDATE audit SET seq = seq + 1000 WHERE seq >= 5", ()),
            ("UPDATE audit SET seq = seq - 999 WHERE seq >= 1000", ()),
            ("INSERT INTO audit VALUES (5, ?, 1, 'command', 'intruder', ?, ?, ?)",
             (NOW, json.dumps(data, separators=(",", ":"), sort_keys=True), prev, digest))]


@pytest.mark.parametrize(("attack", "broken_at", "says"), [
    ("edit", 5, "record 5 was changed"),
    ("edit and rehash", 6, "record 6 does not follow record 5"),
    ("delete", 5, "record 5 is missing"),
    ("insert", 6, "record 6"),
    ("reorder", 4, "record 4"),
])  # fmt: skip
def test_tampering_is_found_at_the_first_record_touched(tmp_path: Path, attack: str, broken_at: int,
                                                        says: str) -> None:
    written(tmp_path).close()
    db = tmp_path / "copy" / "audit.sqlite3"
    db.parent.mkdir()
    shutil.copy(tmp_path / "audit.sqlite3", db)
    assert verify(db)[0] == 0
    if attack == "edit":
        tamper(db, "UPDATE audit SET data = replace(data, '\"n\":4', '\"n\":40') WHERE seq = 5")
    elif attack == "edit and rehash":
        con = sqlite3.connect(db)
        seq, at, synced, kind, actor, data, prev, _ = con.execute("SELECT * FROM audit WHERE seq = 5").fetchone()
        con.close()
        doc = {**json.loads(data), "level": 0.0}
        tamper(db, ("UPDATE audit SET data = ?, hash = ? WHERE seq = 5",
                    (json.dumps(doc), record_hash(seq, at, bool(synced), kind, actor, doc, prev))))
    elif attack == "delete":
        tamper(db, "DELETE FROM audit WHERE seq = 5")
    elif attack == "insert":
        tamper(db, *forged_insert(db))
    else:
        tamper(db, "UPDATE audit SET seq = 1004 WHERE seq = 4", "UPDATE audit SET seq = 4 WHERE seq = 5",
               "UPDATE audit SET seq = 5 WHERE seq = 1004")
    code, out = verify(db)
    assert code == 1, out
    assert f"BROKEN at record {broken_at}:" in out and says in out, out


def test_a_truncated_log_is_found_with_a_head_seen_earlier(tmp_path: Path) -> None:
    log = written(tmp_path)
    head = log.head
    log.close()
    assert verify(tmp_path / "audit.sqlite3", "--head", f"{head.seq}:{head.hash}")[0] == 0
    tamper(tmp_path / "audit.sqlite3", "DELETE FROM audit WHERE seq >= 7")
    assert verify(tmp_path / "audit.sqlite3")[0] == 0  # a chain cut at its end still links...
    code, out = verify(tmp_path / "audit.sqlite3", "--head", f"{head.seq}:{head.hash}")
    assert code == 1 and "truncated" in out  # ...but not to the head a central system kept


def test_the_log_refuses_rewrites_itself(tmp_path: Path) -> None:
    log = written(tmp_path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        log.db.execute("UPDATE audit SET actor = 'someone' WHERE seq = 2")
    with pytest.raises(sqlite3.IntegrityError, match="behind a checkpoint"):
        log.db.execute("DELETE FROM audit WHERE seq = 2")
    log.close()


def test_pruning_leaves_a_signed_checkpoint_that_verifies(tmp_path: Path) -> None:
    key = gateway_key(tmp_path, GATEWAY)
    log = written(tmp_path, 10)
    gone = log.prune(NOW + 4 * 60 + 1, AUDIENCE, lambda b: (key.key_id, key.sign(b)))
    assert gone == 5 and log.checkpoint()["seq"] == 5  # type: ignore[index]
    log.append("command", "central", {"after": "prune"}, at=NOW + 9999, synced=True)
    log.close()
    code, out = verify(tmp_path / "audit.sqlite3")
    assert code == 0 and "from the checkpoint at record 5" in out and "head 11" in out, out
    tamper(tmp_path / "audit.sqlite3", "UPDATE checkpoint SET hash = replace(hash, substr(hash, 1, 1), 'f')")
    code, out = verify(tmp_path / "audit.sqlite3")
    assert code == 1 and "checkpoint at record 5 is not signed by the gateway key" in out


def test_a_broken_chain_is_never_pruned_away(tmp_path: Path) -> None:
    written(tmp_path).close()
    tamper(tmp_path / "audit.sqlite3", "DELETE FROM audit WHERE seq = 3")
    key = gateway_key(tmp_path, GATEWAY)
    log = AuditLog(tmp_path / "audit.sqlite3")
    assert log.prune(NOW + 3600, AUDIENCE, lambda b: (key.key_id, key.sign(b))) == 2  # records 1-2, not past 3
    log.close()
    assert "record 3 is missing" in verify(tmp_path / "audit.sqlite3")[1]


entries = st.lists(st.tuples(st.sampled_from(["command", "override", "consent", "config"]), st.text(max_size=10),
                             st.dictionaries(st.text(max_size=6), st.none() | st.booleans() | st.integers() |
                                             st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
                                             max_size=4), st.booleans()), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None)
@given(entries, st.integers(min_value=0, max_value=30))
def test_a_clean_log_always_verifies(records: list[tuple[str, str, dict[str, Any], bool]], keep_after: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        key = gateway_key(state, GATEWAY)
        log = AuditLog(state / "audit.sqlite3")
        for i, (kind, actor, data, synced) in enumerate(records):
            log.append(kind, actor, data, at=NOW + i * 0.0011, synced=synced)
        log.prune(NOW + keep_after * 0.0011, AUDIENCE, lambda b: (key.key_id, key.sign(b)))
        log.close()
        reopened = AuditLog(state / "audit.sqlite3", readonly=True)
        result = reopened.verify(key.signing.verify_key, known=Head(reopened.head.seq, reopened.head.hash))
        reopened.close()
        assert result.ok, result.problem
        assert result.head.seq == len(records)


def test_heads_are_signed_over_seq_hash_and_gateway(tmp_path: Path) -> None:
    key = gateway_key(tmp_path, GATEWAY)
    statement = head_statement(AUDIENCE, 7, "ab" * 32)
    assert statement == f'{{"audit_seq":7,"gateway":"{AUDIENCE}","hash":"{"ab" * 32}"}}'.encode()
    assert key.signing.verify_key.verify(statement, __import__("base64").b64decode(key.sign(statement)))


def test_show_filters_by_kind_time_and_sequence(tmp_path: Path) -> None:
    written(tmp_path).close()
    db = str(tmp_path / "audit.sqlite3")
    out = CliRunner().invoke(cli, ["audit", "show", "--db", db, "--kind", "override", "--json"]).output
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["seq"] for r in rows] == [1, 3, 5, 7] and all(r["kind"] == "override" for r in rows)
    since = CliRunner().invoke(cli, ["audit", "show", "--db", db, "--since", "2025-03-04T10:18:00+00:00", "--json"])
    assert [json.loads(line)["seq"] for line in since.output.splitlines()] == [3, 4, 5, 6, 7, 8]
    tabled = CliRunner().invoke(cli, ["audit", "show", "--db", db, "--from-seq", "7"])
    assert tabled.exit_code == 0 and "SEQ" in tabled.output and "key-0" in tabled.output
    bad = CliRunner().invoke(cli, ["audit", "show", "--db", db, "--since", "yesterday"])
    assert bad.exit_code == 2 and "write 2h, 3d" in bad.output
    missing = CliRunner().invoke(cli, ["audit", "verify", "--db", str(tmp_path / "none.sqlite3")])
    assert missing.exit_code == 1 and "no audit log there" in missing.output
