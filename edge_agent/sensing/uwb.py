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

**Common range offset.** Every DW1000 system reads long by about the same amount on every
anchor (antenna delay: +0.15..0.2 m is typical without calibration). A robust solver that
assumes unbiased line-of-sight ranges sees that offset as a positive residual everywhere, takes
it for NLOS and drops good anchors: on biased LOS ranges it did worse than plain least squares.
So whenever at least ``offset_min_anchors`` (5) anchors are in view, the offset is an extra
unknown of the fit (with a weak prior at 0, ``offset_prior_m``), like a GNSS receiver's clock
bias. Each fix is solved twice, the offset held at what is known of it and the offset solved,
and the fit with the smaller residual per degree of freedom wins: a solved offset keeps every
anchor of ranges that all read long alike, a held one lets the fit drop the few that NLOS made
long. What is known of the offset is learned over the fixes (:class:`OffsetLearner`): it is a
property of the installation, so once learned it steadies every fix, NLOS ones included. A
per-anchor calibration file (``bias_m``) is subtracted first; the offset takes up what it left.

**Geometry.** Each fix carries its dilution of precision (``hdop``, and ``vdop`` for 3D), from
the unit vectors to the anchors used (and the offset column when estimated). 3D (``tag_z`` None)
is tried only when the anchors' geometry can observe height: anchors at heights at least
``min_height_spread_m`` apart, and a VDOP at most ``max_vdop``. With all anchors on one ceiling a
tag above the plane fits the ranges as well as one below, and with an unknown offset height is
not observable at all: Gauss-Newton wandered off to kilometres. :func:`solve` then falls back to the
2D fix at ``fallback_z`` (``Fix.dims`` says which) or gives no fix; a fix outside the anchors'
reach is never returned.

2D fixes take the tag height as known (a badge in a pocket, a tag on a desk): with all anchors
on the ceiling, as in a library, height is poorly observable and fixing it is more accurate.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Fix:
    """One position fix, how well the ranges agree with it and how good the geometry was."""

    x: float
    y: float
    z: float
    residual_m: float  # RMS of (measured - predicted) over the anchors used
    anchors_used: tuple[str, ...]
    rejected: tuple[str, ...] = ()
    hdop: float = math.inf  # horizontal dilution of precision of the anchors used
    vdop: float | None = None  # vertical, for 3D fixes only
    offset_m: float = 0.0  # the common range offset taken out of every range of this fix
    offset_solved: bool = False  # True: solved with the fix; False: held at what was known of it
    offset_estimate: float | None = None  # what a fit solving the offset found, when it is to be trusted
    dims: int = 2  # 3 only for a fix whose height was solved


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
    offset_min_anchors: int = 5  # estimate the common range offset with at least this many anchors
    offset_prior_m: float = 0.5  # its prior: 0 +- this (keeps a poor geometry from running away)
    max_vdop: float = 5.0  # 3D only when the geometry observes height at least this well
    known_offset_sigma_m: float = 0.1  # an offset known this well is no unknown of the height check
    min_height_spread_m: float = 0.3  # 3D needs anchors at heights at least this far apart
    max_hdop: float = 20.0  # beyond this a fix says nothing: none is given
    rejection_cost_m: float = 0.02  # what dropping an anchor costs a fit when the two fits are compared
    learn_max_residual_m: float = 0.1  # an offset solved with a fit this good ...
    learn_max_hdop: float = 3.0  # ... and this geometry is an estimate of the system's offset


def apply_bias(ids: Sequence[str], ranges: FloatArray, bias_m: Mapping[str, float]) -> FloatArray:
    """Subtract each anchor's calibrated range bias (metres); anchors without one are unchanged."""
    out: FloatArray = ranges - np.array([bias_m.get(a, 0.0) for a in ids], dtype=np.float64)
    return out


def _min_anchors(tag_z: float | None) -> int:
    return 3 if tag_z is not None else 4


