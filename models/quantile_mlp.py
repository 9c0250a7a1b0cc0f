"""A small quantile MLP: the forecast model that federates, with DP-SGD over zone-days.

Why this family for federated training (docs/model.md says more): FedAvg averages parameters, which
is meaningful for a fixed differentiable architecture trained from one shared initialisation, and
not for tree ensembles (each gateway's trees split on different thresholds). Gradients also make
differential privacy simple and well understood: DP-SGD clips each privacy unit's gradient and
adds Gaussian noise, and its cost is accounted exactly. The model is one hidden layer (ReLU) from
the shared features (:mod:`models.features`) to ``3 * H`` outputs, horizon-major
``(p10, p50, p90)`` fractions of the zone scale, trained with the pinball loss; it exports to
ONNX as two ``Gemm`` and a ``Relu`` with the same input, output and metadata as the boosted model,
so a gateway's :class:`~models.inference.Forecaster` loads either.

Privacy unit: one zone-day (the rows whose anchor lies in one zone's calendar day). Each step
samples zone-days with probability ``q`` (Poisson), averages the pinball-loss gradient over each
zone-day's rows, clips it to L2 norm ``clip``, sums, adds N(0, (noise_multiplier * clip)^2) and
divides by the expected batch. :mod:`models.privacy` accounts the steps.

numpy only: a gateway that joins a federation trains with what it already has.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from models.calendar import LibraryCalendar
from models.features import DAY_STEPS, FEATURE_NAMES, FEATURE_VERSION, feature_rows
from models.history import STEP_MIN, Observation
from models.training import QUANTILES, zone_grids, zone_scales

Params = list[npt.NDArray[np.float32]]
F32 = npt.NDArray[np.float32]
PARAM_NAMES = ("hidden.weight", "hidden.bias", "out.weight", "out.bias")


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


def zone_days(
    history: Mapping[str, Sequence[Observation]],
    horizons: Sequence[int],
    calendar: LibraryCalendar | None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    capacities: Mapping[str, float] | None = None,
    max_groups: int | None = None,
) -> ZoneDays:
    """Group each zone's anchors ``since <= t < until`` by day (targets may lie after ``until`` only if
    the data has them: pass history cut at ``until`` to keep them out). Keeps the newest ``max_groups``."""
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
        times = [grid.time_at(int(i)) for i in (0, n - 1)]
        lo = 0 if since is None or since <= times[0] else max(0, grid.index_of(since))
        hi = n if until is None or until > times[1] else max(0, grid.index_of(until))
        feats = feature_rows(grid, k[lo:hi], data.scale, calendar)
        for d in np.unique(day[lo:hi]).tolist():
            rows = np.flatnonzero(day[lo:hi] == d)
            if np.all(np.isnan(targets[lo + rows])):
                continue
            x = np.zeros((DAY_STEPS, len(FEATURE_NAMES)), np.float32)
            y = np.full((DAY_STEPS, len(horizons)), np.nan, np.float32)
            x[slot[lo + rows]] = feats[rows]
            y[slot[lo + rows]] = targets[lo + rows]
            xs.append(x)
            ys.append(y)
            ss.append(data.scale)
            days.append((zone, int(d)))
    if not xs:
        return ZoneDays(np.zeros((0, DAY_STEPS, len(FEATURE_NAMES)), np.float32),
                        np.zeros((0, DAY_STEPS, len(horizons)), np.float32), np.zeros(0, np.float32))
    out = ZoneDays(np.stack(xs), np.stack(ys), np.asarray(ss, np.float32), days)
    if max_groups is not None and out.groups > max_groups:
        out = out.take(np.arange(out.groups - max_groups, out.groups))
    return out


def bytes_per_group(horizons: int) -> int:
    """Memory of one zone-day in :class:`ZoneDays` plus its activations in a step (for the budget)."""
    return DAY_STEPS * (len(FEATURE_NAMES) + horizons) * 4 * 3


def init_params(horizons: int, hidden: int = 32, seed: int = 0) -> Params:
    """He-initialised weights: every gateway of a federation starts from the server's copy of these."""
    rng = np.random.default_rng(seed)
    f, o = len(FEATURE_NAMES), 3 * horizons
    return [
        (rng.standard_normal((f, hidden)) * np.sqrt(2.0 / f)).astype(np.float32),
        np.zeros(hidden, np.float32),
        (rng.standard_normal((hidden, o)) * np.sqrt(1.0 / hidden)).astype(np.float32),
        np.full(o, 0.1, np.float32),
    ]


