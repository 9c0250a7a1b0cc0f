"""Run every benchmark module (or those named on the command line) and print one table.

    python -m benchmarks                 # all
    python -m benchmarks drivers rules   # only bench_drivers.py and bench_rules.py

Figures are recorded in docs/benchmarks.md together with the machine they came from. Benchmarks
never assert on time: they measure and print.
"""

from __future__ import annotations

import importlib
import platform
import sys
import time
import traceback
from pathlib import Path


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    system = f"{platform.system()} {platform.release()}"
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {system}"


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = argv or sorted(p.stem.removeprefix("bench_") for p in here.glob("bench_*.py"))
    print(f"machine: {machine()}")
    print(f"{'benchmark':<58} {'value':>14}  unit")
    print("-" * 90)
    failed = 0
    for name in names:
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.bench_{name}")
            rows = module.run()
        except Exception:
            failed += 1
            print(f"{name}: FAILED")
            traceback.print_exc()
            continue
        for label, value, unit in rows:
            print(f"{name + ': ' + label:<58} {value:>14.4g}  {unit}")
        print(f"{'(' + name + ' took ' + format(time.perf_counter() - t0, '.1f') + ' s)':<58}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
