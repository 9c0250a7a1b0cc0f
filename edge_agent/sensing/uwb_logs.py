"""Recorded UWB logs (CSV) for technicians: read, group into fixes, solve, calibrate biases, score.

Formats (one header line, comma separated, metres and seconds):

- ANCHORS.csv  ``anchor_id,x,y,z``
- RANGES.csv   ``t,tag_id,anchor_id,range_m``  one row per range, any number of tags and anchors
- TRUTH.csv    ``t,tag_id,x,y,z``  surveyed tag positions; a row holds for that tag's window
- BIAS.csv     ``anchor_id,bias_m``
- POSITIONS.csv ``t,tag_id,x,y,z,residual_m,anchors_used`` (written)

A wrong header refuses the whole file (:class:`LogFormatError`, naming the missing and unexpected
columns). A malformed row is skipped and reported as ``FILE:LINE: problem``, so one bad line in a
day of ranges does not lose the day.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Generic, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.errors import LogFormatError
from edge_agent.sensing.uwb import Fix, OffsetLearner, OffsetPrior, SolverParams, solve

Finite = Annotated[float, Field(allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=64)]


class LogRow(BaseModel):
    """Base of one CSV row: unknown columns are errors, whitespace around values is ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class AnchorRow(LogRow):
    anchor_id: Name
    x: Finite
    y: Finite
    z: Finite


class RangeRow(LogRow):
    t: Finite
    tag_id: Name
    anchor_id: Name
    range_m: Annotated[float, Field(gt=0, lt=1000, allow_inf_nan=False)]


class TruthRow(LogRow):
    t: Finite
    tag_id: Name
    x: Finite
    y: Finite
    z: Finite


class BiasRow(LogRow):
    anchor_id: Name
    bias_m: Annotated[float, Field(ge=-5, le=5, allow_inf_nan=False)]


R = TypeVar("R", bound=LogRow)


@dataclass
class LogRead(Generic[R]):
    """Rows that parsed, and one line per row that did not."""

    rows: list[R] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_rows(path: Path, model: type[R]) -> LogRead[R]:
    """Read a CSV whose header must hold exactly ``model``'s columns (in any order)."""
    want = list(model.model_fields)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise LogFormatError(f"{path}: the file is empty; expected header {','.join(want)}", path=str(path))
            names = [h.strip() for h in header]
            missing = [w for w in want if w not in names]
            extra = [n for n in names if n not in want]
            if missing or extra or len(set(names)) != len(names):
                detail = (
                    "; ".join(
                        part
                        for part in (
                            f"missing {','.join(missing)}" if missing else "",
                            f"unexpected {','.join(extra)}" if extra else "",
                        )
                        if part
                    )
                    or "a column appears twice"
                )
                raise LogFormatError(f"{path}: header must be {','.join(want)} ({detail})", path=str(path), line=1)
            out: LogRead[R] = LogRead()
            for line_no, values in enumerate(reader, start=2):
                if not values or all(not v.strip() for v in values):
                    continue
                if len(values) != len(names):
                    out.problems.append(f"{path}:{line_no}: {len(values)} fields, expected {len(names)}")
                    continue
                try:
                    out.rows.append(model.model_validate(dict(zip(names, values, strict=True))))
                except ValidationError as exc:
                    err = exc.errors()[0]
                    where = ".".join(str(p) for p in err["loc"])
                    out.problems.append(f"{path}:{line_no}: {where}: {err['msg']}")
            return out
    except UnicodeDecodeError:
        raise LogFormatError(f"{path}: not UTF-8 text; is this a CSV file?", path=str(path)) from None
    except csv.Error as exc:
        raise LogFormatError(f"{path}: not readable as CSV ({exc})", path=str(path)) from None
    except OSError as exc:
        raise LogFormatError(f"{path}: cannot read it ({exc.strerror or exc})", path=str(path)) from None


def anchor_table(read: LogRead[AnchorRow]) -> dict[str, tuple[float, float, float]]:
    """Anchor id -> position; a repeated id is reported and its later rows ignored."""
    table: dict[str, tuple[float, float, float]] = {}
    for row in read.rows:
        if row.anchor_id in table:
            read.problems.append(f"anchor {row.anchor_id!r} is listed twice; the first position is used")
            continue
        table[row.anchor_id] = (row.x, row.y, row.z)
    return table


