"""Per-zone environment (lux, temperature, humidity, CO2) with a quality that says how far to trust it.

Each quantity of a zone is the mean of the latest good readings of the zone's sensors that can
measure it. Quality, in the order checked:

- MISSING: no sensor in the zone measures this quantity;
- GOOD: at least one healthy sensor reported within ``stale_after_s`` (mean of those);
- STALE: healthy sensors, but their last readings are older (value: mean of the last ones, or None
  before the first reading);
- UNHEALTHY: every sensor behind the value is marked unhealthy (value None: no confident guess).

Temperature and humidity come from the SHT3x/SHT4x where a zone has one: the SCD41 warms itself and
reads high, so its temperature and humidity are used only where no SHT is present.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edge_agent.config import Sensor
from rules.state import Measure, Quality

ENVIRONMENT = ("lux", "temperature", "humidity", "co2")

# quantity -> sensor kinds that measure it, best first (a later group is used only if no earlier one exists)
SOURCES: dict[str, tuple[tuple[str, ...], ...]] = {
    "lux": (("bh1750",),),
    "temperature": (("sht31", "sht4x"), ("scd41",)),
    "humidity": (("sht31", "sht4x"), ("scd41",)),
    "co2": (("scd41",),),
}


@dataclass(frozen=True, slots=True)
class LastValue:
    value: float
    t: float


def sources_for(quantity: str, sensors: Sequence[Sensor]) -> list[str]:
    """Ids of the sensors whose readings make up this quantity in a zone."""
    for kinds in SOURCES.get(quantity, ()):
        chosen = [s.id for s in sensors if s.kind in kinds]
        if chosen:
            return chosen
    return []


def zone_measure(
    quantity: str,
    sensors: Sequence[Sensor],
    last: Mapping[tuple[str, str], LastValue],
    unhealthy: set[str],
    t: float,
    stale_after_s: float,
) -> Measure:
    """One zone quantity from the latest readings (``last`` keyed by (sensor id, quantity))."""
    ids = sources_for(quantity, sensors)
    if not ids:
        return Measure(None, Quality.MISSING)
    healthy = [i for i in ids if i not in unhealthy]
    if not healthy:
        return Measure(None, Quality.UNHEALTHY)
    values = [last[(i, quantity)] for i in healthy if (i, quantity) in last]
    fresh = [v.value for v in values if t - v.t <= stale_after_s]
    if fresh:
        return Measure(sum(fresh) / len(fresh), Quality.GOOD)
    if values:
        return Measure(sum(v.value for v in values) / len(values), Quality.STALE)
    return Measure(None, Quality.STALE)
