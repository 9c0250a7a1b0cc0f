"""UWB multilateration: a tag's position from its two-way ranges to surveyed anchors.

Two solvers on the same inputs, so they can be compared on the same fixes:

- :func:`solve_linear` is the textbook baseline: square the range equations and solve the
  resulting linear system by least squares. Fast, but every error (and a 0.5 m NLOS excess
  squared) goes straight into the answer.
- :func:`solve_robust` starts from the linear answer and runs Gauss-Newton on the true range
  equations with iteratively reweighted residuals: a Huber pass, then a Tukey pass that gives
  zero weight to ranges far off the consensus. Non-line-of-sight only ever makes a range
  *longer* (the direct path is blocked, a reflection arrives), so positive residuals are
  down-weighted harder than negative ones (``positive_c_factor``). If the fit still leaves an RMS
  residual above ``residual_gate_m``, the anchor with the most positive residual is dropped and
  the fix solved again, while more than the minimum (3 for 2D, 4 for 3D) remain.

2D fixes take the tag height as known (a badge in a pocket, a tag on a desk): with all anchors
on the ceiling, as in a library, height is poorly observable and fixing it is more accurate.
A per-anchor range bias (antenna delay, a pillar in the way) is subtracted before solving.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Fix:
    """One position fix and how well the ranges agree with it."""

    x: float
    y: float
    z: float
    residual_m: float  # RMS of (measured - predicted) over the anchors used
    anchors_used: tuple[str, ...]
    rejected: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SolverParams:
    """Robust-solver tuning; ``sigma_m`` is the LOS range noise the weights are scaled to."""

    sigma_m: float = 0.05
    huber_c: float = 1.5
    tukey_c: float = 4.685
    positive_c_factor: float = 0.6
    residual_gate_m: float = 0.15
    max_iterations: int = 30
    tolerance_m: float = 1e-4


def apply_bias(ids: Sequence[str], ranges: FloatArray, bias_m: Mapping[str, float]) -> FloatArray:
    """Subtract each anchor's calibrated range bias (metres); anchors without one are unchanged."""
    out: FloatArray = ranges - np.array([bias_m.get(a, 0.0) for a in ids], dtype=np.float64)
    return out


def _min_anchors(tag_z: float | None) -> int:
    return 3 if tag_z is not None else 4


def solve_linear(ids: Sequence[str], anchors: FloatArray, ranges: FloatArray, tag_z: float | None) -> Fix | None:
    """Least squares on the squared range equations; None with too few anchors or bad geometry.

    2D (``tag_z`` given): unknowns x, y, x^2 + y^2 with the horizontal range from Pythagoras.
    3D: unknowns x, y, z, x^2 + y^2 + z^2.
    """
    n = len(ids)
    if n < _min_anchors(tag_z):
        return None
    if tag_z is not None:
        horiz2 = np.maximum(ranges**2 - (tag_z - anchors[:, 2]) ** 2, 0.0)
        a = np.column_stack([-2 * anchors[:, 0], -2 * anchors[:, 1], np.ones(n)])
        b = horiz2 - anchors[:, 0] ** 2 - anchors[:, 1] ** 2
    else:
        a = np.column_stack([-2 * anchors, np.ones(n)])
        b = ranges**2 - (anchors**2).sum(axis=1)
    sol, _, rank, _ = np.linalg.lstsq(a, b, rcond=None)
    if rank < a.shape[1]:
        return None
    pos = np.array([sol[0], sol[1], tag_z if tag_z is not None else sol[2]])
    resid = ranges - np.linalg.norm(anchors - pos, axis=1)
    return Fix(float(pos[0]), float(pos[1]), float(pos[2]), float(np.sqrt(np.mean(resid**2))), tuple(ids))


def _weights(e: FloatArray, scale: float, c: float, p: SolverParams, tukey: bool) -> FloatArray:
    """IRLS weights; positive residuals (range too long: NLOS) get the tighter threshold."""
    cut = np.where(e > 0, c * p.positive_c_factor, c) * scale
    u = np.abs(e) / cut
    if tukey:
        return np.where(u < 1.0, (1.0 - u**2) ** 2, 0.0)
    return np.where(u <= 1.0, 1.0, 1.0 / np.maximum(u, 1e-12))