def dilution(anchors: FloatArray, pos: FloatArray, dims: int, with_offset: bool) -> tuple[float, float | None]:
    """(HDOP, VDOP or None) of the anchors seen from ``pos``; inf where the geometry is singular."""
    diff = pos - anchors
    dist = np.maximum(np.sqrt((diff * diff).sum(axis=1)), 1e-6)
    h = diff[:, :dims] / dist[:, None]
    if with_offset:
        h = np.column_stack([h, np.ones(len(anchors))])
    try:
        q = np.linalg.inv(h.T @ h)
    except np.linalg.LinAlgError:
        return math.inf, (math.inf if dims == 3 else None)
    diag = np.diag(q)
    if not np.all(np.isfinite(diag)) or diag[0] < 0 or diag[1] < 0:
        return math.inf, (math.inf if dims == 3 else None)
    hdop = math.sqrt(float(diag[0] + diag[1]))
    vdop = math.sqrt(max(float(diag[2]), 0.0)) if dims == 3 else None
    return hdop, vdop


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
    if not np.all(np.isfinite(pos)):
        return None
    resid = ranges - np.linalg.norm(anchors - pos, axis=1)
    dims = 2 if tag_z is not None else 3
    hdop, vdop = dilution(anchors, pos, dims, with_offset=False)
    return Fix(float(pos[0]), float(pos[1]), float(pos[2]), float(np.sqrt(np.mean(resid**2))), tuple(ids),
               hdop=hdop, vdop=vdop, dims=dims)


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


def _irls(anchors: FloatArray, ranges: FloatArray, start: FloatArray, offset: float, free_z: bool,
          estimate_offset: bool, p: SolverParams) -> tuple[FloatArray, float]:
    """Gauss-Newton with reweighting, Huber first (stable from a poor start), then Tukey.

    Unknowns: x, y (and z when ``free_z``), and the common offset when ``estimate_offset``
    (with its prior at 0). Written for a handful of anchors: the per-call overhead of numpy
    dominates, so distances are summed by hand rather than through ``np.linalg.norm``.
    """
    pos, b = start.copy(), offset
    dims = 3 if free_z else 2
    k = dims + (1 if estimate_offset else 0)
    prior_w = (p.sigma_m / p.offset_prior_m) ** 2
    ones = np.ones(len(anchors))
    for tukey, c in ((False, p.huber_c), (True, p.tukey_c)):
        for _ in range(p.max_iterations):
            diff = pos - anchors
            pred = np.maximum(np.sqrt((diff * diff).sum(axis=1)), 1e-6)
            e = ranges - pred - b
            scale = max(p.sigma_m, 1.4826 * _median(np.abs(e)))
            w = _weights(e, scale, c, p, tukey)
            if np.count_nonzero(w) < k + 1:
                w = _weights(e, scale, c, p, tukey=False)  # too many zeroed: fall back to Huber
            jac = diff[:, :dims] / pred[:, None]
            if estimate_offset:
                jac = np.column_stack([jac, ones])
            jtw = jac.T * w
            normal = jtw @ jac
            rhs = jtw @ e
            if estimate_offset:
                normal[-1, -1] += prior_w
                rhs[-1] -= prior_w * b
            damp = 1e-9 * float(np.trace(normal)) + 1e-12  # Levenberg-Marquardt style
            try:
                step = np.linalg.solve(normal + damp * np.eye(k), rhs)
            except np.linalg.LinAlgError:
                return pos, b
            pos[:dims] += step[:dims]
            if estimate_offset:
                b += float(step[-1])
            if float(np.sqrt(step @ step)) < p.tolerance_m:
                break
    return pos, b


@dataclass(frozen=True, slots=True)
class OffsetPrior:
    """What is known of the system's common range offset before a fix: mean and spread (metres)."""

    mean_m: float = 0.0
    sigma_m: float = 0.5


def _fit(ids: Sequence[str], anchors: FloatArray, ranges: FloatArray, tag_z: float | None, start: FloatArray,
         prior: OffsetPrior, free_offset: bool, p: SolverParams) -> Fix | None:
    """One robust fit: the offset held at ``prior.mean_m`` or solved for (while enough anchors remain)."""
    keep = list(range(len(ids)))
    need = _min_anchors(tag_z)
    p = replace(p, offset_prior_m=prior.sigma_m)
    rejected: list[str] = []
    pos, offset = start, prior.mean_m
    for _ in range(len(ids)):  # bounded: at most one anchor dropped per round
        sub_a, sub_r = anchors[keep], ranges[keep]
        solving = free_offset and len(keep) >= p.offset_min_anchors
        pos, offset = _irls(sub_a, sub_r - prior.mean_m, pos, offset - prior.mean_m, tag_z is None, solving, p)
        offset += prior.mean_m
        e = sub_r - np.linalg.norm(sub_a - pos, axis=1) - offset
        rms = float(np.sqrt(np.mean(e**2)))
        if rms <= p.residual_gate_m or len(keep) <= need:
            break
        worst = int(np.argmax(e)) if float(e.max()) > 0 else int(np.argmax(np.abs(e)))
        rejected.append(ids[keep[worst]])
        del keep[worst]
    if not (np.all(np.isfinite(pos)) and math.isfinite(offset)):
        return None
    sub_a, sub_r = anchors[keep], ranges[keep]
    e = sub_r - np.linalg.norm(sub_a - pos, axis=1) - offset
    dims = 2 if tag_z is not None else 3
    solved = free_offset and len(keep) >= p.offset_min_anchors
    hdop, vdop = dilution(sub_a, pos, dims, with_offset=solved)
    return Fix(float(pos[0]), float(pos[1]), float(pos[2]), float(np.sqrt(np.mean(e**2))),
               tuple(ids[i] for i in keep), tuple(rejected), hdop=hdop, vdop=vdop,
               offset_m=float(offset), offset_solved=solved, dims=dims)