def predict(params: Params, x: F32) -> F32:
    """``[..., 3H]`` raw outputs (fractions) for features ``[..., F]``."""
    w1, b1, w2, b2 = params
    h = np.maximum(x @ w1 + b1, 0.0)
    out: F32 = (h @ w2 + b2).astype(np.float32)
    return out


def _quantile_of_column(outputs: int) -> F32:
    return np.array([QUANTILES[j % 3] for j in range(outputs)], np.float32)


def group_gradients(params: Params, batch: ZoneDays) -> tuple[list[F32], F32]:
    """Per-zone-day gradients of the mean pinball loss (each ``[B, *param.shape]``) and each group's loss."""
    w1, b1, w2, b2 = params
    x = batch.x
    h_pre = np.einsum("bsf,fh->bsh", x, w1) + b1
    h = np.maximum(h_pre, 0.0)
    out = np.einsum("bsh,ho->bso", h, w2) + b2
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
    return [g_w1, g_b1, g_w2, g_b2], loss.astype(np.float32)


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
                rng: np.random.Generator | None = None) -> tuple[Params, RoundReport]:
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
            losses.append(float(loss.mean()))
            norms = np.sqrt(sum(np.square(g.reshape(g.shape[0], -1)).sum(axis=1) for g in per_group))
            factor = np.minimum(1.0, how.clip / np.maximum(norms, 1e-12)) if np.isfinite(how.clip) else 1.0
            grads = [np.tensordot(np.broadcast_to(factor, (g.shape[0],)), g, axes=1) for g in per_group]
        if how.noise_multiplier > 0:
            sigma = how.noise_multiplier * how.clip
            grads = [g + rng.normal(0.0, sigma, g.shape).astype(np.float32) for g in grads]
        for i, g in enumerate(grads):
            g = g / expected + how.prox_mu * (theta[i] - start[i])
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            m_hat, v_hat = m[i] / (1 - 0.9**step), v[i] / (1 - 0.999**step)
            theta[i] = (theta[i] - how.learning_rate * m_hat / (np.sqrt(v_hat) + 1e-8)).astype(np.float32)
        done = step
    report = RoundReport(done, q, float(np.mean(losses)) if losses else float("nan"), stopped)
    return theta, report


def fit_central(data: ZoneDays, horizons: int, rounds: int, how: LocalTraining, seed: int = 0,
                on_round: Callable[[int, Params], None] | None = None) -> Params:
    """Many rounds on one data set: a gateway alone, or everything pooled centrally."""
    params = init_params(horizons, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for r in range(rounds):
        params, _ = train_round(params, data, how, rng)
        if on_round is not None:
            on_round(r, params)
    return params


def export_onnx(params: Params, horizons: Sequence[int], metadata: Mapping[str, str]) -> bytes:
    """The MLP as ONNX (``features`` -> Gemm -> Relu -> Gemm -> ``forecast``) with the forecast's metadata."""
    from onnx import TensorProto, checker, helper, numpy_helper

    w1, b1, w2, b2 = (np.asarray(p, np.float32) for p in params)
    inits = [numpy_helper.from_array(a, name) for a, name in zip((w1, b1, w2, b2), PARAM_NAMES, strict=True)]
    nodes = [
        helper.make_node("Gemm", ["features", "hidden.weight", "hidden.bias"], ["h_pre"]),
        helper.make_node("Relu", ["h_pre"], ["h"]),
        helper.make_node("Gemm", ["h", "out.weight", "out.bias"], ["forecast"]),
    ]
    graph = helper.make_graph(
        nodes, "seat_demand_mlp",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, w1.shape[0]])],
        [helper.make_tensor_value_info("forecast", TensorProto.FLOAT, [None, 3 * len(horizons)])],
        initializer=inits,
    )
    model = helper.make_model(graph, producer_name="edge-agent", opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {
        "feature_version": FEATURE_VERSION, "feature_count": str(len(FEATURE_NAMES)),
        "horizons_min": ",".join(str(h) for h in horizons), "quantiles": ",".join(str(q) for q in QUANTILES),
        "output_layout": "horizon-major: for each horizon p10,p50,p90; fractions of the zone scale",
        "step_min": str(STEP_MIN), "zone_agnostic": "true", "model_family": "quantile-mlp", **metadata,
    }
    helper.set_model_props(model, meta)
    checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data
