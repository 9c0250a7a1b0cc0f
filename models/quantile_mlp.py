"""A small quantile MLP: the forecast model that federates, with DP-SGD over zone-days.

Why this family for federated training (docs/model.md says more): FedAvg averages parameters, which
is meaningful for a fixed differentiable architecture trained from one shared initialisation, and
not for tree ensembles (each gateway's trees split on different thresholds). Gradients also make
differential privacy simple and well understood: DP-SGD clips each privacy unit's gradient and
adds Gaussian noise, and its cost is accounted exactly.

The model: one hidden layer (ReLU) from the shared features (:mod:`models.features`) plus a linear
skip path from the few columns that are naive forecasts of the target time (the weekday profile,
yesterday, last week, the typed profile, now and how today runs: :func:`skip_inputs`), to ``3 * H``
outputs, horizon-major ``(p10, p50, p90)`` fractions of the zone scale, trained with the pinball
loss. :func:`init_params` starts the skip path as the weekday profile, so training learns
corrections to a sound forecast. It exports to ONNX (``Gemm``, ``Relu``, ``Gemm``, ``MatMul``,
``Add``) with the same input, output and metadata as the boosted model, so a gateway's
:class:`~models.inference.Forecaster` loads either. :func:`trainable` picks what a round trains
(under DP, the ``head``: fewer noised coordinates).

Privacy unit: one zone-day of counts (the 96 grid slots of one zone on one calendar day). Each
step samples zone-days with probability ``q`` (Poisson), averages the pinball-loss gradient over
each zone-day's rows, clips it to L2 norm ``clip``, sums, adds N(0, (noise_multiplier * clip)^2)
and divides by the expected batch. :mod:`models.privacy` accounts the steps. That accounting
holds for a zone-day of *counts* only if no other zone-day's gradient depends on them, and the
lag and profile columns of a row read up to four weeks back (a day's counts are features of the
next 28 days' rows): under DP the model therefore reads only the :data:`IN_DAY_FEATURES` (time,
weekday, the public calendar, the count now and its last hour) and trains only on rows whose
inputs and targets lie in the row's own zone-day (:func:`zone_days` with ``in_day=True``,
:func:`in_day_params`, :func:`trainable` with ``in_day=True``).

numpy only: a gateway that joins a federation trains with what it already has.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from models.calendar import LibraryCalendar
from models.features import (
    CARRY_LEADS_MIN,
    CARRY_PROFILES,
    DAY_STEPS,
    FEATURE_NAMES,
    FEATURE_VERSION,
    FEATURE_VERSIONS,
    LAG_LEADS_MIN,
    feature_names,
    feature_rows,
    version_of_width,
)
from models.history import STEP_MIN, Observation
from models.training import QUANTILES, zone_grids, zone_scales

if TYPE_CHECKING:
    from models.private_profile import ReleasedProfile

Params = list[npt.NDArray[np.float32]]
F32 = npt.NDArray[np.float32]
PARAM_NAMES = ("hidden.weight", "hidden.bias", "out.weight", "out.bias", "skip.weight")
#: Where each quantile of a horizon starts, around the weekday profile (fractions of the zone scale).
START_SPREAD = (-0.05, 0.0, 0.05)
SCOPES = ("all", "head", "skip")


#: The columns whose value at an anchor depends only on the anchor's own zone-day and the public
#: calendar (the privacy unit's own data): what a model trained under DP may read.
IN_DAY_FEATURES: tuple[str, ...] = tuple(
    n for n in FEATURE_NAMES
    if n.startswith(("tod_", "dow_", "trend_", "open_", "sametype_"))
    or n in ("day_exam", "day_holiday", "now", "now_missing", "calendar_missing")
)
#: The typed profile at each lead, the count now against it, and demand-v4's count now carried by its
#: change: under DP computed from a *released* profile (:mod:`models.private_profile`, itself
#: differentially private) instead of the other days' counts.
PROFILE_FEATURES: tuple[str, ...] = (
    *(n for lead in LAG_LEADS_MIN for n in (f"typed_{lead}", f"typed_{lead}_missing")),
    "now_vs_typed", "now_vs_typed_missing",
    *(n for lead in CARRY_LEADS_MIN for n in (f"carry_typed_{lead}", f"carry_typed_{lead}_missing")),
)
#: The first slot of a day whose anchor's inputs all lie in that day (``trend_60`` reads an hour back).
IN_DAY_FIRST_SLOT = 60 // STEP_MIN


def in_day_rows(version: str = FEATURE_VERSION, profile: bool = False) -> npt.NDArray[np.bool_]:
    """True for each feature column of ``version`` in :data:`IN_DAY_FEATURES` (and, with ``profile``,
    :data:`PROFILE_FEATURES`: what a DP model with a released profile reads)."""
    allowed = set(IN_DAY_FEATURES) | (set(PROFILE_FEATURES) if profile else set())
    return np.array([n in allowed for n in feature_names(version)])


def in_day_params(params: Params, profile: bool = False) -> Params:
    """``params`` with every weight from a column outside :data:`IN_DAY_FEATURES` (and, with ``profile``,
    :data:`PROFILE_FEATURES`) set to 0: the model's output then depends on the anchor's own zone-day
    (and the released profile) only, whatever the other columns hold."""
    keep = in_day_rows(version_of_width(params[0].shape[0]), profile)[:, None].astype(np.float32)
    w1, b1, w2, b2, ws = params
    return [w1 * keep, b1.copy(), w2.copy(), b2.copy(), ws * keep]


@dataclass
class ZoneDays:
    """Training data grouped by privacy unit: ``x[g, s]`` the features of zone-day ``g`` at slot ``s``."""

    x: F32  # [G, 96, F]
    y: F32  # [G, 96, H] targets as fractions, NaN where unknown (and on padded slots)
    scale: F32  # [G] the zone's scale, to turn fractions back into people
    days: list[tuple[str, int]] = field(default_factory=list)  # (zone, day number) of each group

    @property
    def groups(self) -> int:
        return int(self.x.shape[0])

    def take(self, idx: npt.NDArray[np.int64]) -> ZoneDays:
        return ZoneDays(self.x[idx], self.y[idx], self.scale[idx], [self.days[i] for i in idx.tolist()])

    @staticmethod
    def join(parts: Sequence[ZoneDays]) -> ZoneDays:
        """Several data sets pooled (central training)."""
        return ZoneDays(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]),
                        np.concatenate([p.scale for p in parts]), [d for p in parts for d in p.days])


def zone_days(
    history: Mapping[str, Sequence[Observation]],
    horizons: Sequence[int],
    calendar: LibraryCalendar | None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    capacities: Mapping[str, float] | None = None,
    max_groups: int | None = None,
    in_day: bool = False,
    version: str = FEATURE_VERSION,
    profiles: Mapping[str, ReleasedProfile] | None = None,
) -> ZoneDays:
    """Group each zone's anchors ``since <= t < until`` by day (targets may lie after ``until`` only if
    the data has them: pass history cut at ``until`` to keep them out). Keeps the newest ``max_groups``.

    ``in_day``: only rows whose inputs (:data:`IN_DAY_FEATURES`) and target lie in the anchor's own
    day (anchors from :data:`IN_DAY_FIRST_SLOT`, targets before midnight): a group then depends on
    its own zone-day's counts alone, as DP over zone-days needs.

    ``profiles`` (demand-v4): each zone's released profile (:mod:`models.private_profile`) replaces
    the carried typed columns, so they read the release instead of the other days' counts."""
    names = feature_names(version)
    scales = zone_scales(history, capacities)
    xs: list[F32] = []
    ys: list[F32] = []
    ss: list[float] = []
    days: list[tuple[str, int]] = []
    for zone, data in sorted(zone_grids(history, scales).items()):
        grid = data.grid
        n = grid.values.size
        frac = grid.values / data.scale
        start_min = grid.start.hour * 60 + grid.start.minute
        k = np.arange(n, dtype=np.int64)
        day = (start_min + k * STEP_MIN) // 1440
        slot = ((start_min + k * STEP_MIN) % 1440) // STEP_MIN
        targets = np.full((n, len(horizons)), np.nan)
        for j, h in enumerate(horizons):
            s = h // STEP_MIN
            targets[: max(0, n - s), j] = frac[s:]
            if in_day:
                targets[(slot < IN_DAY_FIRST_SLOT) | (slot + s >= DAY_STEPS), j] = np.nan
        times = [grid.time_at(int(i)) for i in (0, n - 1)]
        lo = 0 if since is None or since <= times[0] else max(0, grid.index_of(since))
        hi = n if until is None or until > times[1] else max(0, grid.index_of(until))
        feats = feature_rows(grid, k[lo:hi], data.scale, calendar, version)
        if profiles is not None:
            from models.private_profile import carry_from_release

            carry_from_release(feats, names, grid, k[lo:hi], profiles.get(zone), calendar)
        for d in np.unique(day[lo:hi]).tolist():
            rows = np.flatnonzero(day[lo:hi] == d)
            if np.all(np.isnan(targets[lo + rows])):
                continue
            x = np.zeros((DAY_STEPS, len(names)), np.float32)
            y = np.full((DAY_STEPS, len(horizons)), np.nan, np.float32)
            x[slot[lo + rows]] = feats[rows]
            y[slot[lo + rows]] = targets[lo + rows]
            xs.append(x)
            ys.append(y)
            ss.append(data.scale)
            days.append((zone, int(d)))
    if not xs:
        return ZoneDays(np.zeros((0, DAY_STEPS, len(names)), np.float32),
                        np.zeros((0, DAY_STEPS, len(horizons)), np.float32), np.zeros(0, np.float32))
    out = ZoneDays(np.stack(xs), np.stack(ys), np.asarray(ss, np.float32), days)
    if max_groups is not None and out.groups > max_groups:
        out = out.take(np.arange(out.groups - max_groups, out.groups))
    return out


