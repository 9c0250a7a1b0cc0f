"""The world's scorecard: truth-based metrics accumulated while the day runs.

Definitions (also in docs/simulator.md): seat-minutes and zone-minutes are sampled once per
simulated minute, during opening hours unless said otherwise; latencies run from the true
change of condition to the simulated actuator reaching its new state, checked every 0.1 s while a
need is open.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

LATENCY_BAR_S = 120.0


def percentiles(xs: list[float]) -> dict[str, float | int | None]:
    """p50, p99 and max of latencies (seconds, 2 decimals) and how many there were."""
    if not xs:
        return {"p50": None, "p99": None, "max": None, "count": 0}
    arr = np.asarray(xs)
    return {"p50": round(float(np.percentile(arr, 50)), 2), "p99": round(float(np.percentile(arr, 99)), 2),
            "max": round(float(arr.max()), 2), "count": len(xs)}


def spread(xs: list[float]) -> dict[str, float | int | None]:
    """p50 and p90 of durations (seconds, 1 decimal) and how many there were."""
    if not xs:
        return {"p50": None, "p90": None, "count": 0}
    arr = np.asarray(xs)
    return {"p50": round(float(np.percentile(arr, 50)), 1), "p90": round(float(np.percentile(arr, 90)), 1),
            "count": len(xs)}


@dataclass
class Need:
    """A condition that calls for an actuator change, open until the actuator responds."""

    kind: str  # "light" | "air"
    key: int  # zone index (light) or HVAC group index (air)
    opened: float
    seat: int = -1  # light: the seat of the person whose arrival opened the need


@dataclass
class Scorecard:
    """Accumulators; :meth:`as_report` turns them into the report's keys."""

    sim_seconds: float = 0.0
    lighting_j: float = 0.0
    luminaire_j: float = 0.0
    desk_lamp_j: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"light": [], "air": []})
    cancelled_needs: int = 0
    occupied_seat_minutes: int = 0  # the gateway's floor (seat figures: simulator.world.seating.SeatBook)
    baseline_occupied_seat_minutes: int = 0
    underlit_seat_minutes: int = 0
    lights_off_occupied_minutes: int = 0
    baseline_underlit_seat_minutes: int = 0
    co2_over_minutes: int = 0
    baseline_co2_over_minutes: int = 0
    comfort_out_minutes: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    baseline_comfort_out_minutes: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    seat_checks: int = 0
    seat_correct: int = 0
    unknown_seat_minutes: int = 0
    cold_belongings_checks: int = 0  # checked seat-minutes held by cold belongings (truth away/ghost)
    unseen_belongings_checks: int = 0  # ... of which nothing is on the desk and no "back soon" was pressed
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    wrong_by_situation: Counter[tuple[str, str]] = field(default_factory=Counter)  # (truth->daemon, situation)
    zone_errors: list[float] = field(default_factory=list)
    probe_failures: int = 0

    def close_need(self, need: Need, now: float) -> None:
        self.latencies[need.kind].append(max(0.0, now - need.opened))

    def as_report(self, energy: EnergyBook) -> dict[str, object]:
        every = [x for xs in self.latencies.values() for x in xs]
        kwh = self.lighting_j / 3.6e6
        base_kwh = energy.baseline_j["luminaires"] / 3.6e6

        checked = self.seat_checks
        return {
            "sim_hours": round(self.sim_seconds / 3600.0, 3),
            "lighting_kwh": round(kwh, 4),
            "luminaire_kwh": round(self.luminaire_j / 3.6e6, 4),
            "desk_lamp_kwh": round(self.desk_lamp_j / 3.6e6, 4),
            "baseline_lighting_kwh": round(base_kwh, 4),
            "lighting_saving": round(1.0 - kwh / base_kwh, 4) if base_kwh > 0 else None,
            "ventilation_kwh": round(energy.gateway_j["fans"] / 3.6e6, 4),
            "baseline_ventilation_kwh": round(energy.baseline_j["fans"] / 3.6e6, 4),
            **energy.as_report(),
            "underlit_occupied_seat_minutes_fraction": self._fraction(self.underlit_seat_minutes),
            "baseline_underlit_occupied_seat_minutes_fraction": self._fraction(self.baseline_underlit_seat_minutes,
                                                                               self.baseline_occupied_seat_minutes),
            **self._comfort(energy.zone_ids),
            "actuation_latency_s": percentiles(every),
            "light_latency_s": percentiles(self.latencies["light"]),
            "air_latency_s": percentiles(self.latencies["air"]),
            "actuations_over_120s": sum(1 for x in every if x > LATENCY_BAR_S),
            "cancelled_needs": self.cancelled_needs,
            "seat_state_accuracy": round(self.seat_correct / checked, 4) if checked else None,
            "seat_state_checks": checked,
            "seat_state_accuracy_ceiling": (
                round(1.0 - self.unseen_belongings_checks / checked, 4) if checked else None
            ),
            "seat_state_accuracy_thermal_ceiling": (
                round(1.0 - self.cold_belongings_checks / checked, 4) if checked else None
            ),
            "cold_belongings_seat_minutes": self.cold_belongings_checks,
            "chair_belongings_seat_minutes": self.unseen_belongings_checks,
            "seat_state_accuracy_by_truth": self._by_truth(),
            "seat_state_confusion": {f"{t}->{d}": n for (t, d), n in sorted(self.confusion.items())},
            "seat_state_errors_by_situation": self._errors_by_situation(),
            "unknown_seat_minutes": self.unknown_seat_minutes,
            "zone_count_mae": round(float(np.mean(self.zone_errors)), 4) if self.zone_errors else None,
            "co2_over_1000ppm_minutes": self.co2_over_minutes,
            "baseline_co2_over_1000ppm_minutes": self.baseline_co2_over_minutes,
            "lights_off_in_occupied_zone_minutes": self.lights_off_occupied_minutes,
            "probe_failures": self.probe_failures,
        }

    def _fraction(self, seat_minutes: int, occupied: int | None = None) -> float:
        occupied = self.occupied_seat_minutes if occupied is None else occupied
        return round(seat_minutes / occupied, 4) if occupied else 0.0

    def _errors_by_situation(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (pair, where), n in sorted(self.wrong_by_situation.items()):
            out.setdefault(pair, {})[where] = n
        return out

    def _by_truth(self) -> dict[str, float | None]:
        """Accuracy among the checked seat-minutes of each truth state (None: no such minute)."""
        out: dict[str, float | None] = {}
        for truth in ("free", "occupied", "away", "ghost"):
            total = sum(n for (t, _), n in self.confusion.items() if t == truth)
            out[truth] = round(self.confusion[truth, truth] / total, 4) if total else None
        return out

    def _comfort(self, zone_ids: list[str]) -> dict[str, object]:
        def by_zone(minutes: npt.NDArray[np.int64]) -> dict[str, int]:
            return {z: int(m) for z, m in zip(zone_ids, minutes, strict=False)}

        return {
            "occupied_minutes_outside_comfort": int(self.comfort_out_minutes.sum()),
            "baseline_occupied_minutes_outside_comfort": int(self.baseline_comfort_out_minutes.sum()),
            "occupied_minutes_outside_comfort_by_zone": by_zone(self.comfort_out_minutes),
            "baseline_occupied_minutes_outside_comfort_by_zone": by_zone(self.baseline_comfort_out_minutes),
        }


#: The report's loads, in the order of the breakdown.
LOADS = ("luminaires", "desk_lamps", "fans", "ventilation_air", "zone_conditioning")


@dataclass(frozen=True)
class EnergyBook:
    """Joules by load of the gateway's floor and of the conventional one, and their thermal detail."""

    gateway_j: Mapping[str, float]
    baseline_j: Mapping[str, float]
    gateway_thermal_j: Mapping[str, float]
    baseline_thermal_j: Mapping[str, float]
    comfort_band_c: tuple[float, float]
    zone_ids: list[str]

    def as_report(self) -> dict[str, object]:
        def kwh(joules: Mapping[str, float], keys: tuple[str, ...] | None = None) -> dict[str, float]:
            return {k: round(joules[k] / 3.6e6, 4) for k in (keys or tuple(joules))}

        total = sum(self.gateway_j[k] for k in LOADS) / 3.6e6
        base = sum(self.baseline_j[k] for k in LOADS) / 3.6e6
        return {
            "total_energy_kwh": round(total, 3),
            "baseline_total_energy_kwh": round(base, 3),
            "total_saving": round(1.0 - total / base, 4) if base > 0 else None,
            "energy_by_load_kwh": kwh(self.gateway_j, LOADS),
            "baseline_energy_by_load_kwh": kwh(self.baseline_j, LOADS),
            "thermal_kwh": kwh(self.gateway_thermal_j),
            "baseline_thermal_kwh": kwh(self.baseline_thermal_j),
            "comfort_band_c": list(self.comfort_band_c),
        }
