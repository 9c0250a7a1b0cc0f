"""The normal simulated day as fast as possible: wall time and CPU of the whole run, in a process of its own.

Runs ``edge-agent run --simulate simulator/scenarios/normal-day.toml --as-fast-as-possible
--broker 127.0.0.1:9`` (no broker: nothing to drain at the end) and reports its wall time and
its user + system CPU (the process's threads included), and the CPU as a share of the wall: on
a loaded machine the wall stretches while the CPU stays, so both are given with the load.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "simulator" / "scenarios" / "normal-day.toml"


def run() -> list[tuple[str, float, str]]:
    with tempfile.TemporaryDirectory(prefix="day-bench-") as tmp:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "edge_agent.cli", "run", "--simulate", str(SCENARIO),
                        "--as-fast-as-possible", "--broker", "127.0.0.1:9", "--state-dir", f"{tmp}/state",
                        "--report", f"{tmp}/report.json", "--log-level", "error"],
                       check=True, cwd=ROOT, env=dict(os.environ, PYTHONHASHSEED="0"), stderr=subprocess.DEVNULL)
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return [("normal day wall", round(wall, 2), "s"), ("normal day CPU (user + system)", round(cpu, 2), "s"),
            ("normal day CPU / wall", round(cpu / wall, 3), "ratio")]


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:<40} {value:>10.2f} {unit}")
