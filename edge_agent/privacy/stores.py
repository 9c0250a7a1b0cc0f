"""Every store the gateway keeps, as one table: the inventory behind ``edge-agent privacy report``.

:data:`STORES` is the single source: the CLI inspects each entry on a gateway (size, oldest record,
file mode and owner) and docs/privacy.md carries the same table (``python -m
edge_agent.privacy.stores`` prints it; a test fails when the two drift). A new store is added here
first, with its purpose, the personal data it may hold, its retention and how it is swept.

Retention texts are functions of the configuration, so the report shows the limits in force and
the doc the defaults.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import sqlite3
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_agent.forecast_config import HistoryConf
from edge_agent.privacy.config import Privacy
from edge_agent.trust.policy import AuditConf


@dataclass(frozen=True)
class Limits:
    """The configured limits the retention texts name (a site config's, or the defaults)."""

    privacy: Privacy
    audit: AuditConf
    history: HistoryConf
    outbox_max_age_h: float

    @classmethod
    def of(cls, cfg: Any | None) -> Limits:
        if cfg is None:
            return cls(Privacy(), AuditConf(), HistoryConf(), 168.0)
        return cls(cfg.privacy, cfg.audit, cfg.history, cfg.storage.outbox_max_age_h)


#: Stores whose files no account but the service's may read (the retention sweep keeps it so).
PERSONAL = frozenset({"outbox", "traces", "audit", "calibration", "consent", "tags", "salt", "logs"})


@dataclass(frozen=True)
class Store:
    """One store: where it is, why it exists, what personal data it may hold, how long it is kept."""

    key: str
    name: str
    files: tuple[str, ...]  # in the state directory; () for memory or the journal
    place: str  # "state" (files above) | "memory" (the daemon's process) | "journal" (systemd-journald)
    purpose: str
    personal_data: str  # "none" when it holds none
    retention: Callable[[Limits], str]
    sweep: str  # how the retention sweep (edge_agent.privacy.retention) enforces it
    leaves_gateway: str
    oldest: Callable[[Path], float | None] | None = None  # wall time of the oldest record

    @property
    def personal(self) -> bool:
        """Holds personal data, or (the salt) what makes pseudonyms personal: kept from other accounts."""
        return self.key in PERSONAL


def _sql_min(sql: str) -> Callable[[Path], float | None]:
    def oldest(path: Path) -> float | None:
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                row = db.execute(sql).fetchone()
            finally:
                db.close()
        except sqlite3.Error:
            return None
        return None if row is None or row[0] is None else float(row[0])

    return oldest


def _history_oldest(path: Path) -> float | None:
    from edge_agent.history import time_of

    slot = _sql_min("SELECT MIN(slot) FROM counts")(path)
    return None if slot is None else time_of(int(slot)).timestamp()  # the grid is local wall time


def _json_min(extract: Callable[[Any], list[float]]) -> Callable[[Path], float | None]:
    def oldest(path: Path) -> float | None:
        try:
            return min(extract(json.loads(path.read_text(encoding="utf-8") or "{}")), default=None)
        except (OSError, ValueError, TypeError, AttributeError):
            return None

    return oldest


def _trace_oldest(path: Path) -> float | None:
    try:
        with path.open(encoding="utf-8") as fh:
            first = fh.readline()
        return datetime.fromisoformat(json.loads(first)["wall"]).timestamp() if first.strip() else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _budget_days(doc: Any) -> list[float]:
    return [datetime.fromisoformat(d).replace(tzinfo=UTC).timestamp() for d in doc.get("days", {})]


STORES: tuple[Store, ...] = (
    Store(
        "outbox", "Outbox and command results", ("outbox.sqlite3",), "state",
        "Upstream messages waiting for the broker's acknowledgement; the last seat states to republish; "
        "command results by request id (a redelivered command is answered, not run twice).",
        "none by design (aggregates; the publisher refuses identifying keys); a privacy_export result "
        "until the broker acknowledges it, never in the result cache",
        lambda lim: f"unsent messages {lim.outbox_max_age_h:g} h; command results "
                    f"{lim.privacy.command_results_days:g} d; a message is deleted on acknowledgement",
        "rows past their age deleted with secure_delete, the WAL truncated; seat states of zones not "
        "published per seat cleared", "everything in it, to the site's broker (that is its purpose)",
        _sql_min("SELECT MIN(created) FROM outbox")),
    Store(
        "traces", "Floor-state traces", ("trace.jsonl", "trace.jsonl.1"), "state",
        "Sampled floor states for `edge-agent rules replay` (only with [rules] record_trace = true).",
        "per-seat states over time; never tag ids or pseudonyms (not written; erased on request if present)",
        lambda lim: f"{lim.privacy.trace_retention_h:g} h",
        "lines older than the retention dropped, the file rewritten", "never", _trace_oldest),
    Store(
        "history", "Zone history", ("history.sqlite",), "state",
        "Per-zone people and free-seat counts per 15 minutes: the forecast's history.",
        "none (zone aggregates)", lambda lim: f"{lim.history.retention_days} d",
        "rows older than the retention deleted", "only through federated training, under its own DP budget",
        _history_oldest),
    Store(
        "audit", "Audit log", ("audit.sqlite3",), "state",
        "Who changed what: commands (run or refused), overrides, consent and erasures, calibrations, "
        "reloads, model and firmware changes; hash-chained, its head signed and published.",
        "staff OS accounts and key ids; a patron only as a keyed hash of their subject (never the tag "
        "id or pseudonym)", lambda lim: f"{lim.audit.retention_days:g} d",
        "records past the retention removed behind a signed checkpoint (clock synchronised only), "
        "secure_delete, WAL truncated", "its signed head only (audit/head); records on a technician's export",
        _sql_min("SELECT MIN(at) FROM audit")),
    Store(
        "calibration", "Calibration records", ("calibration.json",), "state",
        "Each sensor's correction coefficients and the history of changes (for undo and review).",
        "the OS account of the technician in each history entry",
        lambda lim: f"history entries {lim.privacy.calibration_history_days} d; coefficients while the sensor "
                    "is configured", "history entries past the retention deleted", "a calibration event (no account)",
        _json_min(lambda d: [float(e["at"]) for doc in d.get("_default", {}).values()
                             for e in doc.get("history", [])])),
    Store(
        "consent", "Consent and preferences", ("consent.json",), "state",
        "Patrons' consent (scopes, validity, receipt) and the desk height and lamp level it covers.",
        "tag pseudonym, consent times and scopes, desk height, lamp level",
        lambda lim: "until the consent lapses (valid_months, at most 36) or is withdrawn or erased",
        "lapsed consents deleted with their preferences; withdrawal and erasure delete at once",
        "never (results carry receipts only); a privacy_export result to the patron system",
        _json_min(lambda d: [float(doc["granted_at"]) for doc in d.get("consents", {}).values()])),
    Store(
        "tags", "Tag pseudonym table and tracks", (), "memory",
        "Raw tag id to pseudonym, while a tag is heard; each tag's smoothed track and seat.",
        "raw tag ids, pseudonyms, positions (in memory only)",
        lambda lim: f"{lim.privacy.tag_retention_s:g} s after the tag was last heard; at once on erasure",
        "tags unheard past the retention forgotten (and on every poll)", "never", None),
    Store(
        "salt", "Keys: tag salt and gateway key", ("tag-salt", "gateway.key", "gateway.pub"), "state",
        "The key of the tag pseudonyms and of the audit's subject hashes; the gateway's signing key.",
        "none (keys; the salt makes pseudonyms linkable to tag ids, so it never leaves the gateway)",
        lambda lim: "the gateway's life; a new salt unlinks every pseudonym and subject hash",
        "none", "the gateway's public key only", None),
    Store(
        "nodes", "Node registry", ("nodes.json",), "state",
        "What the gateway knows of each firmware-bridge node (firmware, health, counters).",
        "none", lambda lim: "while the node is on the line", "none", "never", None),
    Store(
        "nonces", "Nonce store", ("nonces.sqlite3",), "state",
        "Nonces of accepted signed requests (no replay across restarts) and the last trusted time.",
        "none (key ids, request ids)", lambda lim: "until the request has certainly expired (max_validity_s)",
        "nonces behind the time floor deleted", "never", None),
    Store(
        "budget", "Epsilon ledger", ("privacy-budget.json",), "state",
        "Epsilon spent per local day by the noisy publications, so a restart cannot reset the budget.",
        "none", lambda lim: f"{lim.privacy.budget_days} d of daily lines", "days past the retention dropped",
        "today's spending in health", _json_min(_budget_days)),
    Store(
        "models", "Forecast model, calendar and federation", ("model.onnx", "calendar.json",
                                                              "federation-privacy.json",
                                                              "federation-profile.json"), "state",
        "The model in use (after update_model or federation), the central calendar, the federation's "
        "DP ledger and the gateway's DP-released zone profiles (hourly means per kind of day, training "
        "input only).", "none", lambda lim: "until replaced", "none",
        "the federation's DP-noised parameters only", None),
    Store(
        "logs", "Logs", (), "journal",
        "The daemon's log lines (stderr to systemd-journald): faults, reloads, connections.",
        "none by design (no tag id, pseudonym or position is logged); staff accounts in refusals",
        lambda lim: "the journal's (set MaxRetentionSec=, e.g. 30 days, in journald.conf)",
        "journald's own", "only if the site ships its journal", None),
)


def by_key(key: str) -> Store:
    return next(s for s in STORES if s.key == key)


def _owner(st: os.stat_result) -> str:
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{user}:{group}"


def inspect(store: Store, state_dir: Path, limits: Limits) -> dict[str, Any]:
    """One store on this gateway now: files, size, oldest record, mode and owner, and a warning
    when a store with personal data can be read by every local account."""
    files: list[dict[str, Any]] = []
    oldest: float | None = None
    for name in store.files:
        for path in (state_dir / name, state_dir / f"{name}-wal"):
            try:
                st = path.stat()
            except OSError:
                continue
            files.append({"file": path.name, "bytes": st.st_size, "mode": f"{stat.S_IMODE(st.st_mode):04o}",
                          "owner": _owner(st), "world_readable": bool(st.st_mode & stat.S_IROTH)})
            if store.oldest is not None and not path.name.endswith("-wal"):
                t = store.oldest(path)
                oldest = t if oldest is None or (t is not None and t < oldest) else oldest
    warnings = [f"{f['file']} can be read by every local account (mode {f['mode']}); the sweep removes that"
                for f in files if f["world_readable"] and store.personal]
    return {
        "store": store.key, "name": store.name, "place": store.place, "purpose": store.purpose,
        "personal": store.personal,
        "personal_data": store.personal_data, "retention": store.retention(limits), "sweep": store.sweep,
        "leaves_gateway": store.leaves_gateway, "files": files,
        "bytes": sum(f["bytes"] for f in files) if files else None,
        "oldest": None if oldest is None else datetime.fromtimestamp(oldest, UTC).isoformat(timespec="seconds"),
        "warnings": warnings,
    }


def markdown_table(limits: Limits | None = None) -> str:
    """The inventory as docs/privacy.md carries it (with the default limits)."""
    lim = limits or Limits.of(None)
    rows = ["| store | where | purpose | personal data it may hold | retention (default) | how it is enforced "
            "| leaves the gateway |", "|---|---|---|---|---|---|---|"]
    for s in STORES:
        where = ", ".join(f"`{f}`" for f in s.files) if s.files else {"memory": "daemon memory",
                                                                       "journal": "systemd journal"}[s.place]
        rows.append(f"| {s.name} | {where} | {s.purpose} | {s.personal_data} | {s.retention(lim)} | {s.sweep} "
                    f"| {s.leaves_gateway} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
