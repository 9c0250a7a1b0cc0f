"""The privacy unit is one zone-day of counts: under DP, no other zone-day's clipped gradient depends on it.

DP-SGD bounds what one *group* adds to a step (clip, then noise). That is a bound on one zone-day of
counts only if those counts reach no other group: the lag and profile columns read up to four weeks
back, so the model trained under DP reads only the in-day columns, on rows whose inputs and target
stay within their day. These tests remove or change one zone-day and compare every other group's
gradient; the same comparison on the full columns shows what the restriction prevents.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.federation.trainer import GatewayTrainer
from edge_agent.forecast_config import FederationConf
from models.history import Observation
from models.quantile_mlp import (
    Params,
    ZoneDays,
    group_gradients,
    in_day_params,
    init_params,
    reads_in_day_only,
    trainable,
    zone_days,
)
from simulator.demand import generate_history
from tests.federation.conftest import START, floor

HORIZONS = (15, 30, 60)
SEATS = 12.0


@pytest.fixture(scope="module")
def history() -> dict[str, list[Observation]]:
    cfg = floor("u", ["group"], int(SEATS))
    out: dict[str, list[Observation]] = {}
    for t, zone, count in generate_history(cfg, START, 35, seed=9):
        out.setdefault(zone, []).append((t, float(count)))
    return out


def _params(seed: int) -> Params:
    """Parameters with every weight non-zero, as after some training."""
    rng = np.random.default_rng(seed)
    return [(p + rng.normal(0.0, 0.05, p.shape)).astype(np.float32) for p in init_params(HORIZONS, seed=seed)]


def _gradients(params: Params, data: ZoneDays, in_day: bool) -> dict[tuple[str, int], np.ndarray[Any, Any]]:
    mask = trainable(HORIZONS, params[0].shape[1], "all", in_day)
    grads, _ = group_gradients(params, data)
    flat = np.concatenate([(g * m).reshape(g.shape[0], -1) for g, m in zip(grads, mask, strict=True)], axis=1)
    return {day: flat[i] for i, day in enumerate(data.days)}


def _change_day(history: dict[str, list[Observation]], day: datetime, how: str) -> dict[str, list[Observation]]:
    end = day + timedelta(days=1)
    out: dict[str, list[Observation]] = {}
    for zone, obs in history.items():
        if how == "removed":
            out[zone] = [(t, v) for t, v in obs if not day <= t < end]
        else:
            out[zone] = [(t, (SEATS - v) if day <= t < end else v) for t, v in obs]
    return out


@pytest.mark.parametrize("how", ["removed", "changed"])
def test_under_dp_a_zone_days_counts_reach_only_its_own_gradient(history: dict[str, list[Observation]],
                                                                 how: str) -> None:
    day = datetime.combine(START + timedelta(days=20), datetime.min.time())
    other = _change_day(history, day, how)
    caps = {z: SEATS for z in history}
    params = in_day_params(_params(1))
    before = _gradients(params, zone_days(history, HORIZONS, None, capacities=caps, in_day=True), in_day=True)
    after = _gradients(params, zone_days(other, HORIZONS, None, capacities=caps, in_day=True), in_day=True)
    unit = next(d for d in before if d[1] == (day.date() - START).days)
    assert (unit in after) == (how == "changed")
    if how == "changed":
        assert not np.allclose(before[unit], after[unit])  # the unit's own gradient did change
    for d in before.keys() - {unit}:
        np.testing.assert_array_equal(before[d], after[d], err_msg=f"zone-day {d} depends on {unit}")

    # Without the restriction, the same change moves the gradients of the days after it.
    full = _params(1)
    wide_before = _gradients(full, zone_days(history, HORIZONS, None, capacities=caps), in_day=False)
    wide_after = _gradients(full, zone_days(other, HORIZONS, None, capacities=caps), in_day=False)
    moved = [d for d in wide_before.keys() - {unit} if not np.array_equal(wide_before[d], wide_after.get(d))]
    assert len(moved) >= 7, moved


def test_in_day_rows_read_and_predict_within_their_day(history: dict[str, list[Observation]]) -> None:
    data = zone_days(history, HORIZONS, None, capacities={z: SEATS for z in history}, in_day=True)
    known = ~np.isnan(data.y)
    slots = np.arange(96)[None, :, None]
    assert not known[:, :4].any()  # the first hour: trend_60 would read the day before
    for j, h in enumerate(HORIZONS):
        assert not known[:, :, j][(slots[..., 0] + h // 15 >= 96).repeat(data.groups, 0)].any()
    assert known.sum() > 0.8 * known.size * (1 - 4 / 96 - 4 / 96)


def test_a_private_gateway_trains_only_in_day_weights_and_public_scales(tmp_path: Path,
                                                                       history: dict[str, list[Observation]]) -> None:
    zone = next(iter(history))
    both = {zone: history[zone], "unseated": history[zone]}
    conf = FederationConf.model_validate({"holdout_days": 7, "profile_share": 0.3, "privacy": {"epsilon_total": 100.0}})
    trainer = GatewayTrainer(conf, lambda: both, lambda: None, tmp_path, capacities={zone: SEATS})
    params, weight, metrics = trainer.fit(_params(2), {"horizons": "15,30,60", "steps": 5, "scope": "all"})
    assert weight == 1 and metrics["epsilon_total"] > 0
    # whatever the server sent, nothing but the in-day columns and the released profile's was trained or kept
    assert reads_in_day_only(params, profile=True) and not reads_in_day_only(params)
    assert trainer.releases is not None and set(trainer.releases) == {zone}  # released from seated zones only
    assert {z for z, _ in trainer.data(HORIZONS, private=True).train.days} == {zone}  # "unseated": no public scale

    public = GatewayTrainer(conf, lambda: both, lambda: None, tmp_path / "plain", capacities={zone: SEATS},
                            noise_multiplier=0.0)
    params, _, _ = public.fit(_params(2), {"horizons": "15,30,60", "steps": 5, "scope": "all"})
    assert not reads_in_day_only(params)
    assert {z for z, _ in public.data(HORIZONS).train.days} == {zone, "unseated"}
