"""The released profile: under DP, demand-v4's carried typed column reads a Gaussian-mechanism release of
the zone's profile, never the other days' counts; its sensitivity is one zone-day's clip; its epsilon
composes with DP-SGD's in one account."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.features import CARRY_LEADS_MIN, FEATURE_NAMES_V4, V4
from models.history import Observation, resample
from models.privacy import epsilon, noise_for
from models.private_profile import HOURS, day_kind, kind_sums, release_entry, release_profiles
from models.quantile_mlp import (
    Params,
    ZoneDays,
    group_gradients,
    in_day_params,
    init_params,
    reads_in_day_only,
    trainable,
    widen,
    zone_days,
)
from simulator.demand import generate_history
from tests.federation.conftest import START, floor

HORIZONS = (15, 30, 60)
SEATS = 12.0
DAY = datetime.combine(START + timedelta(days=20), datetime.min.time())


@pytest.fixture(scope="module")
def history() -> dict[str, list[Observation]]:
    cfg = floor("p", ["group"], int(SEATS))
    out: dict[str, list[Observation]] = {}
    for t, zone, count in generate_history(cfg, START, 35, seed=4):
        out.setdefault(zone, []).append((t, float(count)))
    return out


def _changed(history: dict[str, list[Observation]], how: str) -> dict[str, list[Observation]]:
    end = DAY + timedelta(days=1)
    if how == "removed":
        return {z: [(t, v) for t, v in obs if not DAY <= t < end] for z, obs in history.items()}
    return {z: [(t, (SEATS - v) if DAY <= t < end else v) for t, v in obs] for z, obs in history.items()}


def test_noise_free_release_is_each_kinds_hourly_mean(history: dict[str, list[Observation]]) -> None:
    zone, obs = next(iter(history.items()))
    released = release_profiles(history, None, clip=100.0, noise_multiplier=0.0, rng=np.random.default_rng(0),
                                capacities={zone: SEATS})[zone]
    grid = resample(obs)
    frac = np.clip(grid.values / SEATS, 0, 1)
    weekday_at_10 = [frac[i] for i in range(frac.size) if not np.isnan(frac[i])
                     and grid.time_at(i).weekday() < 5 and grid.time_at(i).hour == 10]
    # the hour's mean sits at its middle (10:22:30); slots 10:15 and 10:30 straddle it
    assert np.mean(released.mean[0, 41:43]) == pytest.approx(np.mean(weekday_at_10), abs=0.02)
    assert released.days == 35 and released.noise_multiplier == 0.0


def test_one_zone_day_moves_one_kind_by_at_most_the_clip(history: dict[str, list[Observation]]) -> None:
    zone, obs = next(iter(history.items()))
    span = (obs[0][0], obs[-1][0])
    before, n = kind_sums(resample(obs, *span), SEATS, None, clip=1.5)
    for how in ("removed", "changed"):
        after, _ = kind_sums(resample(_changed(history, how)[zone], *span), SEATS, None, clip=1.5)
        moved = np.flatnonzero(np.any(np.abs(after - before) > 1e-12, axis=1))
        assert moved.tolist() == [day_kind(DAY.date(), None)], how
        # add/remove neighbours (what the accountant assumes): at most the clip; a changed day is one
        # removed and one added: at most twice that
        assert 0 < np.linalg.norm(after - before) <= (1.5 if how == "removed" else 3.0) + 1e-9, how
    assert n == 35 and before.shape[1] == 2 * HOURS


def _gradients(params: Params, data: ZoneDays) -> dict[tuple[str, int], np.ndarray[Any, Any]]:
    mask = trainable(HORIZONS, params[0].shape[1], "all", in_day=True, version=V4, profile=True)
    grads, _ = group_gradients(params, data)
    flat = np.concatenate([(g * m).reshape(g.shape[0], -1) for g, m in zip(grads, mask, strict=True)], axis=1)
    return {day: flat[i] for i, day in enumerate(data.days)}


@pytest.mark.parametrize("how", ["removed", "changed"])
def test_given_the_release_a_zone_days_counts_reach_only_its_own_gradient(
        history: dict[str, list[Observation]], how: str) -> None:
    caps = {z: SEATS for z in history}
    release = release_profiles(history, None, clip=2.0, noise_multiplier=1.0, rng=np.random.default_rng(5),
                               capacities=caps)
    rng = np.random.default_rng(1)
    params = in_day_params([(p + rng.normal(0.0, 0.05, p.shape)).astype(np.float32)
                            for p in widen(init_params(HORIZONS, seed=1), V4)], profile=True)
    assert reads_in_day_only(params, profile=True) and not reads_in_day_only(params)
    rows = [zone_days(h, HORIZONS, None, capacities=caps, in_day=True, version=V4, profiles=release)
            for h in (history, _changed(history, how))]
    before, after = (_gradients(params, r) for r in rows)
    unit = next(d for d in before if d[1] == (DAY.date() - START).days)
    assert (unit in after) == (how == "changed")
    for d in before.keys() - {unit}:
        np.testing.assert_array_equal(before[d], after[d], err_msg=f"zone-day {d} depends on {unit}")
    # the carried typed columns were taken from the release: known, and not what the history's lags give
    col = FEATURE_NAMES_V4.index("carry_typed_60")
    from_history = zone_days(history, HORIZONS, None, capacities=caps, in_day=True, version=V4)
    assert not np.allclose(rows[0].x[:, 40:80, col], from_history.x[:, 40:80, col])
    assert np.mean(rows[0].x[:, 40:80, col + 1] == 0.0) > 0.6  # known wherever the release has the kind
    level = FEATURE_NAMES_V4.index("typed_60")
    day = rows[0].days.index(next(d for d in rows[0].days if (START + timedelta(days=d[1])).weekday() == 2))
    slot = 44  # 11:00 on a Wednesday: its target 12:00 reads the Monday-Friday row of the release
    zone = rows[0].days[day][0]
    assert rows[0].x[day, slot, level] == pytest.approx(release[zone].mean[0, slot + 4], abs=1e-6)


def test_without_a_release_the_carried_column_is_the_count_now(history: dict[str, list[Observation]]) -> None:
    caps = {z: SEATS for z in history}
    data = zone_days(history, HORIZONS, None, capacities=caps, in_day=True, version=V4, profiles={})
    now = data.x[:, :, FEATURE_NAMES_V4.index("now")]
    for lead in CARRY_LEADS_MIN:
        i = FEATURE_NAMES_V4.index(f"carry_typed_{lead}")
        assert np.array_equal(data.x[:, 4:, i], now[:, 4:]) and np.all(data.x[:, 4:, i + 1] == 1.0)
    assert np.all(data.x[:, 4:, FEATURE_NAMES_V4.index("typed_60_missing")] == 1.0)


def test_the_release_and_dp_sgd_are_accounted_together() -> None:
    z_profile = noise_for(0.9, 1.0, 1, 1e-5)
    prior = [release_entry(z_profile)]
    assert epsilon(prior, 1e-5) == pytest.approx(0.9, abs=0.01)
    z = noise_for(3.0, 0.1, 1000, 1e-5, prior)
    total = epsilon([*prior, (0.1, z, 1000)], 1e-5)
    assert 2.9 < total <= 3.0
    assert z > noise_for(3.0, 0.1, 1000, 1e-5)  # the release's share leaves DP-SGD less: more noise


def test_a_gateway_trains_a_demand_v4_model_on_its_own_v4_rows(tmp_path: Path,
                                                                 history: dict[str, list[Observation]]) -> None:
    from edge_agent.federation.trainer import GatewayTrainer
    from edge_agent.forecast_config import FederationConf

    conf = FederationConf.model_validate({"holdout_days": 7, "profile_share": 0.3,
                                          "privacy": {"epsilon_total": 100.0}})
    caps = {z: SEATS for z in history}
    sent = widen(init_params(HORIZONS, seed=2), V4)
    for noise in (1.0, 0.0):  # a private gateway and one without DP
        trainer = GatewayTrainer(conf, lambda: history, lambda: None, tmp_path / str(noise), capacities=caps,
                                 noise_multiplier=noise)
        params, weight, metrics = trainer.fit(sent, {"horizons": "15,30,60", "steps": 5, "scope": "all"})
        assert weight == 1 and params[0].shape[0] == len(FEATURE_NAMES_V4), metrics
        assert trainer.data(HORIZONS, noise > 0, V4).train.x.shape[2] == len(FEATURE_NAMES_V4)
        # under DP: the in-day columns and those of the profile it released (profile_share 0.3)
        assert reads_in_day_only(params, profile=True) == (noise > 0) and not reads_in_day_only(params)
    narrow, weight, _ = trainer.fit([p[:7] if i in (0, 4) else p for i, p in enumerate(sent)],
                                    {"horizons": "15,30,60", "steps": 5})
    assert weight == 0 and narrow[0].shape[0] == 7  # a width of no feature set: refused, returned as sent
