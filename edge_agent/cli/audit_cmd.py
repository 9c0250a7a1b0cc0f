"""``edge-agent audit verify|show``: check the gateway's audit log, read it.

Both read ``audit.sqlite3`` in the state directory directly (read-only; the daemon may be
running). ``verify`` checks every record's hash and link from the signed checkpoint on, and with
``--head SEQ:HASH`` that the log still holds a head a central system saw; it exits 0 when the
log verifies and 1 naming the first broken record when it does not. ``show`` prints records,
``--json`` one JSON object per line (what a central system re-checks; docs/mqtt.md).
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path

import click

from drivers.errors import TrustError
from edge_agent.cli.keys_cmd import config_option, state_dir_of, state_option
from edge_agent.cli.technician import table
from edge_agent.trust.audit import AUDIT_DB, AuditLog, Head
from edge_agent.trust.keys import gateway_public, parse_public_key

db_option = click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
                         help="An audit database elsewhere (a copy) [default: STATE_DIR/audit.sqlite3].")


def _open(db_path: Path | None, state_dir: Path | None, config_path: Path) -> AuditLog:
    path = db_path or state_dir_of(state_dir, config_path) / AUDIT_DB
    try:
        return AuditLog(path, readonly=True)
    except TrustError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def audit() -> None:
    """The gateway's tamper-evident audit log: verify it, read it."""


@audit.command()
@config_option
@state_option
@db_option
@click.option("--public-key", help="The gateway's public key (base64) to check the checkpoint with "
              "[default: STATE_DIR/gateway.pub].")
@click.option("--head", "known", help="SEQ:HASH of a head seen earlier (audit/head): the log must still hold it.")
def verify(config_path: Path, state_dir: Path | None, db_path: Path | None, public_key: str | None,
           known: str | None) -> None:
    """Check the hash chain; exit 1 naming the first broken record."""
    head = None
    if known is not None:
        m = re.fullmatch(r"(\d+):([0-9a-f]{64})", known.strip())
        if m is None:
            raise click.UsageError("--head takes SEQ:HASH, e.g. 1042:9f2c... (64 hex digits)")
        head = Head(int(m[1]), m[2])
    try:
        key = parse_public_key(public_key) if public_key else None
    except ValueError as exc:
        raise click.UsageError(f"--public-key: {exc}") from None
    if key is None:
        try:
            key = gateway_public(db_path.parent if db_path else state_dir_of(state_dir, config_path))[1]
        except TrustError:
            key = None
    log = _open(db_path, state_dir, config_path)
    try:
        result = log.verify(key, known=head)
    finally:
        log.close()
    for note in result.notes:
        click.echo(f"note: {note}")
    if not result.ok:
        click.echo(f"{log.path}: BROKEN at record {result.broken_at}: {result.problem}", err=True)
        click.echo(f"  the {result.checked} records before it verify", err=True)
        raise click.exceptions.Exit(1)
    start = f"from the checkpoint at record {result.checkpoint['seq']}, " if result.checkpoint else ""
    click.echo(f"{log.path}: {result.checked} records verify ({start}head {result.head.seq} {result.head.hash})")


def parse_since(value: str) -> float:
    """``30m``, ``2h``, ``7d`` ago, or an ISO date / date and time (local time unless it says otherwise)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", value.strip())
    if m:
        return time.time() - float(m[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m[2]]
    try:
        return datetime.fromisoformat(value.strip()).timestamp()
    except ValueError:
        raise click.BadParameter(f"{value!r}: write 2h, 3d or a date such as 2025-03-04 or 2025-03-04T10:00",
                                 param_hint="--since") from None


@audit.command()
@config_option
@state_option
@db_option
@click.option("--since", help="Only records since then: 2h, 3d, or 2025-03-04[T10:00].")
@click.option("--kind", help="Only records of this kind (command, override, consent, calibration, config, ...).")
@click.option("--from-seq", type=click.IntRange(min=0), help="Only records from this sequence number on.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many records.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, with prev and hash.")
def show(config_path: Path, state_dir: Path | None, db_path: Path | None, since: str | None, kind: str | None,
         from_seq: int | None, limit: int | None, as_json: bool) -> None:
    """Print audit records, oldest first."""
    log = _open(db_path, state_dir, config_path)
    try:
        records = list(log.records(since=parse_since(since) if since else None, kind=kind, from_seq=from_seq,
                                   limit=limit))
    finally:
        log.close()
    if as_json:
        for rec in records:
            click.echo(json.dumps(rec, ensure_ascii=False))
        return
    rows = [[r["seq"], _when(r["at"], r["synced"]), r["kind"], r["actor"], _summary(r["data"])] for r in records]
    click.echo(table(["seq", "at", "kind", "actor", "what"], rows) if rows else "no records")


def _when(at: float, synced: bool) -> str:
    text = datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")
    return text if synced else text + " (clock not synced)"


def _summary(data: dict[str, object]) -> str:
    text = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in data.items())
    return text if len(text) <= 100 else text[:97] + "..."
