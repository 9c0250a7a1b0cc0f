"""The benchmarks' own checks: the report diff a speed change must pass, and the guard's comparable forms."""

from __future__ import annotations

from benchmarks.day_check import differences
from benchmarks.guard import comparable


def test_report_diff_ignores_only_wall_seconds() -> None:
    a = {"wall_seconds": 55.1, "energy": {"kwh": 1.25}, "latency": [0.4, 0.6]}
    assert differences(a, {**a, "wall_seconds": 80.0}) == []
    changed = differences(a, {**a, "latency": [0.4, 0.7]})
    assert changed == [("/latency[1]", 0.6, 0.7)]
    assert differences(a, {"wall_seconds": 1.0, "energy": {"kwh": 1.25}}) == [("/latency[0]", 0.4, None),
                                                                              ("/latency[1]", 0.6, None)]


def test_guard_compares_times_by_calibration_rates_inversely_and_counts_as_they_are() -> None:
    assert comparable(4.0, "ms", calibration=2.0) == 2.0
    assert comparable(3.0, "us CPU/msg", calibration=1.5) == 2.0
    assert comparable(3.0, "% of one core", calibration=1.5) == 2.0
    assert comparable(100.0, "msg/s", calibration=0.5) == 50.0
    assert comparable(0.81, "ratio", calibration=9.0) == 0.81
    assert comparable(127.0, "MiB", calibration=9.0) == 127.0
    assert comparable(3.1, "load", calibration=1.0) is None
    assert comparable(float("nan"), "s", calibration=1.0) is None