def bytes_per_group(horizons: int, version: str = FEATURE_VERSION) -> int:
    """Memory of one zone-day in :class:`ZoneDays` plus its activations in a step (for the budget)."""
    return DAY_STEPS * (len(feature_names(version)) + horizons) * 4 * 3


def _lead(horizon_min: int) -> int:
    return max(lead for lead in LAG_LEADS_MIN if lead <= horizon_min)


def profile_column(horizon_min: int) -> int:
    """The feature column of the weekday profile at the target time (the lead nearest below ``horizon_min``)."""
    return FEATURE_NAMES.index(f"weeks4_{_lead(horizon_min)}")


def skip_inputs(horizon_min: int, version: str = FEATURE_VERSION) -> list[str]:
    """The columns the skip path of a horizon reads: the naive forecasts of its target time and how today
    runs (demand-v4 and later: and the count now carried to it by each profile)."""
    lead = _lead(horizon_min)
    has_carry = version != FEATURE_VERSION and lead in CARRY_LEADS_MIN  # demand-v4 and later carry the count
    carried = [f"carry_{p}_{lead}" for p in CARRY_PROFILES] if has_carry else []
    return ["now", "now_missing", "trend_15", "trend_60", "now_vs_days7", "now_vs_weeks4", "now_vs_typed",
            *(f"{b}_{lead}" for b in ("day", "week", "days7", "weeks4", "typed", "open")), f"weeks4_{lead}_missing",
            *carried]