@dataclass(frozen=True, slots=True)
class RangeWindow:
    """The ranges of one tag within one window: one fix. Repeats of an anchor are medianed."""

    tag_id: str
    start: float
    t: float  # time of the last range in the window: when the fix became possible
    ranges: dict[str, float]


def group_windows(rows: Iterable[RangeRow], window_s: float) -> list[RangeWindow]:
    """Per tag, consecutive windows of ``window_s`` starting at the first range not yet used."""
    by_tag: dict[str, list[RangeRow]] = defaultdict(list)
    for row in rows:
        by_tag[row.tag_id].append(row)
    out: list[RangeWindow] = []
    for tag, tag_rows in by_tag.items():
        tag_rows.sort(key=lambda r: r.t)
        i = 0
        while i < len(tag_rows):
            start = tag_rows[i].t
            per_anchor: dict[str, list[float]] = defaultdict(list)
            j = i
            while j < len(tag_rows) and tag_rows[j].t < start + window_s:
                per_anchor[tag_rows[j].anchor_id].append(tag_rows[j].range_m)
                j += 1
            ranges = {a: float(np.median(v)) for a, v in per_anchor.items()}
            out.append(RangeWindow(tag, start, tag_rows[j - 1].t, ranges))
            i = j
    out.sort(key=lambda w: (w.t, w.tag_id))
    return out


def solve_windows(
    windows: Sequence[RangeWindow],
    anchors: Mapping[str, tuple[float, float, float]],
    tag_z: float | None,
    *,
    robust: bool = True,
    bias_m: Mapping[str, float] | None = None,
    params: SolverParams | None = None,
    fallback_z: float | None = None,
    learn_offset: bool = True,
) -> list[tuple[RangeWindow, Fix | None]]:
    """One fix per window; None where too few anchors are usable or the geometry gives nothing.

    The robust solver runs twice over a log: the first pass learns the system's common range
    offset from the windows that can tell it (:class:`OffsetLearner`), the second solves every
    window with it, so the first windows of a log are as good as the last.
    """
    def run(offset: OffsetPrior | None, learner: OffsetLearner | None) -> list[tuple[RangeWindow, Fix | None]]:
        out = []
        for w in windows:
            fix = solve(w.ranges, anchors, tag_z, robust=robust, bias_m=bias_m, params=params,
                        fallback_z=fallback_z, offset=offset)
            if learner is not None:
                learner.observe(fix)
            out.append((w, fix))
        return out

    if not robust or not learn_offset:
        return run(None, None)
    learner = OffsetLearner(params, window=max(200, len(windows)))
    first = run(None, learner)
    if learner.samples < learner.min_samples:
        return first
    return run(learner.prior(), None)


def truth_for(
    windows: Sequence[RangeWindow], truth: Iterable[TruthRow], window_s: float
) -> list[tuple[RangeWindow, TruthRow]]:
    """Pair each window with the truth row of the same tag whose time falls inside it."""
    by_tag: dict[str, list[TruthRow]] = defaultdict(list)
    for row in truth:
        by_tag[row.tag_id].append(row)
    pairs: list[tuple[RangeWindow, TruthRow]] = []
    for w in windows:
        hit = next((r for r in by_tag.get(w.tag_id, []) if w.start <= r.t < w.start + window_s), None)
        if hit is not None:
            pairs.append((w, hit))
    return pairs


def calibrate_bias(
    pairs: Sequence[tuple[RangeWindow, TruthRow]], anchors: Mapping[str, tuple[float, float, float]]
) -> dict[str, tuple[float, int]]:
    """Per anchor: median of (measured - surveyed distance), and how many ranges it rests on.

    The median, not the mean: a few NLOS ranges at one survey point must not shift the bias of
    an anchor that is otherwise in line of sight.
    """
    errors: dict[str, list[float]] = defaultdict(list)
    for w, truth in pairs:
        for anchor, measured in w.ranges.items():
            if anchor not in anchors:
                continue
            ax, ay, az = anchors[anchor]
            errors[anchor].append(measured - math.dist((ax, ay, az), (truth.x, truth.y, truth.z)))
    return {a: (float(np.median(e)), len(e)) for a, e in sorted(errors.items())}


def rmse_2d(pairs: Iterable[tuple[Fix, TruthRow]]) -> tuple[float, int]:
    """Root-mean-square horizontal error of fixes against truth, and the number of fixes."""
    sq = [(f.x - t.x) ** 2 + (f.y - t.y) ** 2 for f, t in pairs]
    return (math.sqrt(sum(sq) / len(sq)) if sq else math.nan), len(sq)
