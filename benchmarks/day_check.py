"""Whether a simulated day's report is unchanged: every figure but ``wall_seconds`` must match.

    python -m benchmarks.day_check A.json B.json     # diff two reports
    python -m benchmarks.day_check --run [SCENARIO]  # run the day twice, same seed, and diff

A change made for speed must leave the report as it was (the same seed gives the same day): run
it on a report from before the change and one from after. Exit 0 when they match, 1 with the
differing keys (as JSON paths) when they do not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TIMING_KEYS = {"wall_seconds"}  # the only key allowed to differ between two runs of one seed


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{path}/{key}"))
        return out
    if isinstance(value, list):
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{path}[{i}]"))
        return out
    return {path: value}


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(path, a's value, b's value) for every figure that differs, timing keys aside."""
    fa, fb = flatten(a), flatten(b)
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb))
            if fa.get(k) != fb.get(k) and k.lstrip("/") not in TIMING_KEYS]


def run_day(scenario: Path, report: Path, state: Path) -> None:
    env = dict(os.environ, PYTHONHASHSEED="0")
    subprocess.run([sys.executable, "-m", "edge_agent.cli", "run", "--simulate", str(scenario),
                    "--as-fast-as-possible", "--broker", "127.0.0.1:9", "--state-dir", str(state),
                    "--report", str(report), "--log-level", "error"], check=True, cwd=ROOT, env=env,
                   stderr=subprocess.DEVNULL)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--run"]:
        scenario = Path(argv[1]) if len(argv) > 1 else ROOT / "simulator" / "scenarios" / "normal-day.toml"
        with tempfile.TemporaryDirectory(prefix="day-check-") as tmp:
            paths = [Path(tmp) / f"report-{i}.json" for i in (1, 2)]
            for i, path in enumerate(paths):
                run_day(scenario, path, Path(tmp) / f"state-{i}")
            a, b = (json.loads(p.read_text()) for p in paths)
    elif len(argv) == 2:
        a, b = (json.loads(Path(p).read_text()) for p in argv)
    else:
        print(__doc__)
        return 2
    diff = differences(a, b)
    for path, x, y in diff:
        print(f"{path}: {x!r} != {y!r}")
    print(f"{len(flatten(a))} figures, {len(diff)} differ" + ("" if diff else " (wall_seconds aside)"))
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
