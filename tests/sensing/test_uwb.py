"""UWB solvers, tracking and pseudonyms on seeded simulated ranges at the example floor's anchors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_agent.config import SiteConfig
from edge_agent.sensing.tags import TagTrack, pseudonymise
from edge_agent.sensing.uwb import Fix, solve

TAG_Z = 1.0


def anchors(cfg: SiteConfig) -> dict[str, tuple[float, float, float]]:
    return {a.id: (a.x, a.y, a.z) for a in cfg.anchors}


def simulate(
    cfg: SiteConfig, rng: np.random.Generator, n: int, nlos: bool
) -> list[tuple[np.ndarray, dict[str, float]]]:
    """Tags uniformly on the floor; LOS noise sigma 5 cm; NLOS adds +0.2..1 m (heavy tail) to 1-2 anchors."""
    anc = anchors(cfg)
    out = []
    for _ in range(n):
        p = np.array([rng.uniform(0.5, 38.5), rng.uniform(0.5, 23.5), TAG_Z])
        r = {a: float(np.linalg.norm(p - np.array(xyz)) + rng.normal(0.0, 0.05)) for a, xyz in anc.items()}
        if nlos:
            for a in rng.choice(sorted(anc), size=int(rng.integers(1, 3)), replace=False):
                r[str(a)] += rng.uniform(0.2, 1.0) + (rng.pareto(2.5) * 0.3 if rng.random() < 0.3 else 0.0)
        out.append((p, r))
    return out


def rmse(cases: list[tuple[np.ndarray, dict[str, float]]], cfg: SiteConfig, robust: bool) -> float:
    errs = []
    for p, r in cases:
        fix = solve(r, anchors(cfg), TAG_Z, robust=robust)
        assert fix is not None
        errs.append((fix.x - p[0]) ** 2 + (fix.y - p[1]) ** 2)
    return math.sqrt(float(np.mean(errs)))


def test_los_rmse_within_ten_centimetres(floor_config: SiteConfig) -> None:
    cases = simulate(floor_config, np.random.default_rng(21), 200, nlos=False)
    assert rmse(cases, floor_config, robust=True) <= 0.10
    assert rmse(cases, floor_config, robust=False) <= 0.10


def test_robust_beats_plain_least_squares_under_nlos(floor_config: SiteConfig) -> None:
    cases = simulate(floor_config, np.random.default_rng(22), 200, nlos=True)
    robust, plain = rmse(cases, floor_config, robust=True), rmse(cases, floor_config, robust=False)
    assert robust < plain
    assert robust < 0.5 * plain


def test_nlos_anchor_is_rejected(floor_config: SiteConfig) -> None:
    anc = anchors(floor_config)
    p = np.array([10.0, 8.0, TAG_Z])
    r = {a: float(np.linalg.norm(p - np.array(xyz))) for a, xyz in anc.items()}
    r["A3"] += 0.9
    fix = solve(r, anc, TAG_Z)
    assert fix is not None
    assert "A3" in fix.rejected and "A3" not in fix.anchors_used
    assert math.hypot(fix.x - 10.0, fix.y - 8.0) < 0.02


def test_too_few_anchors_gives_no_fix(floor_config: SiteConfig) -> None:
    anc = anchors(floor_config)
    assert solve({"A1": 5.0, "A2": 9.0}, anc, TAG_Z) is None
    assert solve({"A1": 5.0, "A2": 9.0}, anc, TAG_Z, robust=False) is None
    assert solve({"A1": 5.0, "A2": 9.0, "A3": -1.0, "nope": 3.0}, anc, TAG_Z) is None
    assert solve({"A1": 5.0, "A2": 9.0, "A3": 12.0}, anc, None) is None  # 3D needs four


def test_bias_is_subtracted(floor_config: SiteConfig) -> None:
    anc = anchors(floor_config)
    p = np.array([20.0, 12.0, TAG_Z])
    r = {a: float(np.linalg.norm(p - np.array(xyz))) + 0.3 for a, xyz in anc.items()}
    fix = solve(r, anc, TAG_Z, bias_m={a: 0.3 for a in anc}, robust=False)
    assert isinstance(fix, Fix)
    assert math.hypot(fix.x - 20.0, fix.y - 12.0) < 1e-6
    assert fix.residual_m < 1e-6


def test_three_d_fix_with_anchors_at_varied_heights() -> None:
    anc = {"a": (0.0, 0.0, 0.5), "b": (10.0, 0.0, 3.0), "c": (10.0, 10.0, 0.5), "d": (0.0, 10.0, 3.0), "e": (5, 5, 3.5)}
    p = np.array([3.0, 6.0, 1.4])
    r = {k: float(np.linalg.norm(p - np.array(v))) for k, v in anc.items()}
    for robust in (True, False):
        fix = solve(r, anc, None, robust=robust)
        assert fix is not None
        assert np.allclose([fix.x, fix.y, fix.z], p, atol=1e-3)


def test_track_smooths_and_gates_a_jump() -> None:
    rng = np.random.default_rng(23)
    track = TagTrack()
    accepted = 0
    for k in range(50):  # walking east at 1 m/s, fixes at 10 Hz with 10 cm noise
        t = 0.1 * k
        accepted += track.update(1.0 * t + rng.normal(0, 0.1), 5.0 + rng.normal(0, 0.1), t, 0.1)
    assert accepted >= 48  # the gate lets ordinary noise through
    before = track.rejected
    pos = track.position
    assert pos is not None and abs(pos[0] - 4.9) < 0.15 and abs(pos[1] - 5.0) < 0.15
    assert not track.update(9.0, 5.0, 5.0, 0.1)  # a 4 m multipath jump is rejected
    assert track.rejected == before + 1
    for k in range(4):  # ... but a tag that really moved is re-acquired
        track.update(9.0, 5.0, 5.1 + 0.1 * k, 0.1)
    pos = track.position
    assert pos is not None and abs(pos[0] - 9.0) < 0.2


def test_pseudonyms_are_keyed_stable_and_short() -> None:
    a = pseudonymise("DW8428", "salt-1")
    assert a == pseudonymise("dw8428 ", "salt-1")
    assert a != pseudonymise("DW8428", "salt-2")
    assert a != pseudonymise("DW8429", "salt-1")
    assert len(a) == 16 and "8428" not in a
    with pytest.raises(TypeError):
        pseudonymise("DW8428", 12)  # type: ignore[arg-type]