def trainable(horizons: Sequence[int], hidden: int = 32, scope: str = "all", in_day: bool = False,
              version: str = FEATURE_VERSION, profile: bool = False) -> Params:
    """0/1 masks of the parameters a round trains (the rest keep the shared starting values).

    ``all``: the hidden layer, the output layer and the skip path; ``head``: the hidden layer's input
    weights stay the shared random projection, so DP noise goes only into the few hundred
    parameters that map it and the skip columns to the forecast. With DP-SGD the noise is spread
    over every trained coordinate while the clipped signal is not: fewer coordinates, more signal.
    ``in_day``: no weight from a column outside :data:`IN_DAY_FEATURES` is trained (DP; ``profile``: nor
    from one outside :data:`PROFILE_FEATURES`).
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    names = feature_names(version)
    f, o = len(names), 3 * len(horizons)
    skip = np.zeros((f, o), np.float32)
    for j, h in enumerate(horizons):
        skip[[names.index(n) for n in skip_inputs(h, version)], 3 * j: 3 * j + 3] = 1.0
    first = 1.0 if scope == "all" else 0.0
    out = 0.0 if scope == "skip" else 1.0
    mask = [np.full((f, hidden), first, np.float32), np.full(hidden, first, np.float32),
            np.full((hidden, o), out, np.float32), np.ones(o, np.float32), skip]
    return in_day_params(mask, profile) if in_day else mask


def init_params(horizons: Sequence[int], hidden: int = 32, seed: int = 0, in_day: bool = False,
                version: str = FEATURE_VERSION) -> Params:
    """The shared starting point every gateway of a federation trains from (the server's copy).

    The skip path starts as the seasonal naive forecast (each horizon's quantiles read the weekday
    profile at the target time, spread by :data:`START_SPREAD`) and the hidden layer's output starts
    small: training learns corrections to a sound forecast instead of a forecast from noise, which
    is what lets a few noised rounds of DP-SGD improve on the baseline. Nothing here comes from data.
    ``in_day``: a model of :data:`IN_DAY_FEATURES` only, whose skip path starts as the count now.
    """
    rng = np.random.default_rng(seed)
    f, o = len(feature_names(version)), 3 * len(horizons)
    skip = np.zeros((f, o), np.float32)
    for j, h in enumerate(horizons):
        skip[FEATURE_NAMES.index("now") if in_day else profile_column(h), 3 * j: 3 * j + 3] = 1.0
    params = [
        (rng.standard_normal((f, hidden)) * np.sqrt(2.0 / f)).astype(np.float32),
        np.zeros(hidden, np.float32),
        np.zeros((hidden, o), np.float32),
        np.tile(np.asarray(START_SPREAD, np.float32), len(horizons)),
        skip,
    ]
    return in_day_params(params) if in_day else params


def widen(params: Params, version: str) -> Params:
    """A model of an older feature version as a model of ``version`` computing the same forecast: the
    added columns (appended by every newer version) get zero weights, so training can take them up."""
    f, width = params[0].shape[0], len(feature_names(version))
    if width < f or feature_names(version)[:f] != feature_names(version_of_width(f)):
        raise ValueError(f"a {version_of_width(f)} model cannot be widened to {version}")
    pad = ((0, width - f), (0, 0))
    w1, b1, w2, b2, ws = params
    return [np.pad(w1, pad), b1.copy(), w2.copy(), b2.copy(), np.pad(ws, pad)]


def skip_from(params: Params, horizons: Sequence[int], column: Callable[[int], str]) -> Params:
    """``params`` whose skip path reads, for each horizon, only ``column(horizon)`` with weight 1 (the
    rest of the skip path 0): e.g. the count now carried by the typed profile (a residual over now)."""
    names = feature_names(version_of_width(params[0].shape[0]))
    skip = np.zeros_like(params[4])
    for j, h in enumerate(horizons):
        skip[names.index(column(h)), 3 * j: 3 * j + 3] = 1.0
    return [*(p.copy() for p in params[:4]), skip]


def reads_in_day_only(params: Params, profile: bool = False) -> bool:
    """Whether the model ignores every column outside :data:`IN_DAY_FEATURES` (a model DP training keeps;
    ``profile``: outside those and :data:`PROFILE_FEATURES`)."""
    outside = ~in_day_rows(version_of_width(params[0].shape[0]), profile)
    return not (np.any(params[0][outside]) or np.any(params[4][outside]))


def predict(params: Params, x: F32) -> F32:
    """``[..., 3H]`` raw outputs (fractions) for features ``[..., F]``."""
    w1, b1, w2, b2, ws = params
    h = np.maximum(x @ w1 + b1, 0.0)
    out: F32 = (h @ w2 + b2 + x @ ws).astype(np.float32)
    return out


def _quantile_of_column(outputs: int) -> F32:
    return np.array([QUANTILES[j % 3] for j in range(outputs)], np.float32)


def group_gradients(params: Params, batch: ZoneDays) -> tuple[list[F32], F32]:
    """Per-zone-day gradients of the mean pinball loss (each ``[B, *param.shape]``) and each group's loss."""
    w1, b1, w2, b2, ws = params
    x = batch.x
    h_pre = np.einsum("bsf,fh->bsh", x, w1) + b1
    h = np.maximum(h_pre, 0.0)
    out = np.einsum("bsh,ho->bso", h, w2) + b2 + np.einsum("bsf,fo->bso", x, ws)
    y = np.repeat(batch.y, 3, axis=2)  # each horizon's target for its three quantiles
    q = _quantile_of_column(out.shape[2])
    valid = ~np.isnan(y)
    yv = np.where(valid, y, 0.0)
    n = np.maximum(valid.sum(axis=(1, 2)), 1).astype(np.float32)[:, None, None]
    below = (yv < out).astype(np.float32)
    loss = (np.where(valid, (yv - out) * (q - below), 0.0) / n).sum(axis=(1, 2))
    dout = np.where(valid, below - q, 0.0).astype(np.float32) / n
    g_w2 = np.einsum("bsh,bso->bho", h, dout)
    g_b2 = dout.sum(axis=1)
    dh = np.einsum("bso,ho->bsh", dout, w2) * (h_pre > 0)
    g_w1 = np.einsum("bsf,bsh->bfh", x, dh)
    g_b1 = dh.sum(axis=1)
    g_ws = np.einsum("bsf,bso->bfo", x, dout)
    return [g_w1, g_b1, g_w2, g_b2, g_ws], loss.astype(np.float32)


@dataclass
class LocalTraining:
    """One round of local training (a gateway's share of a federated round, or central training)."""

    steps: int = 30
    batch_groups: int = 32  # expected zone-days per step (Poisson sampling rate = batch / groups)
    learning_rate: float = 0.003
    clip: float = 1.0  # L2 bound of one zone-day's gradient; inf: no clipping
    noise_multiplier: float = 0.0  # noise std / clip; 0: no privacy
    prox_mu: float = 0.0  # FedProx: pull towards the round's starting point
    cpu_seconds: float | None = None  # stop early when this thread has used this much CPU
    seed: int = 0


@dataclass
class RoundReport:
    steps: int
    sampling_rate: float
    mean_loss: float
    stopped_by_budget: bool


def train_round(params: Params, data: ZoneDays, how: LocalTraining,
                rng: np.random.Generator | None = None, trainable: Params | None = None) -> tuple[Params, RoundReport]:
    """DP-SGD (Adam on the noised, clipped mean gradient) from ``params``; returns new params and a report."""
    rng = rng or np.random.default_rng(how.seed)
    start = [p.copy() for p in params]
    theta = [p.copy() for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    groups = data.groups
    q = min(1.0, how.batch_groups / max(groups, 1))
    expected = max(q * groups, 1.0)
    t0 = time.thread_time()
    losses: list[float] = []
    done = 0
    stopped = False
    for step in range(1, how.steps + 1):
        if how.cpu_seconds is not None and time.thread_time() - t0 > how.cpu_seconds:
            stopped = True
            break
        chosen = np.flatnonzero(rng.random(groups) < q) if q < 1.0 else np.arange(groups)
        grads: list[F32] = [np.zeros_like(p) for p in theta]
        if chosen.size:
            per_group, loss = group_gradients(theta, data.take(chosen))
            if trainable is not None:
                per_group = [g * t for g, t in zip(per_group, trainable, strict=True)]
            losses.append(float(loss.mean()))
            norms = np.sqrt(sum(np.square(g.reshape(g.shape[0], -1)).sum(axis=1) for g in per_group))
            factor = np.minimum(1.0, how.clip / np.maximum(norms, 1e-12)) if np.isfinite(how.clip) else 1.0
            grads = [np.tensordot(np.broadcast_to(factor, (g.shape[0],)), g, axes=1) for g in per_group]
        if how.noise_multiplier > 0:
            sigma = how.noise_multiplier * how.clip
            grads = [g + rng.normal(0.0, sigma, g.shape).astype(np.float32) for g in grads]
            if trainable is not None:
                grads = [g * t for g, t in zip(grads, trainable, strict=True)]
        for i, g in enumerate(grads):
            g = g / expected + how.prox_mu * (theta[i] - start[i])
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            m_hat, v_hat = m[i] / (1 - 0.9**step), v[i] / (1 - 0.999**step)
            theta[i] = (theta[i] - how.learning_rate * m_hat / (np.sqrt(v_hat) + 1e-8)).astype(np.float32)
        done = step
    report = RoundReport(done, q, float(np.mean(losses)) if losses else float("nan"), stopped)
    return theta, report


def fit_central(data: ZoneDays, horizons: Sequence[int], rounds: int, how: LocalTraining, seed: int = 0,
                on_round: Callable[[int, Params], None] | None = None, start: Params | None = None,
                scope: str = "all", in_day: bool = False) -> Params:
    """Many rounds on one data set (a gateway alone, or everything pooled centrally), from ``start``
    (default: :func:`init_params`), training the parameters of ``scope`` (of the in-day columns only
    with ``in_day``)."""
    params = start if start is not None else init_params(horizons, seed=seed, in_day=in_day)
    mask = trainable(horizons, params[0].shape[1], scope, in_day)
    rng = np.random.default_rng(seed + 1)
    for r in range(rounds):
        params, _ = train_round(params, data, how, rng, mask)
        if on_round is not None:
            on_round(r, params)
    return params


def export_onnx(params: Params, horizons: Sequence[int], metadata: Mapping[str, str]) -> bytes:
    """The MLP as ONNX (``features`` -> Gemm -> Relu -> Gemm -> ``forecast``) with the forecast's metadata."""
    from onnx import TensorProto, checker, helper, numpy_helper

    w1, b1, w2, b2, ws = (np.asarray(p, np.float32) for p in params)
    inits = [numpy_helper.from_array(a, name) for a, name in zip((w1, b1, w2, b2, ws), PARAM_NAMES, strict=True)]
    nodes = [
        helper.make_node("Gemm", ["features", "hidden.weight", "hidden.bias"], ["h_pre"]),
        helper.make_node("Relu", ["h_pre"], ["h"]),
        helper.make_node("Gemm", ["h", "out.weight", "out.bias"], ["deep"]),
        helper.make_node("MatMul", ["features", "skip.weight"], ["linear"]),
        helper.make_node("Add", ["deep", "linear"], ["forecast"]),
    ]
    graph = helper.make_graph(
        nodes, "seat_demand_mlp",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, w1.shape[0]])],
        [helper.make_tensor_value_info("forecast", TensorProto.FLOAT, [None, 3 * len(horizons)])],
        initializer=inits,
    )
    model = helper.make_model(graph, producer_name="edge-agent", opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    version = version_of_width(w1.shape[0])
    meta = {
        "feature_version": version, "feature_count": str(w1.shape[0]),
        "horizons_min": ",".join(str(h) for h in horizons), "quantiles": ",".join(str(q) for q in QUANTILES),
        "output_layout": "horizon-major: for each horizon p10,p50,p90; fractions of the zone scale",
        "step_min": str(STEP_MIN), "zone_agnostic": "true", "model_family": "quantile-mlp", **metadata,
    }
    helper.set_model_props(model, meta)
    checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


def params_from_onnx(data: bytes) -> tuple[Params, tuple[int, ...]]:
    """The parameters and horizons of a quantile MLP exported by :func:`export_onnx` (to train on from it).

    Raises ValueError for any other model (a boosted model has no parameters to average).
    """
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # protobuf raises its own DecodeError
        raise ValueError(f"not an ONNX model: {exc}") from None
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get("model_family") != "quantile-mlp" or meta.get("feature_version") not in FEATURE_VERSIONS:
        raise ValueError(f"not a quantile MLP of {' or '.join(FEATURE_VERSIONS)} (family "
                         f"{meta.get('model_family')!r}, features {meta.get('feature_version')!r})")
    arrays = {i.name: numpy_helper.to_array(i).astype(np.float32) for i in model.graph.initializer}
    if set(arrays) != set(PARAM_NAMES):
        raise ValueError(f"parameters {sorted(arrays)} are not {sorted(PARAM_NAMES)}")
    horizons = tuple(int(h) for h in meta["horizons_min"].split(","))
    return [arrays[n] for n in PARAM_NAMES], horizons