def _median(x: FloatArray) -> float:
    """The median of a short vector (np.median's generality costs more than the sort here)."""
    v = np.sort(x)
    n = len(v)
    return float(v[n // 2]) if n % 2 else 0.5 * float(v[n // 2 - 1] + v[n // 2])


def _irls(anchors: FloatArray, ranges: FloatArray, start: FloatArray, free_z: bool, p: SolverParams) -> FloatArray:
    """Gauss-Newton with reweighting: Huber first (stable from a poor start), then Tukey.

    Written for a handful of anchors: the per-call overhead of numpy dominates, so distances are
    summed by hand rather than through ``np.linalg.norm``, and the 2D normal equations (the usual
    case: tag height known) are solved in closed form.
    """
    pos = start.copy()
    dims = 3 if free_z else 2
    for tukey, c in ((False, p.huber_c), (True, p.tukey_c)):
        for _ in range(p.max_iterations):
            diff = pos - anchors
            pred = np.maximum(np.sqrt((diff * diff).sum(axis=1)), 1e-6)
            e = ranges - pred
            scale = max(p.sigma_m, 1.4826 * _median(np.abs(e)))
            w = _weights(e, scale, c, p, tukey)
            if np.count_nonzero(w) < dims + 1:
                w = _weights(e, scale, c, p, tukey=False)  # too many zeroed: fall back to Huber
            jac = diff[:, :dims] / pred[:, None]
            jtw = jac.T * w
            normal = jtw @ jac
            rhs = jtw @ e
            damp = 1e-9 * (normal[0, 0] + normal[1, 1] + (normal[2, 2] if dims == 3 else 0.0)) + 1e-12
            if dims == 2:  # LM-style damping, then Cramer's rule
                a, b, d = normal[0, 0] + damp, normal[0, 1], normal[1, 1] + damp
                det = a * d - b * b
                step = np.array([(d * rhs[0] - b * rhs[1]) / det, (a * rhs[1] - b * rhs[0]) / det])
            else:
                step = np.linalg.solve(normal + damp * np.eye(3), rhs)
            pos[:dims] += step
            if float(np.sqrt(step @ step)) < p.tolerance_m:
                break
    return pos


def solve_robust(
    ids: Sequence[str],
    anchors: FloatArray,
    ranges: FloatArray,
    tag_z: float | None,
    params: SolverParams | None = None,
) -> Fix | None:
    """Robust fix with NLOS rejection; None with fewer than the minimum usable anchors."""
    p = params or SolverParams()
    keep = list(range(len(ids)))
    need = _min_anchors(tag_z)
    if len(keep) < need:
        return None
    start_fix = solve_linear(ids, anchors, ranges, tag_z)
    if start_fix is not None:
        start = np.array([start_fix.x, start_fix.y, start_fix.z])
    else:
        start = anchors.mean(axis=0)
        if tag_z is not None:
            start[2] = tag_z
    rejected: list[str] = []
    pos = start
    for _ in range(len(ids)):  # bounded: at most one anchor dropped per round
        sub_a, sub_r = anchors[keep], ranges[keep]
        pos = _irls(sub_a, sub_r, pos, tag_z is None, p)
        e = sub_r - np.linalg.norm(sub_a - pos, axis=1)
        rms = float(np.sqrt(np.mean(e**2)))
        if rms <= p.residual_gate_m or len(keep) <= need:
            break
        worst = int(np.argmax(e)) if float(e.max()) > 0 else int(np.argmax(np.abs(e)))
        rejected.append(ids[keep[worst]])
        del keep[worst]
    sub_a, sub_r = anchors[keep], ranges[keep]
    e = sub_r - np.linalg.norm(sub_a - pos, axis=1)
    if not np.all(np.isfinite(pos)):
        return None
    return Fix(
        float(pos[0]),
        float(pos[1]),
        float(pos[2]),
        float(np.sqrt(np.mean(e**2))),
        tuple(ids[i] for i in keep),
        tuple(rejected),
    )


def solve(
    ranges_by_anchor: Mapping[str, float],
    anchor_positions: Mapping[str, tuple[float, float, float]],
    tag_z: float | None,
    *,
    robust: bool = True,
    bias_m: Mapping[str, float] | None = None,
    params: SolverParams | None = None,
) -> Fix | None:
    """Convenience entry: ranges keyed by anchor id; unknown anchors and bad ranges are ignored."""
    ids = [a for a, r in ranges_by_anchor.items() if a in anchor_positions and np.isfinite(r) and r > 0]
    if not ids:
        return None
    anchors = np.array([anchor_positions[a] for a in ids], dtype=np.float64)
    ranges = np.array([ranges_by_anchor[a] for a in ids], dtype=np.float64)
    if bias_m:
        ranges = apply_bias(ids, ranges, bias_m)
    if robust:
        return solve_robust(ids, anchors, ranges, tag_z, params)
    return solve_linear(ids, anchors, ranges, tag_z)
