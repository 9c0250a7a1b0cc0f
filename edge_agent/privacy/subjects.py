"""A patron's rights on this gateway: access (export) and erasure, by the subject the patron system uses.

The subject is the patron's tag id, as in ``consent_set`` (docs/mqtt.md). The gateway turns it into
its pseudonym (the consent store's key) and into the audit log's keyed subject hash at once; the
raw id is never stored.

- **Export** (``privacy_export``, ``edge-agent privacy export``): everything held about the
  subject here, as one JSON document: the consent record and the preferences it covers, whether
  the tag's mapping and a track are held now (never where), how many trace lines hold the
  pseudonym, and the audit records about the subject (by its hash, without the staff accounts).
  The local export adds the pseudonym itself; the one sent upstream never carries it.
- **Erasure** (``privacy_erase``, ``edge-agent privacy erase``, and every ``consent_withdraw``):
  the consent record and preferences, the pseudonym mapping, the track, and every trace line
  holding the pseudonym, at once. The audit log keeps that it happened, under the subject hash.

Both are recorded in the audit log (kind ``privacy``) with who asked and the subject hash.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from edge_agent.actuation.recorder import erase_from_traces, traces_holding

if TYPE_CHECKING:
    from edge_agent.assembly import Gateway
    from edge_agent.daemon import Daemon

#: Stores that hold nothing about a patron, named in every export (docs/privacy.md).
NOTHING_ABOUT_A_PATRON = ("outbox", "history", "calibration", "nodes", "nonces", "budget", "models", "logs")
SUBJECT_KINDS = ("consent", "preferences", "privacy", "command")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class SubjectRights:
    """Export and erasure for one running gateway (see module docstring)."""

    def __init__(self, daemon: Daemon, gw: Gateway) -> None:
        self.daemon = daemon
        self.gw = gw

    @property
    def _trace(self) -> Any:
        return self.daemon.state_dir / "trace.jsonl"

    def subject_hash(self, subject: str) -> str:
        return self.gw.patrons.tags.subject_hash(subject)

    async def export(self, subject: str, *, actor: str, local: bool = False) -> dict[str, Any]:
        """Everything held about ``subject`` here; ``local`` (the technician's CLI) adds the pseudonym."""
        gw, tags = self.gw, self.gw.patrons.tags
        hashed = self.subject_hash(subject)
        pseudonym = tags.name_of(subject)
        record = gw.consents.get(pseudonym)
        trace_lines = await self._on_traces(lambda: traces_holding(self._trace, pseudonym))
        audit = await self._audit_records(hashed)
        doc: dict[str, Any] = {
            "gateway": f"{gw.cfg.site.id}/{gw.cfg.site.gateway}",
            "generated_at": _iso(self.daemon.clock.time()),
            "consent": None if record is None else {
                "scopes": list(record.scopes), "granted_at": _iso(record.granted_at),
                "expires_at": _iso(record.expires_at), "receipt": record.receipt,
                "updated_at": _iso(record.updated_at)},
            "preferences": None if record is None else {
                "desk_height_mm": record.desk_height_mm, "lamp_level": record.lamp_level},
            "tag_mapping": {"held_now": tags.knows(subject) is not None,
                            "forgotten_after_s": gw.cfg.privacy.tag_retention_s},
            "floor_track": {"held_now": gw.floor.holds_tag(pseudonym)},
            "trace_lines": trace_lines,
            "audit_records": audit,
            "stores_holding_nothing_about_patrons": list(NOTHING_ABOUT_A_PATRON),
        }
        if local:  # the gateway's own keys for the subject: never upstream
            doc.update(pseudonym=pseudonym, subject_hash=hashed)
        self.daemon.audit("privacy", {"action": "export", "subject": hashed, "via": "socket" if local else "mqtt"},
                          actor=actor)
        return doc

    async def erase(self, subject: str, *, actor: str, action: str = "erase") -> dict[str, Any]:
        """Delete everything held about ``subject`` here; ``action`` ``withdraw`` for a consent withdrawal."""
        hashed = self.subject_hash(subject)
        pseudonym, had = await self.gw.patrons.erase(subject)
        lines = await self._on_traces(lambda: erase_from_traces(self._trace, pseudonym))
        self.daemon.audit("consent" if action == "withdraw" else "privacy",
                          {"action": action, "subject": hashed, "had_consent": had, "trace_lines_deleted": lines},
                          actor=actor)
        receipt = f"{'w' if action == 'withdraw' else 'e'}-{secrets.token_hex(8)}"
        return {"erased": True, "had_consent": had, "preferences_deleted": True, "tag_forgotten": True,
                "trace_lines_deleted": lines, "receipt": receipt}

    async def _on_traces(self, fn: Any) -> int:
        import asyncio

        writer = self.gw.traces
        result: int = await (writer.run(fn) if writer is not None else asyncio.to_thread(fn))
        return result

    async def _audit_records(self, hashed: str) -> list[dict[str, Any]]:
        trust = self.daemon.trust
        if trust is None:
            return []
        out: list[dict[str, Any]] = []
        for kind in SUBJECT_KINDS:
            for r in await trust.records(kind=kind):
                data = r["data"]
                if data.get("subject") == hashed or (data.get("args") or {}).get("subject") == hashed:
                    out.append({"seq": r["seq"], "at": _iso(float(r["at"])), "kind": r["kind"],
                                "action": data.get("action") or data.get("command") or data.get("consented")})
        return sorted(out, key=lambda r: int(r["seq"]))
