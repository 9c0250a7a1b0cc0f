"""The solver figures of docs/positioning.md: robust vs plain least squares, simulated and real.

    python scripts/uwb_figures.py DATA_DIR          # DATA_DIR holds meta_IIoT_19.csv (ghent_uwb)

Simulated: the example floor's six ceiling anchors (2.8 m), tags at 1.0 m anywhere on the floor,
LOS noise sigma 5 cm; "offset" adds +0.18 m to every range (an uncalibrated antenna delay),
"NLOS" adds +0.2..1 m (heavy tail) to one or two anchors of every fix. Real: the IDLab Ghent
industrial hall (Fontaine et al., IEEE IoT J. 2023, doi:10.1109/JIOT.2023.3299319), all ranges
and the line-of-sight ones alone, converted by scripts/ghent_uwb.py into a temporary directory
(the data set may not be redistributed and stays where it is). Every figure is the 2D RMSE over
the fixes both solvers give, the robust one learning the system's offset over the log
(:func:`edge_agent.sensing.uwb_logs.solve_windows`).
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ghent_uwb import convert

from edge_agent.config import load_config
from edge_agent.sensing.uwb_logs import (
    AnchorRow,
    RangeRow,
    RangeWindow,
    TruthRow,
    anchor_table,
    group_windows,
    read_rows,
    rmse_2d,
    solve_windows,
    truth_for,
)

ROOT = Path(__file__).resolve().parents[1]
TAG_Z = 1.0


def simulated(kind: str, n: int = 500, seed: int = 5) -> tuple[dict[str, tuple[float, float, float]],
                                                                list[tuple[RangeWindow, TruthRow]]]:
    """Seeded fixes on the example floor: ``kind`` is LOS, LOS+offset, NLOS or NLOS+offset."""
    cfg = load_config(ROOT / "examples" / "floor-3.toml")
    anchors = {a.id: (a.x, a.y, a.z) for a in cfg.anchors}
    rng = np.random.default_rng(seed)
    offset = 0.18 if kind.endswith("+offset") else 0.0
    pairs = []
    for k in range(n):
        p = np.array([rng.uniform(0.5, 38.5), rng.uniform(0.5, 23.5), TAG_Z])
        r = {a: float(np.linalg.norm(p - np.array(xyz)) + offset + rng.normal(0.0, 0.05)) for a, xyz in anchors.items()}
        if kind.startswith("NLOS"):
            for a in rng.choice(sorted(anchors), size=int(rng.integers(1, 3)), replace=False):
                r[str(a)] += rng.uniform(0.2, 1.0) + (rng.pareto(2.5) * 0.3 if rng.random() < 0.3 else 0.0)
        t = float(k)
        pairs.append((RangeWindow("sim", t, t, r), TruthRow(t=t, tag_id="sim", x=p[0], y=p[1], z=p[2])))
    return anchors, pairs


def score(anchors: dict[str, tuple[float, float, float]], pairs: list[tuple[RangeWindow, TruthRow]],
          tag_z: float) -> tuple[float, float, int, int]:
    """(robust RMSE, plain RMSE, fixes scored, windows) over the windows both solvers fix."""
    windows = [w for w, _ in pairs]
    robust = solve_windows(windows, anchors, tag_z, robust=True)
    plain = solve_windows(windows, anchors, tag_z, robust=False)
    both = [(r, p, t) for (_, r), (_, p), (_, t) in zip(robust, plain, pairs, strict=True) if r and p]
    r_rmse, n = rmse_2d((r, t) for r, _, t in both)
    p_rmse, _ = rmse_2d((p, t) for _, p, t in both)
    return r_rmse, p_rmse, n, len(pairs)


def ghent(meta: Path, los_only: bool) -> tuple[dict[str, tuple[float, float, float]],
                                               list[tuple[RangeWindow, TruthRow]]]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        convert(meta, out, los_only=los_only)
        anchors = anchor_table(read_rows(out / "anchors.csv", AnchorRow))
        ranges = read_rows(out / "ranges.csv", RangeRow).rows
        truth = read_rows(out / "truth.csv", TruthRow).rows
    return anchors, truth_for(group_windows(ranges, 0.5), truth, 0.5)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not (Path(argv[0]) / "meta_IIoT_19.csv").is_file():
        print("usage: python scripts/uwb_figures.py DATA_DIR   (the directory holding meta_IIoT_19.csv)",
              file=sys.stderr)
        return 2
    meta = Path(argv[0]) / "meta_IIoT_19.csv"
    print("| data | fixes | robust 2D RMSE | plain LS 2D RMSE | robust / plain |")
    print("|---|---|---|---|---|")
    cases: list[tuple[str, float, tuple[dict[str, tuple[float, float, float]],
                                          list[tuple[RangeWindow, TruthRow]]]]] = [
        (f"simulated {kind}", TAG_Z, simulated(kind)) for kind in ("LOS", "LOS+offset", "NLOS", "NLOS+offset")
    ]
    cases += [("ghent_uwb, all ranges", 1.5, ghent(meta, False)),
              ("ghent_uwb, LOS ranges only", 1.5, ghent(meta, True))]
    for name, tag_z, (anchors, pairs) in cases:
        r, p, n, total = score(anchors, pairs, tag_z)
        ratio = r / p if p > 0 and not math.isnan(p) else math.nan
        print(f"| {name} | {n} of {total} | {r:.3f} m | {p:.3f} m | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
