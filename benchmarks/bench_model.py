"""Seat-demand inference at the edge: latency per floor-wide call and onnxruntime's memory cost.

``run()`` returns ``(name, value, unit)`` rows:

- ``forecast_{6,10}_zones_p50/p99``: one :meth:`Forecaster.predict` for all zones of a floor
  (features from 29 days of 15-minute history per zone, then one batched ONNX call), shipped model;
- ``onnx_run_{6,10}_zones_p50``: the raw ``InferenceSession.run`` on the same precomputed
  features, and ``forecast_vs_raw_{n}``: the ratio (what the feature pipeline costs on top);
- ``features_{version}_6_zones_cpu_p50``: the CPU time of one floor's feature rows
  (:func:`models.inference.forecast_features`, 6 zones) for each feature version, the versions
  taken in turns so a change in the machine's load falls on all of them;
- ``rss_added_by_onnxruntime``: VmRSS after importing onnxruntime and loading the model minus
  VmRSS before, measured in a fresh interpreter so nothing else is loaded already.

    .venv/bin/python -m benchmarks.bench_model
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timedelta

import numpy as np

from models import DEFAULT_MODEL_PATH
from models.features import FEATURE_VERSIONS, feature_rows
from models.history import ZoneHistory
from models.inference import Forecaster, forecast_features

CALLS = 200
NOW = datetime(2024, 10, 15, 14, 7)

_RSS_PROBE = """
import sys
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1])
    return 0
import numpy  # the daemon has numpy loaded anyway
before = rss()
from models.inference import Forecaster
Forecaster.from_path(sys.argv[1])
print(rss() - before)
"""


def _histories(zones: int) -> dict[str, ZoneHistory]:
    out: dict[str, ZoneHistory] = {}
    for z in range(zones):
        h = ZoneHistory(capacity=20.0)
        for i in range(29 * 96):
            t = NOW - timedelta(minutes=15 * i)
            h.add(t, float((7 * i + z) % 18) if 8 <= t.hour < 22 else 0.0)
        out[f"z{z}"] = h
    return out


def _percentiles(samples: list[float]) -> tuple[float, float]:
    arr = np.array(samples) * 1000.0
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def _feature_cpu(histories: dict[str, ZoneHistory], rounds: int = 40) -> list[tuple[str, float, str]]:
    """p50 CPU milliseconds of one floor's feature rows per feature version, the versions in turns."""
    zones = list(histories)
    spent: dict[str, list[float]] = {v: [] for v in FEATURE_VERSIONS}
    for i in range(rounds):
        for version in FEATURE_VERSIONS[i % len(FEATURE_VERSIONS):] + FEATURE_VERSIONS[:i % len(FEATURE_VERSIONS)]:
            t0 = time.process_time()
            forecast_features(histories, zones, [20.0] * len(zones), NOW, None, version)
            spent[version].append(time.process_time() - t0)
    return [(f"features_{v}_{len(zones)}_zones_cpu_p50", _percentiles(xs)[0], "ms") for v, xs in spent.items()]


def run() -> list[tuple[str, float, str]]:
    model = Forecaster.from_path(DEFAULT_MODEL_PATH)
    rows: list[tuple[str, float, str]] = []
    for zones in (6, 10):
        histories = _histories(zones)
        forecast_times: list[float] = []
        for _ in range(CALLS):
            t0 = time.perf_counter()
            model.predict(histories, NOW)
            forecast_times.append(time.perf_counter() - t0)
        grids = [h.grid(NOW) for h in histories.values()]
        features = np.concatenate([feature_rows(g, [g.values.size - 1], 20.0) for g in grids])
        raw_times: list[float] = []
        for _ in range(CALLS):
            t0 = time.perf_counter()
            model.run(features)
            raw_times.append(time.perf_counter() - t0)
        p50, p99 = _percentiles(forecast_times)
        raw50, _ = _percentiles(raw_times)
        rows += [
            (f"forecast_{zones}_zones_p50", p50, "ms"),
            (f"forecast_{zones}_zones_p99", p99, "ms"),
            (f"onnx_run_{zones}_zones_p50", raw50, "ms"),
            (f"forecast_vs_raw_{zones}", p50 / raw50 if raw50 > 0 else float("nan"), "x"),
        ]
    rows += _feature_cpu(_histories(6))
    probe = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(DEFAULT_MODEL_PATH)], capture_output=True, text=True, timeout=120,
        check=True,
    )
    rows.append(("rss_added_by_onnxruntime", int(probe.stdout.strip()) / 1024.0, "MiB"))
    return rows


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:32} {value:10.3f} {unit}")
