"""The gateway's own forecast model, kept on the gateway and mixed with each delivered federated model.

Under DP the federated model alone is weak (it reads only a zone-day's own columns, and it is
noised), and a gateway with months of history trains a strong model of its own floor; the
mixture (:mod:`models.mixture`, APFL-style) takes from each what the gateway's own recent days say
it is worth. With ``[federation] local_steps > 0`` a gateway, after a session that delivered a model:

1. trains its own model from the public start (``models/federation_start.onnx``) on its history
   before the held-out days, exactly as ``benchmarks.federation_real``'s "alone" trains (rounds of 10
   Adam steps, learning rate 0.003, every parameter, no clipping, no noise), and adapts the delivered
   model on the same days (``adapt_steps``, as :meth:`GatewayTrainer.adapt` does);
2. chooses the weight of its own model on the held-out days (:func:`models.mixture.choose_weight`)
   and goes on only if that mixture beats the delivered model there;
3. trains both again on every day it has, the held-out days too, and serves the blend of the two
   with that weight as one ONNX model (:func:`models.mixture.blend`), unsigned, recorded with
   ``adapted_from`` like an adapted model.

The two local models are kept in memory while the history does not change, so a second delivery
on the same history is mixed without training the gateway's own model again. None of it leaves the
gateway: the Flower client only ever answers with what :meth:`GatewayTrainer.fit` and ``evaluate``
return (the server's model, trained under DP, and named scalars). It spends no privacy budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.features import version_of_width
from models.quantile_mlp import LocalTraining, Params, ZoneDays, train_round, trainable

#: Local steps per Adam round of the gateway's own model (the benchmark's ``--steps``).
ROUND_STEPS = 10


def adaptation(steps: int, cpu_seconds: float | None = None) -> LocalTraining:
    """How a gateway fits a delivered model to its floor (every parameter, a small step, no noise)."""
    return LocalTraining(steps=steps, batch_groups=32, learning_rate=0.001, clip=float("inf"), cpu_seconds=cpu_seconds)


def adapt_params(params: Params, data: ZoneDays, horizons: tuple[int, ...], steps: int,
                 cpu_seconds: float | None = None, seed: int = 0) -> Params:
    """The delivered model fitted to this gateway's zone-days (seeded: its randomness protects nothing)."""
    if steps <= 0:
        return params
    mask = trainable(horizons, params[0].shape[1], "all", version=version_of_width(params[0].shape[0]))
    adapted, _ = train_round(params, data, adaptation(steps, cpu_seconds), np.random.default_rng(seed), mask)
    return adapted


def train_alone(start: Params, data: ZoneDays, horizons: tuple[int, ...], steps: int,
                cpu_seconds: float | None = None, seed: int = 0) -> Params:
    """The gateway's own model: ``steps`` local steps from ``start`` in rounds of :data:`ROUND_STEPS`
    (each round a fresh Adam, as a gateway's rounds in a federation), stopped at ``cpu_seconds``."""
    how = LocalTraining(steps=ROUND_STEPS, batch_groups=32, learning_rate=0.003, clip=float("inf"))
    rng = np.random.default_rng(seed)
    mask = trainable(horizons, start[0].shape[1], "all", version=version_of_width(start[0].shape[0]))
    params = start
    t0 = time.thread_time()
    for _ in range(max(1, steps // ROUND_STEPS)):
        if cpu_seconds is not None and time.thread_time() - t0 > cpu_seconds:
            break
        params, _ = train_round(params, data, how, rng, mask)
    return params


@dataclass
class KeptLocal:
    """The gateway's own model, trained before the held-out days (to choose the weight) and on every day
    (to serve), for one history, horizons, feature set and number of steps."""

    key: tuple[Any, ...]
    before: Params
    every: Params


@dataclass
class Mixture:
    """What the gateway serves: ``weight * local + (1 - weight) * federated`` (the adapted delivered model)."""

    local: Params
    federated: Params
    weight: float
    errors: dict[float, float] = field(default_factory=dict)  # held-out p50 MAE of each weight tried
    mae_delivered: float = float("nan")  # held-out p50 MAE of the delivered model itself


__all__ = ["ROUND_STEPS", "KeptLocal", "Mixture", "adapt_params", "adaptation", "train_alone"]
