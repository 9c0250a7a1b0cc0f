"""Per-zone environment (lux, temperature, humidity, CO2) with a quality that says how far to trust it.

Each quantity of a zone is the mean of the latest good readings of the zone's sensors that can
measure it. Quality, in the order checked:

- MISSING: no sensor in the zone measures this quantity;
- GOOD: at least one healthy sensor reported within ``stale_after_s`` (mean of those);
- STALE: healthy sensors, but their last readings are older (value: mean of the last ones, or None
  before the first reading);
- UNHEALTHY: every sensor behind the value is marked unhealthy (value None: no confident guess).

Which kinds measure a quantity, and which are preferred, is what each kind declares
(:mod:`drivers.kinds`, ``Quantity.rank``): temperature and humidity come from the SHT3x/SHT4x where
a zone has one, because the SCD41 warms itself and reads high (it ranks them 2), so its
temperature and humidity are used only where no SHT is present.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from drivers.kinds import part_kinds
from drivers.records import quick_init
from edge_agent.config import Sensor
from rules.state import Measure, Quality

ENVIRONMENT = ("lux", "temperature", "humidity", "co2")


@quick_init  # one per reading a zone keeps
@dataclass(frozen=True, slots=True)
class LastValue:
    value: float
    t: float


@cache
def source_ranks(quantity: str) -> Mapping[str, int]:
    """Kind name -> its rank for ``quantity``, for every kind that measures it."""
    return {k.name: q.rank for k in part_kinds().values() for q in k.quantities
            if q.name == quantity and q.rank is not None}


def sources_for(quantity: str, sensors: Sequence[Sensor]) -> list[str]:
    """Ids of the sensors whose readings make up this quantity in a zone: those of the best rank."""
    ranks = source_ranks(quantity)
    measuring = [(ranks[s.kind], s.id) for s in sensors if s.kind in ranks]
    if not measuring:
        return []
    best = min(rank for rank, _ in measuring)
    return [sid for rank, sid in measuring if rank == best]


def zone_measure(
    quantity: str,
    sensors: Sequence[Sensor],
    last: Mapping[tuple[str, str], LastValue],
    unhealthy: set[str],
    t: float,
    stale_after_s: float,
) -> Measure:
    """One zone quantity from the latest readings (``last`` keyed by (sensor id, quantity))."""
    return measure_from(quantity, sources_for(quantity, sensors), last, unhealthy, t, stale_after_s)


def measure_from(
    quantity: str,
    ids: Sequence[str],
    last: Mapping[tuple[str, str], LastValue],
    unhealthy: set[str],
    t: float,
    stale_after_s: float,
) -> Measure:
    """As :func:`zone_measure`, from the zone's source ids for ``quantity`` (:func:`sources_for`)."""
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
