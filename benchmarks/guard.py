"""The regressions guard: record the benchmark figures with their noise, later say which moved.

    python -m benchmarks --record 3 rules mqtt gateway   # run each area 3 times, write recorded.json
    python -m benchmarks --compare rules mqtt gateway    # run once, compare with recorded.json

A shared machine's speed changes from minute to minute, so only figures that do not depend on it
are judged: ratios measured side by side in one run (``ratio``, ``x``: against the bare library
call, or the peer), counts (``intents``, ``needs``, bytes) and memory (``MiB``). Absolute times,
CPU shares and rates are shown beside them, divided (rates: multiplied) by a calibration timed at
the start of the same run (:func:`calibration_s`, n-body steps), but not judged: on the shared
2-core machine the calibration itself moved by a third between runs a few minutes apart while the
figures did not. The load average recorded beside the figures is never compared.

The noise is measured, not assumed: ``--record N`` runs every area N times and keeps every run's
raw value and calibration; the noise of a figure is the spread (max - min) / median of its
comparable form over those runs (a figure recorded once is not compared). ``--compare``
says a figure *moved* when it differs from the recorded median by more than that spread (and at
least 2 %), and exits 1 if any did.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

RECORDED = Path(__file__).with_name("recorded.json")
MIN_NOISE = 0.02
RATE_UNITS = ("msg/s", "requests/s")  # wall-clock rates: shown against the calibration, not judged


def time_like(unit: str) -> bool:
    """Times and CPU shares: ``ms``, ``s``, ``us CPU``, ``us/frame``, ``% of one core``, ``s/h``..."""
    head = unit.split()[0].split("/")[0]
    return head in ("s", "ms", "us", "µs") or unit == "% of one core"

Rows = list[tuple[str, float, str]]


def calibration_s(steps: int = 50_000) -> float:
    """Seconds of CPU for a fixed n-body integration (the classic five-body benchmark's loop)."""
    bodies = [[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 39.47], [4.84, -1.16, -0.10, 0.606, 2.81, -0.02, 0.037],
              [8.34, 4.12, -0.40, -1.01, 1.82, 0.008, 0.011], [12.89, -15.11, -0.22, 1.08, 0.868, -0.01, 0.0017],
              [15.37, -25.91, 0.179, 0.979, 0.594, -0.034, 0.002]]
    pairs = [(a, b) for i, a in enumerate(bodies) for b in bodies[i + 1:]]
    best = math.inf
    for _ in range(5):  # the best of five: the machine's speed, not its neighbours' bursts
        started = time.process_time()
        for _ in range(steps):
            for a, b in pairs:
                dx, dy, dz = a[0] - b[0], a[1] - b[1], a[2] - b[2]
                mag = 0.01 * (dx * dx + dy * dy + dz * dz) ** -1.5
                bm, am = b[6] * mag, a[6] * mag
                a[3] -= dx * bm
                a[4] -= dy * bm
                a[5] -= dz * bm
                b[3] += dx * am
                b[4] += dy * am
                b[5] += dz * am
            for body in bodies:
                body[0] += 0.01 * body[3]
                body[1] += 0.01 * body[4]
                body[2] += 0.01 * body[5]
        best = min(best, time.process_time() - started)
    return best


def comparable(value: float, unit: str, calibration: float) -> float | None:
    """The figure in the form compared across runs (see the module docstring); None: not compared."""
    if unit == "load" or value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if time_like(unit):
        return value / calibration
    if unit in RATE_UNITS:
        return value * calibration
    return value


def _runs(areas: list[str], run_area: Callable[[str], Rows]) -> tuple[dict[str, tuple[float, str]], float, float]:
    calibration = calibration_s()
    load = float(Path("/proc/loadavg").read_text().split()[0]) if Path("/proc/loadavg").exists() else math.nan
    figures: dict[str, tuple[float, str]] = {}
    for area in areas:
        for label, value, unit in run_area(area):
            figures[f"{area}: {label}"] = (float(value), unit)
    return figures, calibration, load


def record(areas: list[str], repeats: int, run_area: Callable[[str], Rows], machine: str) -> dict[str, object]:
    """Run the areas ``repeats`` times; write :data:`RECORDED` (merged with the areas not run).

    Each area keeps the machine and date of its own latest record (``areas``): recording one area
    on another machine must not make the others look as if they came from it. ``machine`` and
    ``date`` sum them up for a reader.
    """
    runs = [_runs(areas, run_area) for _ in range(repeats)]
    old = json.loads(RECORDED.read_text()) if RECORDED.exists() else {"figures": {}}
    figures: dict[str, object] = {k: v for k, v in old["figures"].items() if k.split(":")[0] not in areas}
    for name in runs[0][0]:  # the medians and the noise are derived when comparing (compare)
        mine = [r for r in runs if name in r[0]]
        figures[name] = {"unit": runs[0][0][name][1], "values": [r[0][name][0] for r in mine],
                         "calibrations_s": [r[1] for r in mine], "loads": [r[2] for r in mine]}
    today = date.today().isoformat()
    sources: dict[str, dict[str, str]] = dict(old.get("areas", {}))
    sources.update({area: {"machine": machine, "date": today} for area in areas})
    recorded_areas = {name.split(":")[0] for name in figures}
    sources = {area: sources[area] for area in sorted(sources) if area in recorded_areas}
    document = {"machine": summary(sources), "date": max((s["date"] for s in sources.values()), default=today),
                "areas": sources, "figures": dict(sorted(figures.items()))}
    RECORDED.write_text(json.dumps(document, indent=1) + "\n")
    return document


def summary(sources: dict[str, dict[str, str]]) -> str:
    """One line naming each machine and the areas last recorded on it."""
    by_machine: dict[str, list[str]] = {}
    for area, source in sources.items():
        by_machine.setdefault(source["machine"], []).append(f"{area} ({source['date']})")
    return "; ".join(f"{machine}: {', '.join(areas)}" for machine, areas in by_machine.items())


def compare(areas: list[str], run_area: Callable[[str], Rows]) -> int:
    """Run the areas once; print each compared figure's change against its noise; 1 if any moved."""
    if not RECORDED.exists():
        print(f"no recorded figures ({RECORDED.name}): run `python -m benchmarks --record 3 AREA...` first")
        return 2
    recorded = json.loads(RECORDED.read_text())["figures"]
    figures, calibration, load = _runs(areas, run_area)
    print(f"calibration {calibration * 1000:.0f} ms, load average {load:.2f}")
    print(f"{'figure':<70} {'change':>8} {'noise':>7}  verdict")
    moved = 0
    for name, (value, unit) in figures.items():
        old = recorded.get(name)
        form = comparable(value, unit, calibration)
        forms = [] if old is None else [f for v, c in zip(old["values"], old["calibrations_s"], strict=True)
                                        if (f := comparable(v, unit, c)) is not None]
        if old is None or form is None or len(forms) < 2:
            why = "new" if old is None else "not compared" if form is None else "noise not measured (record twice)"
            print(f"{name:<70} {'':>8} {'':>7}  {why}")
            continue
        middle = statistics.median(forms)
        noise = max(MIN_NOISE, (max(forms) - min(forms)) / abs(middle) if middle else 0.0)
        change = (form - middle) / abs(middle) if middle else (0.0 if form == 0 else math.inf)
        if time_like(unit) or unit in RATE_UNITS:  # an absolute time: shown against the calibration only
            verdict = "(absolute time: shown, not judged)"
        else:
            verdict = "MOVED" if abs(change) > noise else "within noise"
            moved += verdict == "MOVED"
        print(f"{name:<70} {change:>+8.1%} {noise:>7.1%}  {verdict}")
    print(f"{moved} figure(s) moved by more than the noise" if moved else "nothing moved by more than the noise")
    return 1 if moved else 0
