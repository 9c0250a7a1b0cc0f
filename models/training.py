"""Training the seat-demand model off the gateway (needs the ``train`` extra: scikit-learn, onnx).

For each horizon and each quantile (0.1, 0.5, 0.9) a scikit-learn ``HistGradientBoostingRegressor``
with quantile loss learns the zone's occupancy fraction at ``t + horizon`` from the features at
``t``. By default each ensemble learns the *change* from the count now (``TrainingParams.target``):
trees predict piecewise-constant values, and a level learned directly must be cut finely along the
count now, while a change starts from "no change" (the last value, the best naive forecast an
hour ahead on real data) and spends its splits on what moves the count; the graph adds the count
now back (:mod:`models.onnx_export`). Chosen on validation weeks inside the training part of both
real data sets (docs/model.md). All ``3 * H`` tree ensembles go into ONE ONNX
``TreeEnsembleRegressor`` node with ``3 * H`` targets: input ``features`` float32 ``[N, F]``,
output ``forecast`` float32 ``[N, 3 * H]`` laid out horizon-major ``(h1 p10, h1 p50, h1 p90,
h2 p10, ...)``, as fractions of the zone scale.

The graph is written from the fitted trees directly (:mod:`models.onnx_export`) rather than
through skl2onnx: skl2onnx 1.20's converter for histogram gradient boosting fails under numpy 2
(it passes a Python bool in an integer attribute), and writing the node ourselves also lets the
3H ensembles share one node. ``tests/models`` checks the graph against scikit-learn's predictions.

scikit-learn is imported inside :func:`train` only: importing this module on a gateway is cheap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from models.calendar import LibraryCalendar
from models.errors import HistoryError
from models.features import LAG_LEADS_MIN, LATEST_VERSION, feature_names, feature_rows
from models.history import STEP_MIN, Grid, Observation, resample, sampling_interval_min

QUANTILES = (0.1, 0.5, 0.9)
DEFAULT_HORIZONS = (15, 30, 60)
MAX_HORIZON_MIN = 24 * 60


@dataclass
class TrainingParams:
    """Boosting settings; the defaults suit months of 15-minute data in about a minute per model.

    Chosen with the change target on validation weeks inside the training part of both real data
    sets (docs/model.md): 300 rounds at 0.04 and leaves of at least 100 rows beat 150 at 0.08 with
    40 on every fold (noisy counts want smaller steps and larger leaves).
    """

    max_iter: int = 300
    learning_rate: float = 0.04
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 100
    max_rows: int = 80_000  # newest rows kept per model: bounds time and memory on long histories
    seed: int = 0
    feature_version: str = LATEST_VERSION  # models.features.FEATURE_VERSIONS; written into the model
    target: str = "change"  # TARGETS: learn the change from the count now, or the level itself


#: What the trees learn: ``change`` (the target minus the count now, added back in the graph) or ``level``.
TARGETS: tuple[str, ...] = ("change", "level")
CHANGE_FROM = "now"  # the feature column a ``change`` target is measured from


@dataclass
class TrainedModel:
    """An exported model and what was learned about the data on the way."""

    onnx_bytes: bytes
    metadata: dict[str, str]
    horizons: tuple[int, ...]
    notes: list[str] = field(default_factory=list)


@dataclass
class ZoneData:
    """One zone's grid, scale and its rows (anchor indices), shared by training and evaluation."""

    grid: Grid
    scale: float