def _score(fix: Fix, p: SolverParams) -> float:
    """Residual per degree of freedom, and a little for every anchor dropped: lower is better."""
    n = len(fix.anchors_used)
    k = fix.dims + (1 if fix.offset_solved else 0)
    return fix.residual_m * math.sqrt(n / max(n - k, 0.5)) + p.rejection_cost_m * len(fix.rejected)


def solve_robust(
    ids: Sequence[str],
    anchors: FloatArray,
    ranges: FloatArray,
    tag_z: float | None,
    params: SolverParams | None = None,
    offset: OffsetPrior | None = None,
) -> Fix | None:
    """Robust fix with NLOS rejection and the common offset; None with too few usable anchors.

    Two fits from the linear start: the offset held at what is known of it (``offset``, by
    default 0 +- ``offset_prior_m``), and, with at least ``offset_min_anchors`` anchors, the
    offset solved for. The one with the smaller residual per degree of freedom wins: on ranges
    that all read long by the same amount the solved offset fits and keeps every anchor; where
    a few NLOS ranges are long, holding the offset lets the fit drop them instead.
    """
    p = params or SolverParams()
    prior = offset or OffsetPrior(0.0, p.offset_prior_m)
    if len(ids) < _min_anchors(tag_z):
        return None
    start_fix = solve_linear(ids, anchors, ranges - prior.mean_m, tag_z)
    if start_fix is not None:
        start = np.array([start_fix.x, start_fix.y, start_fix.z])
    else:
        start = anchors.mean(axis=0)
        start[2] = tag_z if tag_z is not None else anchors[:, 2].mean() - 1.0  # tags are below the anchors
    held = _fit(ids, anchors, ranges, tag_z, start, prior, False, p)
    if len(ids) < p.offset_min_anchors:
        return held
    if held is not None and not held.rejected and held.residual_m <= p.sigma_m:
        return held  # every range agrees with the offset as it is known: nothing to solve
    solved = _fit(ids, anchors, ranges, tag_z, start, prior, True, p)
    estimate = None
    if (solved is not None and solved.offset_solved and solved.residual_m <= p.learn_max_residual_m
            and solved.hdop <= p.learn_max_hdop):
        estimate = solved.offset_m
    best = solved if held is None or (solved is not None and _score(solved, p) < _score(held, p)) else held
    return None if best is None else replace(best, offset_estimate=estimate)


class OffsetLearner:
    """The system's common range offset, learned from the fixes that can tell it.

    The offset is a property of the installation (antenna delays), not of one fix, so every fix
    whose offset-solving fit kept enough anchors, fit them well and had a good geometry
    contributes its estimate (``Fix.offset_estimate``); the median of the last ``window`` of them
    is the prior of the next fixes. Until ``min_samples`` are in, the prior stays the uninformed
    0 +- ``offset_prior_m``.
    """

    def __init__(self, params: SolverParams | None = None, *, window: int = 200, min_samples: int = 20,
                 learned_sigma_m: float = 0.03) -> None:
        self.params = params or SolverParams()
        self.min_samples, self.learned_sigma_m = min_samples, learned_sigma_m
        self._samples: deque[float] = deque(maxlen=window)

    def observe(self, fix: Fix | None) -> None:
        if fix is not None and fix.offset_estimate is not None:
            self._samples.append(fix.offset_estimate)

    @property
    def samples(self) -> int:
        return len(self._samples)

    def prior(self) -> OffsetPrior:
        if len(self._samples) < self.min_samples:
            return OffsetPrior(0.0, self.params.offset_prior_m)
        return OffsetPrior(float(np.median(np.fromiter(self._samples, dtype=np.float64))), self.learned_sigma_m)


