"""The gateway's own trainer does the released-profile method: its first DP round releases its zones'
profiles from its own history with ``[federation] profile_share`` of the budget, enters that release in
the same privacy ledger as its DP-SGD rounds (the total epsilon includes it; both fit the budget or
neither is spent), keeps it on the gateway, and trains on rows whose typed-profile columns read it."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_agent.federation import trainer as trainer_module
from edge_agent.federation.client import run_client
from edge_agent.federation.server import DirectoryPublisher, FederationServer, SessionPlan, starting_point
from edge_agent.federation.trainer import RELEASE_FILE, GatewayTrainer
from edge_agent.forecast_config import FederationConf
from models.features import CARRY_LEADS_MIN, FEATURE_NAMES_V4, V4, feature_names
from models.history import Observation
from models.privacy import epsilon
from models.private_profile import day_kind, release_entry, release_noise
from models.quantile_mlp import PROFILE_FEATURES, ZoneDays, in_day_rows, init_params, reads_in_day_only, widen
from simulator.demand import generate_history
from tests.conftest import EXAMPLE_FLOOR
from tests.federation.conftest import START, floor, gateway_state, history_reader
from tests.federation.test_federated_run import Sent, _recorder, check_scalars
from tests.mosquitto import free_port
from tests.test_config import run_check

HORIZONS = (15, 30, 60)
SEATS = 12.0
ROUND = {"horizons": "15,30,60", "steps": 5, "scope": "all", "batch_groups": 8}


@pytest.fixture(scope="module")
def history() -> dict[str, list[Observation]]:
    cfg = floor("r", ["quiet", "group"], int(SEATS))
    out: dict[str, list[Observation]] = {}
    for t, zone, count in generate_history(cfg, START, 35, seed=5):
        out.setdefault(zone, []).append((t, float(count)))
    return out


def _trainer(state: Path, history: dict[str, list[Observation]], **conf: Any) -> GatewayTrainer:
    doc = {"holdout_days": 7, "profile_share": 0.3, "privacy": {"epsilon_total": 100.0}, **conf}
    return GatewayTrainer(FederationConf.model_validate(doc), lambda: history, lambda: None, state,
                          capacities={z: SEATS for z in history}, noise_multiplier=1.0)


def test_the_first_dp_round_spends_the_release_in_the_gateways_account(tmp_path: Path,
                                                                        history: dict[str, list[Observation]]) -> None:
    trainer = _trainer(tmp_path, history)
    z = release_noise(100.0 * 0.3, 1e-5)  # the default share of the budget
    params, weight, metrics = trainer.fit(widen(init_params(HORIZONS, seed=1), V4), ROUND)
    assert weight == 1 and metrics["refused"] == 0, metrics
    release = release_entry(z)
    assert trainer.ledger.spent[0] == release and trainer.ledger.rounds == 1
    dp_sgd = trainer.ledger.spent[1:]
    # The total the gateway reports and bounds is the release's and DP-SGD's together.
    assert metrics["epsilon_total"] == pytest.approx(epsilon([release, *dp_sgd], 1e-5))
    assert metrics["epsilon_total"] > epsilon(dp_sgd, 1e-5) + 1.0
    assert metrics["epsilon_release"] == pytest.approx(epsilon([release], 1e-5))
    assert metrics["epsilon_round"] == pytest.approx(epsilon(dp_sgd, 1e-5))
    assert (tmp_path / RELEASE_FILE).exists()
    # Drawn once: the next round (and a restarted gateway) reuses it and spends DP-SGD only.
    trainer.fit(params, ROUND)
    restarted = _trainer(tmp_path, history)
    restarted.fit(params, ROUND)
    assert [e for e in restarted.ledger.spent if e == release] == [release] and restarted.ledger.rounds == 3
    assert restarted.releases is not None and trainer.releases is not None
    assert all(np.array_equal(restarted.releases[zone].mean, r.mean, equal_nan=True)
               for zone, r in trainer.releases.items())
    # A ledger that was reset forgets the release: it is drawn (and spent) again, never used unaccounted.
    (tmp_path / trainer_module.LEDGER_FILE).unlink()
    assert _trainer(tmp_path, history).releases is None


def test_the_rows_it_trains_on_read_the_released_profile(tmp_path: Path, history: dict[str, list[Observation]],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    trained: list[ZoneDays] = []
    real = trainer_module.train_round

    def recording(params: Any, data: ZoneDays, *args: Any) -> Any:
        trained.append(data)
        return real(params, data, *args)

    monkeypatch.setattr(trainer_module, "train_round", recording)
    trainer = _trainer(tmp_path, history)
    params, weight, _ = trainer.fit(widen(init_params(HORIZONS, seed=1), V4), ROUND)
    assert weight == 1 and len(trained) == 1 and trainer.releases is not None
    # The model it sends reads the in-day columns and the released profile's, nothing else.
    assert reads_in_day_only(params, profile=True) and not reads_in_day_only(params)
    x, names = trained[0].x, FEATURE_NAMES_V4
    col = {n: i for i, n in enumerate(names)}
    checked = 0
    for g, (zone, day) in enumerate(trained[0].days):
        mean = trainer.releases[zone].mean
        kind = day_kind(START + timedelta(days=day), None)
        for slot in range(4, 90, 7):  # anchors whose targets stay in the day
            row = x[g, slot]
            if (np.all(np.isnan(trained[0].y[g, slot])) or row[col["now_missing"]]
                    or np.isnan(mean[kind, slot]) or np.isnan(mean[kind, slot + 4])):
                continue
            assert row[col["typed_0"]] == pytest.approx(mean[kind, slot], abs=1e-6)
            assert row[col["now_vs_typed"]] == pytest.approx(row[col["now"]] - mean[kind, slot], abs=1e-5)
            lead = 60
            assert lead in CARRY_LEADS_MIN
            later = mean[kind, slot + lead // 15]
            assert row[col[f"carry_typed_{lead}"]] == pytest.approx(row[col["now"]] + later - mean[kind, slot],
                                                                   abs=1e-5)
            checked += 1
    assert checked > 100


def test_release_and_round_fit_the_budget_together_or_nothing_is_spent(
        tmp_path: Path, history: dict[str, list[Observation]]) -> None:
    sent = widen(init_params(HORIZONS, seed=1), V4)
    # epsilon 1.5 at a share of 0.3: the release alone takes 0.45, DP-SGD's round needs more than the rest.
    trainer = _trainer(tmp_path, history, privacy={"epsilon_total": 1.5})
    back, weight, metrics = trainer.fit(sent, {**ROUND, "steps": 50})
    assert weight == 0 and metrics["refused"] == 1
    assert trainer.ledger.spent == [] and trainer.releases is None and not (tmp_path / RELEASE_FILE).exists()
    assert all(np.array_equal(a, b) for a, b in zip(back, sent, strict=True))
    # profile_share 0, the default: no release; the DP round reads the in-day columns only, as before.
    assert FederationConf().profile_share == 0.0
    plain = _trainer(tmp_path / "plain", history, profile_share=0.0)
    params, weight, metrics = plain.fit(sent, ROUND)
    assert weight == 1 and reads_in_day_only(params) and "epsilon_release" not in metrics
    assert all(q < 1.0 for q, _, _ in plain.ledger.spent) and not (tmp_path / "plain" / RELEASE_FILE).exists()


def test_a_profile_session_starts_from_the_residual_over_the_released_profile(tmp_path: Path) -> None:
    params, origin = starting_point(DirectoryPublisher(tmp_path), HORIZONS, inputs="profile")
    assert origin == "federation_start_in_day.onnx, on the released profile"
    names = feature_names(V4)
    assert params[0].shape[0] == len(names) and reads_in_day_only(params, profile=True)
    skip = params[4]
    for j, h in enumerate(HORIZONS):
        assert np.all(skip[names.index(f"carry_typed_{h}"), 3 * j: 3 * j + 3] == 1.0)
    assert not np.any(skip[~in_day_rows(V4, profile=True)]) and set(PROFILE_FEATURES) <= set(names)


@pytest.mark.parametrize(("value", "message"), [
    (1.5, "profile_share must be from 0 (no released profile) to 0.9, not 1.5"),
    (-0.1, "profile_share must be from 0 (no released profile) to 0.9, not -0.1"),
    ('"most"', "federation.profile_share: Input should be a valid number"),
])
def test_config_check_names_a_bad_profile_share(tmp_path: Path, value: object, message: str) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(EXAMPLE_FLOOR.read_text(encoding="utf-8") + f"\n[federation]\nprofile_share = {value}\n",
                    encoding="utf-8")
    r = run_check(path)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.slow
def test_a_profile_session_over_flower_sends_only_the_models_parameters_and_named_scalars(tmp_path: Path) -> None:
    port = free_port()
    conf = FederationConf.model_validate({
        "enabled": True, "server": f"127.0.0.1:{port}", "holdout_days": 7, "cpu_seconds_per_round": 60,
        "profile_share": 0.3, "privacy": {"epsilon_total": 100.0, "noise_multiplier": 1.0}})
    cfg = floor("v", ["quiet", "group"], 12)
    state = gateway_state(tmp_path, cfg, 3)
    trainer = GatewayTrainer(conf, history_reader(state), lambda: None, state,
                             capacities={z.id: 12.0 for z in cfg.zones})
    plan = SessionPlan(rounds=1, min_gateways=1, steps=20, batch_groups=16, inputs="profile")
    server = FederationServer(f"127.0.0.1:{port}", plan, DirectoryPublisher(tmp_path / "published")).start()
    sent: list[Sent] = []
    thread = threading.Thread(target=run_client, args=(trainer, conf), kwargs={"mods": [_recorder(sent)]})
    thread.start()
    report = server.wait(timeout_s=120)
    thread.join(60)
    assert not thread.is_alive() and report.start == "federation_start_in_day.onnx, on the released profile"
    assert trainer.releases is not None and trainer.ledger.spent[0][0] == 1.0 and trainer.ledger.rounds == 1
    shapes = [p.shape for p in widen(init_params(HORIZONS), V4)]
    fits = [arrays for arrays, _ in sent if arrays]
    assert len(fits) == 1
    for arrays, scalars in sent:
        check_scalars(scalars)
        if arrays:
            assert [a.shape for a in arrays] == shapes  # a demand-v4 model's parameters, nothing else
            assert reads_in_day_only(arrays, profile=True) and not reads_in_day_only(arrays)
    assert any(k.endswith("/epsilon_release") for _, scalars in sent for k in scalars)
