"""Run every benchmark module (or those named on the command line) and print one table.

    python -m benchmarks                 # all
    python -m benchmarks drivers rules   # only bench_drivers.py and bench_rules.py
    python -m benchmarks --record 3 AREA...   # run 3 times, keep medians and noise (recorded.json)
    python -m benchmarks --compare AREA...    # run once, say which figures moved beyond the noise

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


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def run_area(name: str) -> list[tuple[str, float, str]]:
    """One area's rows, printed as they come with the load average beside them."""
    t0 = time.perf_counter()
    module = importlib.import_module(f"benchmarks.bench_{name}")
    rows: list[tuple[str, float, str]] = module.run()
    load = load_average()
    for label, value, unit in rows:
        print(f"{name + ': ' + label:<64} {value:>14.4g}  {unit:<16} load {load:.2f}", flush=True)
    print(f"{'(' + name + ' took ' + format(time.perf_counter() - t0, '.1f') + ' s)':<64}", flush=True)
    return rows


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    mode, repeats = "run", 1
    if argv[:1] == ["--record"]:
        mode, repeats, argv = "record", int(argv[1]), argv[2:]
    elif argv[:1] == ["--compare"]:
        mode, argv = "compare", argv[1:]
    names = argv or sorted(p.stem.removeprefix("bench_") for p in here.glob("bench_*.py"))
    print(f"machine: {machine()}")
    print(f"{'benchmark':<64} {'value':>14}  unit")
    print("-" * 100)
    if mode == "record":
        from benchmarks.guard import record

        record(names, repeats, run_area, machine())
        return 0
    if mode == "compare":
        from benchmarks.guard import compare

        return compare(names, run_area)
    failed = 0
    for name in names:
        try:
            run_area(name)
        except Exception:
            failed += 1
            print(f"{name}: FAILED")
            traceback.print_exc()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
