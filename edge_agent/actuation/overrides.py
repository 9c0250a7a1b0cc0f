"""Staff overrides: a level held on a zone, seat or actuator until it expires or is cleared.

An override comes from the CLI (``edge-agent actuators test``), an MQTT command or a Home
Assistant light. A timed one lasts at most :data:`MAX_DURATION_S` (7 days, as docs/mqtt.md
promises); an untimed one (``duration_s=None``: MQTT's "until cleared", a Home Assistant light
switched on or off) holds until ``clear_override``. It enters
arbitration at :attr:`rules.state.Priority.OVERRIDE`: above preferences and automation, below
safety (the fail-safe and never-dark lighting still win).

A zone or seat id is resolved to its actuators through ``groups`` (see
:func:`edge_agent.actuation.topology.actuator_groups`); any other id is taken as an actuator id.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rules.state import Intent, IntentKind, Priority

MAX_DURATION_S = 7 * 24 * 3600.0  # the longest timed override (docs/mqtt.md)
LEVEL_KINDS = (IntentKind.LIGHT_LEVEL, IntentKind.DESK_LAMP, IntentKind.VENTILATION)
RANGES: dict[IntentKind, tuple[float, float, str]] = {
    IntentKind.LIGHT_LEVEL: (0.0, 1.0, "0.8"),
    IntentKind.DESK_LAMP: (0.0, 1.0, "0.8"),
    IntentKind.VENTILATION: (0.0, 1.0, "0.8"),
    IntentKind.SETPOINT: (12.0, 30.0, "21.5"),
    IntentKind.COOLING_SETPOINT: (12.0, 32.0, "24"),
    IntentKind.DESK_HEIGHT: (1.0, 1350.0, "740 (mm) or 1 (preset)"),
    IntentKind.INDICATOR: (0.0, 4.0, "1 (free)"),
}


@dataclass(frozen=True, slots=True)
class Override:
    """One staff override as asked: ``target`` may be a zone, seat or actuator id."""

    target: str
    kind: IntentKind
    value: float
    expires_at: float  # monotonic seconds; infinite for an override held until cleared
    source: str = "cli"
    reason: str = ""
    set_at: float = 0.0

    def intent(self, actuator: str) -> Intent:
        return Intent(target=actuator, kind=self.kind, value=self.value, priority=Priority.OVERRIDE,
                      rule_id=f"override:{self.source}", reason=self.reason or f"override of {self.target}")


class OverrideBook:
    """The active overrides, resolved to (actuator, kind); the most recently set one wins."""

    def __init__(self, groups: Mapping[str, Sequence[str]] | None = None) -> None:
        self._groups = {k: tuple(v) for k, v in (groups or {}).items()}
        self._items: list[Override] = []

    def set(self, target: str, value: float, duration_s: float | None, now: float, *,
            kind: IntentKind = IntentKind.LIGHT_LEVEL, source: str = "cli", reason: str = "") -> Override:
        """Add an override (``duration_s=None``: until cleared); raises ValueError saying what to send
        instead when it makes no sense."""
        if kind not in RANGES:
            known = ", ".join(k.value for k in RANGES)
            raise ValueError(f"kind {kind.value!r} cannot be overridden; use one of: {known}")
        low, high, example = RANGES[kind]
        if not low <= value <= high:
            raise ValueError(f"{kind.value} value {value!r} is outside {low:g}..{high:g}; send e.g. {example}")
        if duration_s is not None and not 0 < duration_s <= MAX_DURATION_S:
            raise ValueError(f"duration {duration_s!r} s: give 1..{MAX_DURATION_S:.0f} s (7 days), e.g. 900 for "
                             "15 minutes, or none to hold it until cleared")
        expires_at = math.inf if duration_s is None else now + duration_s
        item = Override(target, kind, float(value), expires_at, source, reason, now)
        self._items = [o for o in self._items if not (o.target == target and o.kind == kind)] + [item]
        return item

    def clear(self, target: str, kind: IntentKind | None = None) -> list[Override]:
        """Remove the overrides set on ``target`` (all kinds unless one is given); returns them."""
        gone = [o for o in self._items if o.target == target and (kind is None or o.kind == kind)]
        self._items = [o for o in self._items if o not in gone]
        return gone

    def expire(self, now: float) -> list[Override]:
        """Drop and return overrides whose time is up."""
        gone = [o for o in self._items if o.expires_at <= now]
        if gone:
            self._items = [o for o in self._items if o.expires_at > now]
        return gone

    def actuators(self, target: str) -> tuple[str, ...]:
        return self._groups.get(target, (target,))

    def active(self, now: float) -> dict[tuple[str, IntentKind], Override]:
        """(actuator, kind) -> the override in force there (later overrides shadow earlier ones)."""
        out: dict[tuple[str, IntentKind], Override] = {}
        for o in self._items:
            if o.expires_at > now:
                for actuator in self.actuators(o.target):
                    out[(actuator, o.kind)] = o
        return out

    def targets(self, now: float) -> frozenset[str]:
        """Every id under an override (as asked and as resolved): ``FloorState.overrides`` for the rules."""
        ids: set[str] = set()
        for o in self._items:
            if o.expires_at > now:
                ids.add(o.target)
                ids.update(self.actuators(o.target))
        return frozenset(ids)

    def __len__(self) -> int:
        return len(self._items)
