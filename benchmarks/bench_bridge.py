"""Firmware-bridge benchmark: line utilisation and command latency for 24 nodes.

Runs the soak workload (24 nodes polled at 1 Hz, a lamp/indicator/dimmer command every 2-5 s per
node) on the in-memory line with realistic byte timing, under virtual time, at 115200 and 460800
baud, clean and with 1 % byte errors. Figures are simulated seconds, so they do not depend on
this machine's speed; the wall-clock cost of simulating one line-minute is reported too.
"""

from __future__ import annotations

import statistics
import time

from simulator.clock import run_virtual
from simulator.nodes_workload import soak

SECONDS = 120.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run() -> list[tuple[str, float, str]]:
    results: list[tuple[str, float, str]] = []
    for baud in (115200, 460800):
        for ber in (0.0, 0.01):
            tag = f"bridge_{baud}_ber{ber:g}"
            started = time.perf_counter()
            r = run_virtual(soak(nodes=24, seconds=SECONDS, baud=baud, byte_error_rate=ber, seed=3))
            wall = time.perf_counter() - started
            results += [
                (f"{tag}_line_utilisation", 100 * r.utilisation, "%"),
                (f"{tag}_command_latency_p50", 1000 * statistics.median(r.latencies), "ms"),
                (f"{tag}_command_latency_p99", 1000 * _percentile(r.latencies, 0.99), "ms"),
                (f"{tag}_commands_confirmed", 100 * r.confirmed_in_time / max(1, r.commands), "%"),
                (f"{tag}_sim_cost_per_line_minute", wall * 60 / SECONDS, "s"),
            ]
    return results


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:55s} {value:10.3f} {unit}")