def zone_scales(
    history: Mapping[str, Sequence[Observation]], given: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Per-zone scale: the given capacity (seat count) or else the largest count seen (at least 1)."""
    out: dict[str, float] = {}
    for zone, obs in history.items():
        cap = (given or {}).get(zone)
        out[zone] = float(cap) if cap else max(1.0, max((v for _, v in obs), default=1.0))
    return out


def usable_horizons(
    history: Mapping[str, Sequence[Observation]], wanted: Sequence[int]
) -> tuple[tuple[int, ...], list[str]]:
    """Horizons the data supports: multiples of the grid step, not shorter than the sampling interval."""
    notes: list[str] = []
    intervals = [sampling_interval_min(o) for o in history.values()]
    interval = min(intervals) if intervals else math.inf
    keep: list[int] = []
    for h in sorted(set(wanted)):
        if h <= 0 or h % STEP_MIN or h > MAX_HORIZON_MIN:
            raise HistoryError(
                f"horizon {h} min: use a multiple of {STEP_MIN} between {STEP_MIN} and {MAX_HORIZON_MIN}"
            )
        if h < interval - 1e-6:
            notes.append(f"horizon {h} min skipped: the data is sampled every {interval:g} min")
            continue
        if h > LAG_LEADS_MIN[-1]:
            notes.append(f"horizon {h} min: lag columns reach {LAG_LEADS_MIN[-1]} min ahead; expect less skill")
        keep.append(h)
    if not keep:
        raise HistoryError(f"no usable horizon: the data is sampled every {interval:g} min; ask for longer horizons")
    return tuple(keep), notes


def zone_grids(
    history: Mapping[str, Sequence[Observation]], scales: Mapping[str, float], until: datetime | None = None
) -> dict[str, ZoneData]:
    """Each zone's grid over its own span, using only observations before ``until``."""
    out: dict[str, ZoneData] = {}
    for zone, obs in history.items():
        kept = [o for o in obs if until is None or o[0] < until]
        if len(kept) >= 2:
            out[zone] = ZoneData(resample(kept), scales[zone])
    return out


def training_rows(
    zones: Mapping[str, ZoneData], horizons: Sequence[int], calendar: LibraryCalendar | None,
    version: str = LATEST_VERSION,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Features ``X``, targets ``Y`` (fractions, NaN where unknown) and each row's zone scale."""
    xs: list[npt.NDArray[np.float32]] = []
    ys: list[npt.NDArray[np.float64]] = []
    ss: list[npt.NDArray[np.float64]] = []
    for data in zones.values():
        n = data.grid.values.size
        at = np.arange(n, dtype=np.int64)
        y = data.grid.values / data.scale
        targets = np.full((n, len(horizons)), np.nan)
        for j, h in enumerate(horizons):
            steps = h // STEP_MIN
            targets[: max(0, n - steps), j] = y[steps:]
        keep = ~np.all(np.isnan(targets), axis=1)
        xs.append(feature_rows(data.grid, at[keep], data.scale, calendar, version))
        ys.append(targets[keep])
        ss.append(np.full(int(keep.sum()), data.scale))
    if not xs:
        return np.zeros((0, len(feature_names(version))), np.float32), np.zeros((0, len(horizons))), np.zeros(0)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ss)


def train(
    history: Mapping[str, Sequence[Observation]],
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    calendar: LibraryCalendar | None = None,
    until: datetime | None = None,
    capacities: Mapping[str, float] | None = None,
    params: TrainingParams | None = None,
) -> TrainedModel:
    """Fit the quantile ensembles on rows before ``until`` and export them as one ONNX graph.

    Rows of all zones are pooled and no column names a zone, so the model is zone-agnostic: a zone
    it never saw is forecast from its own history and scale.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor  # the train extra, never on a gateway
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # ships with scikit-learn

    # One OpenMP thread: on a small shared machine, OpenMP's spinning workers slow boosting down
    # by an order of magnitude as soon as another process wants the cores.
    with threadpool_limits(limits=1):
        return _train(HistGradientBoostingRegressor, history, horizons, calendar, until, capacities, params)


def _train(
    regressor: Any,
    history: Mapping[str, Sequence[Observation]],
    horizons: Sequence[int],
    calendar: LibraryCalendar | None,
    until: datetime | None,
    capacities: Mapping[str, float] | None,
    params: TrainingParams | None,
) -> TrainedModel:

    from models.onnx_export import export_ensembles

    p = params or TrainingParams()
    if p.target not in TARGETS:
        raise ValueError(f"unknown training target {p.target!r}; use one of {', '.join(TARGETS)}")
    use, notes = usable_horizons(history, horizons)
    scales = zone_scales(history, capacities)
    zones = zone_grids(history, scales, until)
    width = len(feature_names(p.feature_version))
    x, y, row_scale = training_rows(zones, use, calendar, p.feature_version)
    if x.shape[0] < 50:
        raise HistoryError(f"only {x.shape[0]} training rows; give at least a few days of history before --until")
    # A change is measured from the count now; where that is unknown the column is 0 (and its flag
    # set), so the trees learn the level for those rows.
    base_col = feature_names(p.feature_version).index(CHANGE_FROM) if p.target == "change" else None
    base = x[:, base_col].astype(np.float64) if base_col is not None else np.zeros(x.shape[0])
    rng = np.random.default_rng(p.seed)
    ensembles: list[Any] = []
    metrics: dict[str, dict[str, float]] = {}
    for j, h in enumerate(use):
        ok = np.flatnonzero(~np.isnan(y[:, j]))[-p.max_rows:]
        xh, yh = x[ok], y[ok, j]
        # Counts are integers and a closed library is exactly 0 for hours: with that many ties
        # the pinball-loss boosting stalls (the median residual of a leaf is 0). Spreading each
        # count uniformly over +-0.5 person breaks the ties without moving any quantile by more
        # than half a person.
        yj = yh - base[ok] + rng.uniform(-0.5, 0.5, yh.size) / row_scale[ok]
        preds: dict[float, npt.NDArray[np.float64]] = {}
        for q in QUANTILES:
            model = regressor(
                loss="quantile", quantile=q, max_iter=p.max_iter, learning_rate=p.learning_rate,
                max_leaf_nodes=p.max_leaf_nodes, min_samples_leaf=p.min_samples_leaf,
                early_stopping=False, random_state=p.seed,
            )
            model.fit(xh, yj)
            ensembles.append(model)
            preds[q] = model.predict(xh) + base[ok]
        metrics[str(h)] = {
            "rows": float(len(ok)),
            "mae_fraction_in_sample": round(float(np.mean(np.abs(preds[0.5] - yh))), 5),
            "coverage_p10_p90_in_sample": round(float(np.mean((yh >= preds[0.1]) & (yh <= preds[0.9]))), 3),
        }
    first = min(d.grid.start for d in zones.values())
    last = max(d.grid.time_at(d.grid.values.size - 1) for d in zones.values())
    metadata = {
        "feature_version": p.feature_version,
        "feature_count": str(width),
        "horizons_min": ",".join(str(h) for h in use),
        "quantiles": ",".join(str(q) for q in QUANTILES),
        "output_layout": "horizon-major: for each horizon p10,p50,p90; fractions of the zone scale",
        "step_min": str(STEP_MIN),
        "zones": ",".join(sorted(zones)),
        "zone_scale": _json({z: zones[z].scale for z in sorted(zones)}),
        "zone_agnostic": "true",
        "training_span": f"{first.isoformat()}/{last.isoformat()}",
        "metrics": _json(metrics),
        "target": p.target if base_col is None else f"{p.target} from {CHANGE_FROM}",
    }
    added = None if base_col is None else [base_col] * len(ensembles)
    onnx_bytes = export_ensembles(ensembles, width, metadata, added)
    return TrainedModel(onnx_bytes=onnx_bytes, metadata=metadata, horizons=use, notes=notes)


def _json(value: object) -> str:
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"))
