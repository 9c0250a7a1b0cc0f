"""Scores for the simulated floor's report: predicted seat states and zone counts against truth.

Pure functions of mappings, so the simulator's ground truth (plain strings) can be compared with
what the gateway decided without either importing the other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from rules.state import SeatStatus


def score_seats(predicted: Mapping[str, SeatStatus], truth: Mapping[str, str]) -> float:
    """Fraction of truth seats whose predicted status equals the true one (UNKNOWN counts as wrong).

    Seats missing from ``predicted`` count as wrong; seats without truth are not scored. An empty
    truth gives NaN rather than a flattering 1.0.
    """
    if not truth:
        return math.nan
    right = sum(1 for seat, status in truth.items() if seat in predicted and predicted[seat].value == status)
    return right / len(truth)


def seat_confusion(predicted: Mapping[str, SeatStatus], truth: Mapping[str, str]) -> dict[tuple[str, str], int]:
    """(true status, predicted status) -> count; predicted is "missing" where the seat has no state."""
    out: dict[tuple[str, str], int] = {}
    for seat, status in truth.items():
        key = (status, predicted[seat].value if seat in predicted else "missing")
        out[key] = out.get(key, 0) + 1
    return out


def zone_count_mae(predicted: Mapping[str, float | None], truth: Mapping[str, float]) -> float:
    """Mean absolute error of zone people counts; a zone with no prediction counts its full truth."""
    if not truth:
        return math.nan
    errors = [abs((predicted.get(z) or 0.0) - n) for z, n in truth.items()]
    return sum(errors) / len(errors)
