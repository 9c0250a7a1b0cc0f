"""``edge-agent privacy report|export|erase``: what the gateway keeps, and a patron's rights on it.

``report`` reads the state directory directly (read-only; the daemon may be running or not) and
prints every store of :data:`edge_agent.privacy.stores.STORES`: purpose, the personal data it may
hold, the retention in force, its size, oldest record, file mode and owner, and a warning for a
store with personal data that every local account can read. It also shows the publication policy
and today's epsilon account. docs/privacy.md holds the same table.

``export SUBJECT`` and ``erase SUBJECT`` ask the running daemon (it owns the consent store and
the tag table in its memory), through the control socket; both are recorded in the audit log.
SUBJECT is the patron's tag id, as the patron system names it in ``consent_set``.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from drivers.errors import EdgeError
from edge_agent.cli.keys_cmd import config_option, state_dir_of, state_option
from edge_agent.cli.technician import control_options, daemon, emit_json, table


@click.group()
def privacy() -> None:
    """What the gateway keeps and for how long; a patron's export and erasure."""


def _site(config_path: Path) -> Any:
    from edge_agent.config import load_config

    if not config_path.is_file():
        return None
    try:
        return load_config(config_path)
    except EdgeError as exc:
        raise click.ClickException(f"{exc}; fix the config (edge-agent config check) to see its limits") from None


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]
    return str(n)


def build_report(cfg: Any, state_dir: Path) -> dict[str, Any]:
    """The report as JSON: stores, the publication policy, today's epsilon account."""
    from edge_agent.privacy.budget import BUDGET_FILE
    from edge_agent.privacy.config import Privacy
    from edge_agent.privacy.stores import STORES, Limits, inspect

    limits = Limits.of(cfg)
    conf: Privacy = limits.privacy
    stores = [inspect(s, state_dir, limits) for s in STORES]
    budget: dict[str, Any] = {"epsilon_budget": conf.daily_epsilon, "days": {}}
    try:
        budget["days"] = json.loads((state_dir / BUDGET_FILE).read_text(encoding="utf-8")).get("days", {})
    except (OSError, ValueError):
        pass
    zones = [z.id for z in cfg.zones] if cfg is not None else []
    return {
        "state_dir": str(state_dir),
        "stores": stores,
        "policy": {"seat_states": {z: conf.seat_policy(z) for z in zones} or conf.seat_states,
                   "zone_counts": conf.zone_counts, "export_counts": conf.export_counts,
                   "threshold_k": conf.threshold_k, "daily_epsilon": conf.daily_epsilon},
        "epsilon": budget,
        "warnings": [w for s in stores for w in s["warnings"]],
    }


@privacy.command()
@config_option
@state_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")
def report(config_path: Path, state_dir: Path | None, as_json: bool) -> None:
    """Every store the gateway keeps: purpose, personal data, retention, size, oldest record, who can read it."""
    cfg = _site(config_path)
    where = state_dir_of(state_dir, config_path)
    doc = build_report(cfg, where)
    if as_json:
        emit_json(doc)
        return
    rows = []
    for s in doc["stores"]:
        modes = ", ".join(sorted({f"{f['mode']} {f['owner']}" for f in s["files"]})) or {
            "memory": "daemon memory", "journal": "systemd journal"}.get(s["place"], "not created yet")
        rows.append((s["store"], "yes" if s["personal"] else "no", s["retention"],
                     _size(s["bytes"]), s["oldest"] or "-", modes))
    click.echo(f"state directory {where}" + ("" if cfg is not None else f" (no config at {config_path}: "
                                                                         "default limits shown)"))
    click.echo(table(["store", "personal", "retention", "size", "oldest", "mode owner"], rows))
    pol = doc["policy"]
    seats = pol["seat_states"]
    shown = ", ".join(f"{z} {p}" for z, p in seats.items()) if isinstance(seats, dict) else seats
    click.echo(f"\npublication: seat states {shown}; zone summaries {pol['zone_counts']}; hourly export "
               f"{pol['export_counts']}; k = {pol['threshold_k']}")
    days = doc["epsilon"]["days"]
    today = max(days) if days else None
    spent = f"{days[today]['spent']:.3f} spent on {today}" if today else "nothing spent yet"
    click.echo(f"epsilon: {pol['daily_epsilon']:g} per day; {spent}")
    for w in doc["warnings"]:
        click.echo(f"warning: {w}", err=True)
    click.echo("details per store: edge-agent privacy report --json; docs/privacy.md")


@privacy.command()
@click.argument("subject")
@control_options
def export(subject: str, socket_path: str | None, config_path: str | None, as_json: bool) -> None:
    """Everything this gateway holds about SUBJECT (the patron's tag id), as JSON."""
    with daemon(socket_path, config_path) as client:
        try:
            doc = client.request("privacy", action="export", subject=subject)
        except EdgeError as exc:
            raise click.ClickException(str(exc)) from None
    emit_json(doc)


@privacy.command()
@click.argument("subject")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@control_options
def erase(subject: str, yes: bool, socket_path: str | None, config_path: str | None, as_json: bool) -> None:
    """Delete everything this gateway holds about SUBJECT: consent, preferences, pseudonym, track, trace lines."""
    if not yes:
        click.confirm(f"erase everything held about {subject} on this gateway?", abort=True)
    with daemon(socket_path, config_path) as client:
        try:
            done = client.request("privacy", action="erase", subject=subject)
        except EdgeError as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        emit_json(done)
        return
    click.echo(f"erased at {datetime.now().isoformat(timespec='seconds')}: consent "
               f"{'deleted' if done['had_consent'] else 'none on record'}, pseudonym and track forgotten, "
               f"{done['trace_lines_deleted']} trace line(s) deleted; receipt {done['receipt']}")
