"""A gateway's own model mixed with the federated one: personalisation that spends no privacy budget.

Under differential privacy the federated model is weak on its own (it may read only a zone-day's own
columns, and it is noised), while each gateway's model trained on its own history alone is strong
but sees no other floor. Adaptive personalised federated learning (APFL, Deng et al., 2020) keeps
both on the client and serves a mixture, ``a * local + (1 - a) * federated``, with ``a`` fitted on the
client's own data. Here ``a`` is chosen from a grid on validation days the gateway holds out of
training (its newest days), by the mean absolute error of the p50 forecast there, in people.

Why it is safe: the local model, the validation days and ``a`` never leave the gateway. The mixture
is a function of the federated model (already released under DP: post-processing costs nothing)
and of the gateway's own data, which the federation's guarantee does not cover and need not: the
gateway holds it anyway. So the served model spends no epsilon beyond what the federated rounds
spent, and nothing of it is ever sent.

Why one model: two quantile MLPs of the same feature set blend into one exactly. Predictions
blend linearly, ``a * (relu(x W1 + b1) W2 + b2 + x S) + (1 - a) * (...)``, which is itself a quantile MLP
whose hidden layer is the two hidden layers side by side (:func:`blend`), so the edge serves the
mixture as one ONNX graph through the same model slot and checks as any other model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt

from models.calendar import LibraryCalendar
from models.errors import HistoryError
from models.features import feature_rows, version_of_width
from models.history import STEP_MIN, Observation, resample
from models.quantile_mlp import Params, predict

#: The weights of the local model tried on the validation days (0: the federated model alone).
WEIGHTS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(21))


def blend(local: Params, federated: Params, weight: float) -> Params:
    """One quantile MLP whose raw outputs are ``weight * local + (1 - weight) * federated`` (exactly).

    The hidden layers are put side by side (the local one first), the output layers scaled by each
    model's weight; the output bias and the linear skip path blend directly.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"mixture weight {weight} is not within [0, 1]")
    if local[0].shape[0] != federated[0].shape[0]:
        raise ValueError(f"the two models read different feature sets ({local[0].shape[0]} and "
                         f"{federated[0].shape[0]} columns)")
    if local[2].shape[1] != federated[2].shape[1]:
        raise ValueError("the two models forecast different horizons")
    a, b = np.float32(weight), np.float32(1.0 - weight)
    w1l, b1l, w2l, b2l, wsl = local
    w1f, b1f, w2f, b2f, wsf = federated
    return [np.concatenate([w1l, w1f], axis=1).astype(np.float32),
            np.concatenate([b1l, b1f]).astype(np.float32),
            np.concatenate([a * w2l, b * w2f], axis=0).astype(np.float32),
            (a * b2l + b * b2f).astype(np.float32),
            (a * wsl + b * wsf).astype(np.float32)]


@dataclass(frozen=True)
class Validation:
    """The rows of the validation days: features, the truth at each horizon (people) and each row's scale."""

    x: npt.NDArray[np.float32]  # [N, F]
    truth: npt.NDArray[np.float64]  # [N, H]
    scale: npt.NDArray[np.float64]  # [N]


def validation_rows(history: Mapping[str, Sequence[Observation]], since: datetime, until: datetime,
                    horizons: Sequence[int], calendar: LibraryCalendar | None, version: str) -> Validation:
    """The rows anchored in ``[since, until)`` whose inputs and targets lie before ``until``.

    Counts are scaled as :func:`models.evaluation.evaluate` scales them when a model carries no zone
    scale: by the largest count before ``since`` (at least 1).
    """
    steps = [h // STEP_MIN for h in horizons]
    xs: list[npt.NDArray[np.float32]] = []
    truths: list[npt.NDArray[np.float64]] = []
    scales: list[npt.NDArray[np.float64]] = []
    for obs in history.values():
        kept = [o for o in obs if o[0] < until]
        if len(kept) < 2:
            continue
        grid = resample(kept)
        y = grid.values
        first = grid.index_of(since)
        if grid.time_at(first) < since:
            first += 1
        k = np.arange(max(0, first), y.size - max(steps), dtype=np.int64)
        if k.size == 0:
            continue
        ok = ~np.isnan(y[k])
        for s in steps:
            ok &= ~np.isnan(y[k + s])
        k = k[ok]
        if k.size == 0:
            continue
        scale = max([1.0, *(v for t, v in kept if t < since)])
        xs.append(feature_rows(grid, k, scale, calendar, version))
        truths.append(np.stack([y[k + s] for s in steps], axis=1))
        scales.append(np.full(k.size, scale))
    if not xs:
        raise HistoryError(f"no validation rows between {since.isoformat()} and {until.isoformat()}")
    return Validation(np.concatenate(xs), np.concatenate(truths), np.concatenate(scales))


def _p50_people(raw: npt.NDArray[np.float32], horizons: int, scale: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # What a Forecaster serves: quantiles non-negative and sorted, the middle one times the scale.
    q = np.sort(np.maximum(raw.reshape(raw.shape[0], horizons, 3), 0.0), axis=2)
    return np.asarray(q[:, :, 1], np.float64) * scale[:, None]


def mixture_errors(local: Params, federated: Params, rows: Validation,
                   weights: Sequence[float] = WEIGHTS) -> dict[float, float]:
    """The p50 MAE (people, mean over horizons) of each mixture weight on ``rows``."""
    horizons = rows.truth.shape[1]
    raw_local, raw_fed = predict(local, rows.x), predict(federated, rows.x)
    out: dict[float, float] = {}
    for a in weights:
        raw = (np.float32(a) * raw_local + np.float32(1.0 - a) * raw_fed).astype(np.float32)
        out[float(a)] = float(np.mean(np.abs(_p50_people(raw, horizons, rows.scale) - rows.truth)))
    return out


def choose_weight(local: Params, federated: Params, rows: Validation,
                  weights: Sequence[float] = WEIGHTS) -> tuple[float, dict[float, float]]:
    """The weight of the local model with the smallest validation MAE (ties: the smaller weight), and
    every weight's MAE."""
    if version_of_width(local[0].shape[0]) != version_of_width(federated[0].shape[0]):
        raise ValueError("the two models read different feature sets")
    errors = mixture_errors(local, federated, rows, weights)
    best = min(errors, key=lambda a: (errors[a], a))
    return best, errors


__all__ = ["WEIGHTS", "Validation", "blend", "choose_weight", "mixture_errors", "validation_rows"]
