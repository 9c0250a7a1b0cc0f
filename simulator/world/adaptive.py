"""The adaptive learning space, measured: consenting patrons' desks and lamps, and the tags' positions.

Truth the world knows and the daemon must find out (docs/simulator.md, "Adaptive learning space"):

- **Preference latency**: when a consenting patron sits at a desk, a need opens; it closes when
  the desk (read from its simulated node every ``CHECK_S``) stands at the patron's height and its
  lamp at their level (``preference_latency_s``). A patron who stands up first cancels it if
  under the 2-minute bar, else it counts as unmet, with the time it stayed open.
- **Neutral desk**: when such a patron leaves for good, a need opens until the desk is back at
  its neutral height (``desk_neutral_latency_s``); a new holder of the seat cancels it.
- **Tag positions**: every minute, the daemon's tracked positions (its probe) against where the
  tags truly are: ``tag_positions_2d_rmse_m`` for tags at rest (seated: where preferences are
  decided), ``tag_positions_moving_2d_rmse_m`` for tags on the move (they report every
  ``[sim] tag_interval_s``, so the gateway's track trails a walker by up to that much of a walk);
  ``tags_seen`` of the ``tags_carried`` were tracked at least once.
- **Preferences at the wrong desk**: every minute, each seat the daemon has given a consenting
  patron's tag (its probe, in process only) against who truly holds that seat: of the
  ``tag_seat_checks`` such seat-minutes, ``tag_seats_wrong`` were held by somebody else: their
  desk and lamp would follow a stranger's preferences.
- **Lighting with personal lamp levels against without**: while a consenting patron's lamp burns
  at their level, its energy is set against what the default rules would have done instead (the
  ``lamp-top-up`` level, 0.5, if the desk is under its target without the lamp, else off).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.world.metrics import LATENCY_BAR_S, percentiles

if TYPE_CHECKING:
    from simulator.world.world import World

CHECK_S = 2.0
LAMP_S = 30.0
NEUTRAL_HEIGHT_MM = 720.0  # the desks' power-on preset, where the gateway's neutral rule returns them
HEIGHT_TOLERANCE_MM = 10.0
LAMP_TOLERANCE = 0.02
TOP_UP_LEVEL = 0.5  # what rules/default.toml's lamp-top-up sets
TOP_UP_BELOW = 0.97  # ... below this fraction of the zone's target


@dataclass
class AdaptiveSpace:
    """Accumulators and open needs of the adaptive learning space for one world."""

    w: World
    pending: dict[int, float] = field(default_factory=dict)  # patron -> sat down at
    served: set[int] = field(default_factory=set)  # patrons whose preferences are in effect
    neutral: dict[int, tuple[float, int]] = field(default_factory=dict)  # patron -> (left at, seat)
    latencies: list[float] = field(default_factory=list)
    neutral_latencies: list[float] = field(default_factory=list)
    cancelled: int = 0
    unmet: int = 0
    sits: int = 0
    position_errors: list[float] = field(default_factory=list)
    moving_errors: list[float] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    seat_checks: int = 0
    seats_wrong: int = 0
    carried: set[str] = field(default_factory=set)
    personal_j: float = 0.0
    without_j: float = 0.0
    last_lamp_t: float | None = None
    checking: bool = False

    def _desk(self, pid: int) -> str | None:
        p = self.w.patrons[pid]
        return self.w.lamp_ids[p.seat] if p.consents and p.seat >= 0 else None

    # -- events from the flow ----------------------------------------------------------------------
    def sit(self, t: float, pid: int) -> None:
        if self._desk(pid) is None:
            return
        self.sits += 1
        self.pending[pid] = t
        self.neutral = {k: v for k, v in self.neutral.items() if v[1] != self.w.patrons[pid].seat}
        self._start_checks(t)

    def stand(self, t: float, pid: int) -> None:
        self.served.discard(pid)
        sat = self.pending.pop(pid, None)
        if sat is None:
            return
        if t - sat > LATENCY_BAR_S:
            self.unmet += 1
            self.latencies.append(t - sat)
        else:
            self.cancelled += 1

    def leave(self, t: float, pid: int) -> None:
        if self._desk(pid) is not None:
            self.neutral[pid] = (t, self.w.patrons[pid].seat)
            self._start_checks(t)

    def tags_truth(self, t: float, present: dict[str | None, tuple[float, float]]) -> None:
        self.carried.update(tag for tag in present if tag is not None)

    # -- periodic checks ---------------------------------------------------------------------------
    def _start_checks(self, t: float) -> None:
        if not self.checking:
            self.checking = True
            self.w.schedule(t + CHECK_S, partial(self.check))

    def check(self, t: float, _: Any = None) -> None:
        """Read the desks of open needs; close those the gateway has met."""
        w = self.w
        for pid, sat in list(self.pending.items()):
            p, desk = w.patrons[pid], self._desk(pid)
            assert desk is not None
            height = p.desk_height_mm
            height_ok = height is None or abs(w.binding.desk_height(desk) - height) <= HEIGHT_TOLERANCE_MM
            lamp_ok = p.lamp_level is None or abs(w.binding.desk_lamp(desk) - p.lamp_level) <= LAMP_TOLERANCE
            if height_ok and lamp_ok:
                self.latencies.append(t - sat)
                del self.pending[pid]
                self.served.add(pid)
        for pid, (left, seat) in list(self.neutral.items()):
            desk = w.lamp_ids[seat]
            if w.holder[seat] >= 0 or desk is None:
                del self.neutral[pid]  # someone else took the seat: their desk now
            elif abs(w.binding.desk_height(desk) - NEUTRAL_HEIGHT_MM) <= HEIGHT_TOLERANCE_MM:
                self.neutral_latencies.append(t - left)
                del self.neutral[pid]
        self.checking = bool(self.pending or self.neutral) and t + CHECK_S <= w.end_time
        if self.checking:
            w.schedule(t + CHECK_S, partial(self.check))

    def sample_tags(self, t: float) -> None:
        """Once a minute: the daemon's tag positions against the truth."""
        w = self.w
        if w.probe is None:
            return
        probe = w.probe()
        tracked: dict[str, Any] = dict(probe.get("tags", {}))
        self.seen.update(tag for tag in tracked if tag in self.carried)
        for seat_id, tag in dict(probe.get("tag_seats", {})).items():
            holder = int(w.holder[w.plan.seat_ids.index(seat_id)])
            self.seat_checks += 1
            self.seats_wrong += holder >= 0 and w.patrons[holder].tag != tag  # nobody there: no desk to wrong
        for moving, truth in enumerate(self.truth_positions(t)):
            for tag, (tx, ty) in truth.items():
                if tag in tracked:
                    xy = tracked[tag]
                    (self.moving_errors if moving else self.position_errors).append(
                        float(np.hypot(xy[0] - tx, xy[1] - ty)))

    def truth_positions(self, t: float) -> tuple[dict[str, tuple[float, float]], dict[str, tuple[float, float]]]:
        """Where the tags on the floor are at ``t``: (seated, at their seats; walking, along their walks)."""
        w = self.w
        walking: dict[str, tuple[float, float]] = {}
        for pid, (t0, dur, a, b) in w.walking.items():
            tag = w.patrons[pid].tag
            if tag is not None and t0 <= t <= t0 + dur:
                f = (t - t0) / dur if dur > 0 else 1.0
                walking[tag] = (a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]))
        seated: dict[str, tuple[float, float]] = {}
        for seat in np.flatnonzero(w.holder >= 0):
            p = w.patrons[int(w.holder[seat])]
            if p.seated and p.tag is not None and p.tag not in walking:
                seated[p.tag] = (float(w.plan.seat_xy[seat, 0]), float(w.plan.seat_xy[seat, 1]))
        return seated, walking

    def lamps(self, t: float) -> None:
        """Every 30 s: energy of lamps at personal levels, and of what the default rules would do."""
        w = self.w
        dt = 0.0 if self.last_lamp_t is None else t - self.last_lamp_t
        self.last_lamp_t = t
        for pid in self.served:
            p = w.patrons[pid]
            if p.lamp_level is None or not p.seated:
                continue
            seat = p.seat
            level = float(w.lamp_level[seat])
            zone = int(w.plan.seat_zone[seat])
            without_lamp = float(w.point_lux[seat]) - float(w.lamp_lux[seat]) * level
            default = TOP_UP_LEVEL if without_lamp < TOP_UP_BELOW * float(w.zone_target[zone]) else 0.0
            self.personal_j += float(w.lamp_watts[seat]) * level * dt
            self.without_j += float(w.lamp_watts[seat]) * default * dt

    # -- the report --------------------------------------------------------------------------------
    def report(self, lighting_kwh: float) -> dict[str, object]:
        open_unmet = [self.w.end_time - sat for sat in self.pending.values() if self.w.end_time - sat > LATENCY_BAR_S]
        latencies = self.latencies + open_unmet
        errors, moving = np.asarray(self.position_errors), np.asarray(self.moving_errors)
        personal_kwh, without_kwh = self.personal_j / 3.6e6, self.without_j / 3.6e6
        return {
            "preference_latency_s": percentiles(latencies),
            "preferences_unmet": self.unmet + len(open_unmet),
            "preferences_cancelled": self.cancelled,
            "consenting_patrons": sum(1 for p in self.w.patrons if p.consents),
            "consenting_sits": self.sits,
            "desk_neutral_latency_s": percentiles(self.neutral_latencies),
            "tag_positions_2d_rmse_m": round(float(np.sqrt(np.mean(errors**2))), 3) if len(errors) else None,
            "tag_position_checks": len(errors),
            "tag_positions_moving_2d_rmse_m": round(float(np.sqrt(np.mean(moving**2))), 3) if len(moving) else None,
            "tag_seat_checks": self.seat_checks,
            "tag_seats_wrong": self.seats_wrong,
            "tags_seen": len(self.seen),
            "tags_carried": len(self.carried),
            "personal_lighting": {
                "lighting_kwh": round(lighting_kwh, 4),
                "lighting_kwh_without_personal_levels": round(lighting_kwh - personal_kwh + without_kwh, 4),
                "personal_lamp_kwh": round(personal_kwh, 4),
                "default_rules_lamp_kwh": round(without_kwh, 4),
            },
        }
