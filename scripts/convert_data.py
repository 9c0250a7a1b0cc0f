"""Convert the public datasets under /work/shared/data into history CSVs (timestamp,zone,occupied).

    .venv/bin/python scripts/convert_data.py gym /work/shared/data/gym_crowdedness/data.csv gym.csv
    .venv/bin/python scripts/convert_data.py dtu /work/shared/data/dtu_library/Occu_data_library.csv dtu.csv

gym: the UC Berkeley campus gym's head count (``number_people``, about every 10 minutes, with a
-07:00/-08:00 offset) becomes one zone ``gym``. The offset is dropped, keeping the local wall time,
as ``edge-agent model`` does for any timestamp with an offset.

dtu: DTU Library's 30-minute entrance gate counts (two doors, ``in`` and ``out`` per bin) become
one zone ``library``: occupancy is the running sum of in - out over both doors, reset to 0 at 04:00
each day (the building is empty then; gate counters drift, so an unreset sum wanders off) and
floored at 0. A bin's count is stamped at its *end* (bin start + 30 min): the sum includes the
whole bin, so stamping it at the start would leak up to 30 minutes of the future into features.

The data stays where it is: nothing of it is copied into the project; run this to reproduce the
figures in docs/model.md.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path


def convert_gym(src: Path, dst: Path) -> int:
    rows = 0
    with src.open(encoding="utf-8", newline="") as fin, dst.open("w", encoding="utf-8") as fout:
        fout.write("timestamp,zone,occupied\n")
        for line, rec in enumerate(csv.DictReader(fin), start=2):
            try:
                t = datetime.fromisoformat(rec["date"]).replace(tzinfo=None)
                count = int(rec["number_people"])
            except (KeyError, ValueError) as exc:
                raise SystemExit(f"{src}:{line}: unreadable row ({exc})") from None
            fout.write(f"{t.isoformat()},gym,{count}\n")
            rows += 1
    return rows


def convert_dtu(src: Path, dst: Path, reset_hour: int = 4) -> int:
    net: dict[datetime, int] = defaultdict(int)
    with src.open(encoding="utf-8", newline="") as fin:
        for line, rec in enumerate(csv.DictReader(fin, delimiter=";"), start=2):
            try:
                t = datetime.fromisoformat(rec["Timestamp"])
                net[t] += int(rec["in"]) - int(rec["out"])
            except (KeyError, ValueError) as exc:
                raise SystemExit(f"{src}:{line}: unreadable row ({exc})") from None
    rows = 0
    occupancy = 0
    day_of: datetime | None = None
    with dst.open("w", encoding="utf-8") as fout:
        fout.write("timestamp,zone,occupied\n")
        for t in sorted(net):
            day = (t - timedelta(hours=reset_hour)).replace(hour=0, minute=0, second=0)
            if day != day_of:
                occupancy, day_of = 0, day
            occupancy = max(0, occupancy + net[t])
            fout.write(f"{(t + timedelta(minutes=30)).isoformat()},library,{occupancy}\n")
            rows += 1
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="Convert shared datasets into history CSVs.")
    parser.add_argument("dataset", choices=["gym", "dtu"])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    rows = (convert_gym if args.dataset == "gym" else convert_dtu)(args.source, args.out)
    print(f"wrote {rows} rows to {args.out}")


if __name__ == "__main__":
    main()
