"""``edge-agent uwb``: solve positions and range biases from recorded UWB logs (technician tools).

File formats are described in :mod:`edge_agent.sensing.uwb_logs` and docs/positioning.md. A bad
header exits 2 with one line; malformed rows are skipped, each reported with its line number.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any, TypeVar

import click
import numpy as np

from drivers.errors import LogFormatError
from edge_agent.sensing.uwb import Fix, SolverParams
from edge_agent.sensing.uwb_logs import (
    AnchorRow,
    BiasRow,
    LogRead,
    LogRow,
    RangeRow,
    RangeWindow,
    TruthRow,
    anchor_table,
    calibrate_bias,
    group_windows,
    read_rows,
    rmse_2d,
    solve_windows,
    truth_for,
)

MAX_PROBLEM_LINES = 20
POSITIONS_HEADER = ["t", "tag_id", "x", "y", "z", "residual_m", "anchors_used", "hdop", "vdop", "offset_m", "dims"]
Row = TypeVar("Row", bound=LogRow)
PathArg = click.Path(path_type=Path, dir_okay=False)


def _report(read: LogRead[Any], what: str) -> None:
    """Malformed rows to stderr, one line each (capped), then the count skipped."""
    for line in read.problems[:MAX_PROBLEM_LINES]:
        click.echo(f"warning: {line}", err=True)
    if len(read.problems) > MAX_PROBLEM_LINES:
        click.echo(f"warning: ... {len(read.problems) - MAX_PROBLEM_LINES} more", err=True)
    if read.problems:
        click.echo(f"{what}: {len(read.problems)} problem row(s) skipped, {len(read.rows)} used", err=True)


def _load(path: Path, model: type[Row], what: str) -> LogRead[Row]:
    try:
        read = read_rows(path, model)
    except LogFormatError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    _report(read, what)
    if not read.rows:
        click.echo(f"error: {path}: no usable rows", err=True)
        sys.exit(2)
    return read


def _tag_z(tag_height: float, three_d: bool) -> float | None:
    return None if three_d else tag_height


def _warn_flat(fixes: list[tuple[RangeWindow, Fix | None]], three_d: bool, tag_height: float) -> None:
    """With --3d, say how many fixes could not solve height (the anchors' geometry) and were made 2D."""
    if not three_d:
        return
    flat = sum(1 for _, fix in fixes if fix is not None and fix.dims == 2)
    if flat:
        solved = sum(1 for _, fix in fixes if fix is not None)
        click.echo(
            f"warning: --3d: the anchors cannot observe height for {flat} of {solved} fixes (vertical dilution "
            f"of precision above {SolverParams().max_vdop:g}: anchors at one height, or a common range offset "
            f"not yet known); those are 2D fixes at --tag-height {tag_height:g} m (dims = 2)",
            err=True,
        )


@click.group()
def uwb() -> None:
    """Solve UWB positions and range biases from recorded logs."""


solve_options = [
    click.option("--anchors", "anchors_path", type=PathArg, required=True, help="anchor_id,x,y,z (metres)"),
    click.option("--ranges", "ranges_path", type=PathArg, required=True, help="t,tag_id,anchor_id,range_m"),
    click.option(
        "--window",
        "window_s",
        type=click.FloatRange(min=0.001),
        default=0.5,
        show_default=True,
        help="seconds of one tag's ranges that make one fix",
    ),
    click.option("--tag-height", type=float, default=1.0, show_default=True, help="known tag height (m) for 2D fixes"),
    click.option("--3d", "three_d", is_flag=True,
                 help="solve height too (needs 4 anchors at varied heights; else 2D at --tag-height, with a warning)"),
]


def _with_solve_options(f: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(solve_options):
        f = option(f)
    return f


@uwb.command("solve")
@_with_solve_options
@click.option("--out", "out_path", type=PathArg, required=True, help="POSITIONS.csv to write")
@click.option("--bias", "bias_path", type=PathArg, default=None, help="anchor_id,bias_m to subtract")
@click.option("--plain", is_flag=True, help="plain linear least squares (the baseline) instead of the robust solver")
def solve_cmd(
    anchors_path: Path,
    ranges_path: Path,
    window_s: float,
    tag_height: float,
    three_d: bool,
    out_path: Path,
    bias_path: Path | None,
    plain: bool,
) -> None:
    """Write one position per tag and window; windows with too few anchors give no fix."""
    anchors = anchor_table(_load(anchors_path, AnchorRow, "anchors"))
    ranges = _load(ranges_path, RangeRow, "ranges")
    bias = {r.anchor_id: r.bias_m for r in _load(bias_path, BiasRow, "bias").rows} if bias_path else None
    windows = group_windows(ranges.rows, window_s)
    fixes = solve_windows(windows, anchors, _tag_z(tag_height, three_d), robust=not plain, bias_m=bias,
                          fallback_z=tag_height)
    _warn_flat(fixes, three_d, tag_height)
    written = 0
    try:
        with out_path.open("w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh)
            out.writerow(POSITIONS_HEADER)
            for w, fix in fixes:
                if fix is None:
                    continue
                out.writerow(
                    [
                        f"{w.t:.3f}",
                        w.tag_id,
                        f"{fix.x:.3f}",
                        f"{fix.y:.3f}",
                        f"{fix.z:.3f}",
                        f"{fix.residual_m:.3f}",
                        len(fix.anchors_used),
                        f"{fix.hdop:.2f}",
                        "" if fix.vdop is None else f"{fix.vdop:.2f}",
                        f"{fix.offset_m:.3f}",
                        fix.dims,
                    ]
                )
                written += 1
    except OSError as exc:
        click.echo(f"error: {out_path}: cannot write ({exc.strerror or exc})", err=True)
        sys.exit(2)
    click.echo(
        f"{written} fixes from {len(windows)} windows written to {out_path} "
        f"({len(windows) - written} windows gave no fix: too few usable anchors, or a geometry that says nothing)"
    )


@uwb.command("calibrate-bias")
@_with_solve_options
@click.option("--truth", "truth_path", type=PathArg, required=True, help="t,tag_id,x,y,z surveyed positions")
@click.option("--out", "out_path", type=PathArg, required=True, help="BIAS.csv to write")
def calibrate_cmd(
    anchors_path: Path,
    ranges_path: Path,
    window_s: float,
    tag_height: float,
    three_d: bool,
    truth_path: Path,
    out_path: Path,
) -> None:
    """Estimate each anchor's range bias (median of measured - surveyed distance)."""
    anchors = anchor_table(_load(anchors_path, AnchorRow, "anchors"))
    ranges = _load(ranges_path, RangeRow, "ranges")
    truth = _load(truth_path, TruthRow, "truth")
    pairs = truth_for(group_windows(ranges.rows, window_s), truth.rows, window_s)
    if not pairs:
        click.echo("error: no window of ranges has a truth row of the same tag inside it; check t and tag_id", err=True)
        sys.exit(2)
    biases = calibrate_bias(pairs, anchors)
    try:
        with out_path.open("w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh)
            out.writerow(["anchor_id", "bias_m"])
            for anchor, (bias, _) in biases.items():
                out.writerow([anchor, f"{bias:.4f}"])
    except OSError as exc:
        click.echo(f"error: {out_path}: cannot write ({exc.strerror or exc})", err=True)
        sys.exit(2)
    for anchor, (bias, n) in biases.items():
        click.echo(f"{anchor}: {bias:+.3f} m from {n} ranges")


@uwb.command("score")
@_with_solve_options
@click.option("--truth", "truth_path", type=PathArg, required=True, help="t,tag_id,x,y,z surveyed positions")
@click.option("--bias", "bias_path", type=PathArg, default=None, help="anchor_id,bias_m to subtract")
def score_cmd(
    anchors_path: Path,
    ranges_path: Path,
    window_s: float,
    tag_height: float,
    three_d: bool,
    truth_path: Path,
    bias_path: Path | None,
) -> None:
    """2D RMSE of the robust solver and of plain least squares on the same fixes."""
    anchors = anchor_table(_load(anchors_path, AnchorRow, "anchors"))
    ranges = _load(ranges_path, RangeRow, "ranges")
    truth = _load(truth_path, TruthRow, "truth")
    bias = {r.anchor_id: r.bias_m for r in _load(bias_path, BiasRow, "bias").rows} if bias_path else None
    pairs = truth_for(group_windows(ranges.rows, window_s), truth.rows, window_s)
    tag_z = _tag_z(tag_height, three_d)
    robust = solve_windows([w for w, _ in pairs], anchors, tag_z, robust=True, bias_m=bias, fallback_z=tag_height)
    plain = solve_windows([w for w, _ in pairs], anchors, tag_z, robust=False, bias_m=bias, fallback_z=tag_height)
    _warn_flat(robust, three_d, tag_height)
    both = [(r, p, t) for (_, r), (_, p), (_, t) in zip(robust, plain, pairs, strict=True) if r and p]
    r_rmse, n = rmse_2d((r, t) for r, _, t in both)
    p_rmse, _ = rmse_2d((p, t) for _, p, t in both)
    click.echo(f"fixes scored: {n} of {len(pairs)} windows with truth")
    click.echo(f"robust 2D RMSE: {r_rmse:.3f} m")
    click.echo(f"plain least-squares 2D RMSE: {p_rmse:.3f} m")
    offsets = [r.offset_m for r, _, _ in both if r.offset_m]
    if offsets:
        click.echo(f"common range offset taken out: median {float(np.median(offsets)):+.3f} m")
