"""UWB solvers, tracking and pseudonyms on seeded simulated ranges at the example floor's anchors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_agent.config import SiteConfig
from edge_agent.sensing.geometry import SeatPoint
from edge_agent.sensing.tags import FloorTag, TagDirectory, TagTrack, pseudonymise
from edge_agent.sensing.uwb import Fix, OffsetLearner, solve

TAG_Z = 1.0


def anchors(cfg: SiteConfig) -> dict[str, tuple[float, float, float]]:
    return {a.id: (a.x, a.y, a.z) for a in cfg.anchors}


def simulate(
    cfg: SiteConfig, rng: np.random.Generator, n: int, nlos: bool, offset: float = 0.0
) -> list[tuple[np.ndarray, dict[str, float]]]:
    """Tags uniformly on the floor; LOS noise sigma 5 cm; NLOS adds +0.2..1 m (heavy tail) to 1-2 anchors;
    ``offset`` is added to every range (an uncalibrated antenna delay)."""
    anc = anchors(cfg)
    out = []
    for _ in range(n):
        p = np.array([rng.uniform(0.5, 38.5), rng.uniform(0.5, 23.5), TAG_Z])
        r = {a: float(np.linalg.norm(p - np.array(xyz)) + offset + rng.normal(0.0, 0.05)) for a, xyz in anc.items()}
        if nlos:
            for a in rng.choice(sorted(anc), size=int(rng.integers(1, 3)), replace=False):
                r[str(a)] += rng.uniform(0.2, 1.0) + (rng.pareto(2.5) * 0.3 if rng.random() < 0.3 else 0.0)
        out.append((p, r))
    return out


def rmse(cases: list[tuple[np.ndarray, dict[str, float]]], cfg: SiteConfig, robust: bool,
         learner: OffsetLearner | None = None) -> float:
    """2D RMSE over the cases, solved in turn (a learner, if given, learns the offset as they come)."""
    errs = []
    for p, r in cases:
        fix = solve(r, anchors(cfg), TAG_Z, robust=robust, offset=learner.prior() if learner else None)
        assert fix is not None
        if learner is not None:
            learner.observe(fix)
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


def test_constant_offset_on_every_anchor_robust_is_no_worse_than_plain(floor_config: SiteConfig) -> None:
    """+0.18 m on every LOS range (no calibration file): the offset is solved, no anchor is dropped."""
    cases = simulate(floor_config, np.random.default_rng(24), 200, nlos=False, offset=0.18)
    robust, plain = rmse(cases, floor_config, robust=True), rmse(cases, floor_config, robust=False)
    assert robust <= plain
    assert robust <= 0.08  # the noise alone: the offset is taken out, not smeared into the position
    fix = solve(cases[0][1], anchors(floor_config), TAG_Z)
    assert fix is not None and fix.offset_solved and not fix.rejected
    assert abs(fix.offset_m - 0.18) < 0.1


def test_offset_with_nlos_learned_over_the_fixes_is_much_better_than_plain(floor_config: SiteConfig) -> None:
    cases = simulate(floor_config, np.random.default_rng(25), 300, nlos=True, offset=0.18)
    learner = OffsetLearner()
    robust = rmse(cases, floor_config, robust=True, learner=learner)
    plain = rmse(cases, floor_config, robust=False)
    assert robust < plain  # from the first fix, before anything is learned
    assert abs(learner.prior().mean_m - 0.18) < 0.03 and learner.prior().sigma_m < 0.1
    late = rmse(cases[150:], floor_config, robust=True, learner=learner)
    assert late < 0.35 * rmse(cases[150:], floor_config, robust=False)


def test_offset_is_solved_only_with_five_anchors_in_view(floor_config: SiteConfig) -> None:
    anc = anchors(floor_config)
    p = np.array([20.0, 12.0, TAG_Z])
    r = {a: float(np.linalg.norm(p - np.array(xyz))) + 0.18 for a, xyz in anc.items()}
    five = solve(dict(list(r.items())[:5]), anc, TAG_Z)
    four = solve(dict(list(r.items())[:4]), anc, TAG_Z)
    assert five is not None and five.offset_solved and abs(five.offset_m - 0.18) < 1e-3
    assert math.hypot(five.x - 20.0, five.y - 12.0) < 1e-3
    assert four is not None and not four.offset_solved and four.offset_m == 0.0


def test_every_fix_reports_its_dilution_of_precision(floor_config: SiteConfig) -> None:
    anc = anchors(floor_config)

    def fix_at(x: float, y: float) -> Fix:
        p = np.array([x, y, TAG_Z])
        fix = solve({a: float(np.linalg.norm(p - np.array(xyz))) for a, xyz in anc.items()}, anc, TAG_Z)
        assert fix is not None
        return fix

    middle, corner = fix_at(19.5, 12.0), fix_at(1.0, 1.0)
    assert 0.5 < middle.hdop < corner.hdop < 20.0
    assert middle.vdop is None and middle.dims == 2


def test_three_d_on_coplanar_anchors_never_diverges(floor_config: SiteConfig) -> None:
    """All anchors on one ceiling: height is not observable, so no 3D fix; a 2D one at the fallback height."""
    anc = anchors(floor_config)
    rng = np.random.default_rng(26)
    for _ in range(20):
        p = np.array([rng.uniform(1, 38), rng.uniform(1, 23), 1.2])
        r = {a: float(np.linalg.norm(p - np.array(xyz))) + 0.18 + rng.normal(0, 0.05) for a, xyz in anc.items()}
        for robust in (True, False):
            assert solve(r, anc, None, robust=robust) is None
            flat = solve(r, anc, None, robust=robust, fallback_z=1.0)
            assert flat is not None and flat.dims == 2 and flat.z == 1.0
            assert math.hypot(flat.x - p[0], flat.y - p[1]) < 0.5


def test_a_fix_with_hopeless_geometry_is_refused() -> None:
    line = {"a": (0.0, 0.0, 2.8), "b": (10.0, 0.01, 2.8), "c": (20.0, 0.0, 2.8)}  # three anchors in a row ...
    p = np.array([15.0, 0.02, 1.0])  # ... and the tag on that row: across it, nothing is known
    r = {k: float(np.linalg.norm(p - np.array(v))) for k, v in line.items()}
    assert solve(r, line, 1.0) is None and solve(r, line, 1.0, robust=False) is None


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
        assert fix is not None and fix.dims == 3 and fix.vdop is not None and fix.vdop < 5.0
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


def test_tags_are_discovered_once_and_forgotten_after_the_retention_time() -> None:
    tags = TagDirectory(b"gateway-salt", retention_s=300.0)
    first = tags.pseudonym("2A7F", 0.0)
    assert first == tags.pseudonym(" 2a7f", 100.0) == pseudonymise("2a7f", b"gateway-salt")
    assert tags.discovered == 1 and len(tags) == 1
    assert tags.pseudonym("2A80", 200.0) != first and tags.discovered == 2
    assert tags.expire(350.0) == [] and tags.expire(401.0) == [first] and len(tags) == 1
    assert tags.pseudonym("2A7F", 402.0) == first and tags.discovered == 3  # heard again: discovered again
    assert tags.forget("2a7f") == first and len(tags) == 1
    assert TagDirectory(b"another-gateway").name_of("2A7F") != first  # every gateway its own pseudonyms


def test_a_tag_takes_a_seat_near_it_or_near_an_occupied_one_and_keeps_it() -> None:
    seats = [SeatPoint("S1", 0.0, 0.0), SeatPoint("S2", 1.6, 0.0)]
    occupied: dict[str, float] = {}

    def fix(tag: FloorTag, x: float, y: float, t: float) -> None:
        tag.track = TagTrack()  # each fix stands alone here: the seat logic is under test, not the filter
        tag.track.update(x, y, t)
        tag.settle(t, seats, 0.6, 1.2, occupied.get)

    tag = FloorTag(TagTrack(), 0.0)
    fix(tag, 0.9, 0.9, 0.0)  # 1.27 m from S1, 1.14 from S2: no seat
    assert tag.seat is None and tag.near == "S2"
    fix(tag, 1.5, 1.0, 10.0)  # 1.0 m from S2, which is free: near it, not at it
    assert tag.seat is None and tag.near_since == 0.0
    occupied["S2"] = 15.0
    fix(tag, 1.5, 1.0, 20.0)  # S2 is occupied now, but the tag has not come to rest yet
    assert tag.seat is None
    fix(tag, 1.5, 1.0, 30.0)  # at rest: the tag is its occupant's, since it came near
    assert tag.seat == "S2" and tag.seat_since == 0.0
    fix(tag, 2.4, 0.5, 40.0)  # scatter within 1.2 m keeps the seat and its time
    assert tag.seat == "S2" and tag.seat_since == 0.0
    fix(tag, 0.3, 0.0, 50.0)  # at S1 now, which is free: its patron sits down
    assert tag.seat == "S1" and tag.seat_since == 50.0
