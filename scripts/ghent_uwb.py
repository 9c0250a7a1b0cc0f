"""Convert the IDLab Ghent industrial-hall UWB log (meta_IIoT_19.csv) to the ``edge-agent uwb`` CSVs.

The dataset (Fontaine et al., IEEE IoT J. 2023, doi:10.1109/JIOT.2023.3299319) holds DW1000
two-way ranges from 14 static tag positions to 16-19 anchors each, recorded one anchor after the
other, with surveyed tag and anchor coordinates in millimetres. It may not be redistributed, so
this script reads it by path and writes the converted files somewhere outside the repository:

    python scripts/ghent_uwb.py /work/shared/data/ghent_uwb/meta_IIoT_19.csv /tmp/ghent

Ranges were not taken simultaneously, so fixes are formed the only fair way: the k-th range of
every anchor seen at a location makes fix k (the script gives them the same time stamp, one
second apart per k, one tag id per location). Writes anchors.csv, ranges.csv, truth.csv, and
for a held-out bias check truth_even.csv / truth_odd.csv (locations split by id parity).
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path


def _metres(row: dict[str, str], kx: str, ky: str, kz: str) -> tuple[float, float, float]:
    """A millimetre coordinate triple of the dataset in metres."""
    return float(row[kx]) / 1000, float(row[ky]) / 1000, float(row[kz]) / 1000


def convert(source: Path, out_dir: Path, *, los_only: bool = False) -> tuple[int, int, int]:
    """Write the CSVs; ``los_only`` keeps only the ranges the dataset labels line-of-sight."""
    anchors: dict[str, tuple[float, float, float]] = {}
    tags: dict[str, tuple[float, float, float]] = {}
    samples: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with source.open(newline="") as fh:
        for row in csv.DictReader(fh):
            anchor = f"A{int(float(row['anchorNumber']))}"
            loc = f"loc{int(row['location_ID'])}"
            anchors[anchor] = _metres(row, "x_anchor", "y_anchor", "z_anchor")
            tags[loc] = _metres(row, "x_tag", "y_tag", "z_tag")
            if los_only and row["NLOS"] != "LOS":
                continue
            samples[loc][anchor].append(float(row["estimated_range"]) / 1000)
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "anchors.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["anchor_id", "x", "y", "z"])
        for a, (x, y, z) in sorted(anchors.items()):
            w.writerow([a, x, y, z])
    n_ranges = 0
    truth_rows: list[tuple[str, list[object]]] = []
    with (out_dir / "ranges.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["t", "tag_id", "anchor_id", "range_m"])
        for i, loc in enumerate(sorted(samples, key=lambda s: int(s[3:]))):
            base = 100_000.0 * (i + 1)
            depth = max(len(v) for v in samples[loc].values())
            for k in range(depth):
                for anchor, values in sorted(samples[loc].items()):
                    if k < len(values):
                        w.writerow([base + k, loc, anchor, values[k]])
                        n_ranges += 1
                truth_rows.append((loc, [base + k, loc, *tags[loc]]))
    for name, keep in (
        ("truth", lambda _: True),
        ("truth_even", lambda n: n % 2 == 0),
        ("truth_odd", lambda n: n % 2 == 1),
    ):
        with (out_dir / f"{name}.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["t", "tag_id", "x", "y", "z"])
            for loc, truth_row in truth_rows:
                if keep(int(loc[3:])):
                    w.writerow(truth_row)
    return len(anchors), len(tags), n_ranges


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python scripts/ghent_uwb.py META_IIOT_19.csv OUT_DIR", file=sys.stderr)
        return 2
    n_anchors, n_tags, n_ranges = convert(Path(argv[0]), Path(argv[1]))
    print(f"{n_anchors} anchors, {n_tags} tag positions, {n_ranges} ranges written to {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