def _within_reach(fix: Fix, anchors: FloatArray, ranges: FloatArray) -> bool:
    """A fix farther from every anchor than the longest range (plus slack) is a divergence, not a place."""
    reach = float(ranges.max()) + 2.0
    lo, hi = anchors.min(axis=0) - reach, anchors.max(axis=0) + reach
    x, y, z = fix.x, fix.y, fix.z
    return bool(lo[0] <= x <= hi[0] and lo[1] <= y <= hi[1] and lo[2] <= z <= hi[2])


def height_observable(anchors: FloatArray, pos: FloatArray, offset_known: bool) -> float:
    """VDOP of a 3D fix at ``pos`` with these anchors (inf: height cannot be solved there).

    With all anchors on a ceiling, a tag's height and a common offset change the ranges almost
    alike, so unless the offset is known (learned, or calibrated) it counts as an unknown here.
    """
    _, vdop = dilution(anchors, pos, 3, with_offset=not offset_known)
    return math.inf if vdop is None else vdop


def _solve_3d(ids: Sequence[str], anchors: FloatArray, ranges: FloatArray, robust: bool,
              fallback_z: float | None, p: SolverParams, offset: OffsetPrior | None) -> Fix | None:
    """3D when the geometry observes height; else the 2D fix at ``fallback_z`` (or none)."""
    guess_z = fallback_z if fallback_z is not None else float(anchors[:, 2].mean()) - 1.0

    def one(z: float | None) -> Fix | None:
        if robust:
            return solve_robust(ids, anchors, ranges, z, p, offset)
        return solve_linear(ids, anchors, ranges, z)

    flat = one(guess_z)
    fallback = flat if fallback_z is not None and flat is not None and _usable(flat, anchors, ranges, p) else None
    if flat is None or len(ids) < _min_anchors(None) or float(np.ptp(anchors[:, 2])) < p.min_height_spread_m:
        return fallback  # anchors in one plane: a tag above it fits the ranges as well as one below
    known = offset is not None and offset.sigma_m <= p.known_offset_sigma_m
    if height_observable(anchors, np.array([flat.x, flat.y, guess_z]), known) > p.max_vdop:
        return fallback
    fix = one(None)
    if fix is None or not _usable(fix, anchors, ranges, p) or (fix.vdop or math.inf) > p.max_vdop:
        return fallback
    return fix


def _usable(fix: Fix, anchors: FloatArray, ranges: FloatArray, p: SolverParams) -> bool:
    finite = all(math.isfinite(v) for v in (fix.x, fix.y, fix.z))
    return finite and fix.hdop <= p.max_hdop and _within_reach(fix, anchors, ranges)


def solve(
    ranges_by_anchor: Mapping[str, float],
    anchor_positions: Mapping[str, tuple[float, float, float]],
    tag_z: float | None,
    *,
    robust: bool = True,
    bias_m: Mapping[str, float] | None = None,
    params: SolverParams | None = None,
    fallback_z: float | None = None,
    offset: OffsetPrior | None = None,
) -> Fix | None:
    """Convenience entry: ranges keyed by anchor id; unknown anchors and bad ranges are ignored.

    ``tag_z`` None asks for 3D; where the anchors cannot observe height the answer is the 2D fix
    at ``fallback_z`` (``Fix.dims == 2``), or None without one. Never a fix beyond the anchors'
    reach or with an HDOP above ``max_hdop``. ``offset`` is what is known of the common range
    offset (an :class:`OffsetLearner`'s prior); the plain solver ignores it, as a baseline should.
    """
    p = params or SolverParams()
    ids = [a for a, r in ranges_by_anchor.items() if a in anchor_positions and np.isfinite(r) and r > 0]
    if not ids:
        return None
    anchors = np.array([anchor_positions[a] for a in ids], dtype=np.float64)
    ranges = np.array([ranges_by_anchor[a] for a in ids], dtype=np.float64)
    if bias_m:
        ranges = apply_bias(ids, ranges, bias_m)
    if tag_z is None:
        return _solve_3d(ids, anchors, ranges, robust, fallback_z, p, offset)
    fix = solve_robust(ids, anchors, ranges, tag_z, p, offset) if robust else solve_linear(ids, anchors, ranges, tag_z)
    if fix is None or not _usable(fix, anchors, ranges, p):
        return None
    return fix
