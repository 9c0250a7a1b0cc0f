"""Federated training on real and simulated floors: +60 min skill of each way to train, per gateway.

    .venv/bin/python -m benchmarks.federation_real /work/shared/data [--rounds 100] [--steps 10]

Gateways: the two public data sets (:mod:`models.public_data`: the Berkeley gym and DTU Library,
each one zone with its own calendar) and three simulated floors whose zones have different demand
shapes (quiet and silent rooms, group rooms and a lounge, an open area: :mod:`simulator.demand`,
20 weeks of an academic year from November with its calendar, the last three held out). Each gateway trains
before its split and is scored after it (:func:`models.evaluation.evaluate`: skill against the best
of last value, same time yesterday, same time last week and the weekday-time mean, at +60 min).

Every method starts from the shipped public start (``models/federation_start.onnx``) and makes
the same number of local steps (``rounds * steps``) per gateway:

- ``start``: the public start, not trained on any gateway;
- ``alone``: each gateway trains on its own zone-days only (no privacy needed: nothing leaves);
- ``federated``: FedAvg over the gateways, ``rounds`` rounds of ``steps`` local steps, no DP;
- ``federated, in-day, no DP``: the model and rows of the DP rounds below, without noise (what
  the privacy unit's restriction costs by itself);
- ``federated eps=E``: DP-SGD per gateway, as a gateway does it: the model reads only the in-day
  columns and trains on the rows that stay within their zone-day (the privacy unit), from the
  in-day public start (``models/federation_start_in_day.onnx``), the head, clip 0.05, noise
  calibrated per gateway so that all its rounds spend epsilon E at delta 1e-5 with the RDP
  accountant of :mod:`models.privacy`;
- ``pooled``: one model trained centrally on every gateway's zone-days together (the same steps,
  the batches of all gateways at once);
- ``+ adapted``: the federated model, then fitted on each gateway to its own zone-days the way a
  gateway with ``[federation] adapt_steps`` does it (:func:`edge_agent.federation.personal.adaptation`;
  local, so without noise, every column), scored on that gateway;
- ``+ trained as alone``: the federated model, then trained on each gateway exactly as ``alone``
  trains from the public start (the same steps and settings): what the federation's start is worth.
- ``--mix``: the gateway's own model mixed with the federated model (:mod:`models.mixture`, APFL-style):
  the "alone" model and the "+ adapted" model blended, ``a * alone + (1 - a) * adapted``, with ``a`` chosen
  on the gateway's newest ``--val-days`` training days (before its held-out weeks, never the held-out
  weeks): the two models are first trained the same way on the days before those, ``a`` is the grid
  weight with the smallest p50 error on them, then the models trained on every training day are
  blended with it. What a gateway with ``[federation] local_steps`` does (its validation days are
  its held-out days). Spends no privacy budget: the local model and the choice stay on the gateway.
  ``--only-mix``: only the rows the mixtures need (alone, federated without DP, the DP rounds at
  each epsilon, in-day and with the released profile, each adapted and mixed), in one run.
- ``--fedper E``: personalised layers (FedPer): DP rounds at epsilon E train the in-day model's
  every parameter (``all``), then each gateway keeps the federated hidden layer and trains its own
  head (output layer and skip path, every column) as ``alone`` trains, without noise.

``--features demand-v4`` (the default) runs every method on the demand-v4 columns, from the
public starts widened to them (:func:`models.quantile_mlp.widen`: the same forecast, zero weights
on the new columns). It adds the DP rounds that also read ``carry_typed_L`` computed from a
*released* profile (:mod:`models.private_profile`): each gateway releases its zones' profiles with
the Gaussian mechanism, spending ``--profile-share`` of epsilon E, and DP-SGD spends the rest (the
two composed by the RDP accountant: E in all). Their start is a residual over the count now: the
in-day start's hidden layer, its output layer zeroed, the skip path reading ``carry_typed`` of each
horizon (the count now plus the profile's change). ``profile, no DP`` is the same with the exact
profile and no noise: what the release could give at best.

Scales: a gateway divides counts by its zones' seat counts (public, from the config). The two
public data sets have no seat count, so their largest count before the split stands in for it.

The federation runs in-process (the same parameter averaging as the Flower server's strategy):
this measures what the model gains and what privacy costs, not the transport. Prints one table;
the figures go in docs/model.md. Takes several minutes of CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

from edge_agent.config import SiteConfig, parse_config
from edge_agent.federation.personal import ROUND_STEPS, adapt_params, train_alone
from edge_agent.federation.server import START_IN_DAY_PATH, START_MODEL_PATH
from models.calendar import LibraryCalendar
from models.evaluation import evaluate
from models.features import FEATURE_VERSIONS, V4
from models.history import Observation
from models.inference import Forecaster
from models.mixture import Validation, blend, choose_weight, validation_rows
from models.privacy import epsilon, noise_for
from models.private_profile import RELEASE_CLIP, profile_start, release_entry, release_noise, release_profiles
from models.public_data import SPLITS, load
from models.quantile_mlp import (
    LocalTraining,
    Params,
    ZoneDays,
    export_onnx,
    in_day_params,
    params_from_onnx,
    train_round,
    trainable,
    widen,
    zone_days,
)
from simulator.demand import calendar_toml, generate_history

HORIZONS = (15, 30, 60)
DELTA = 1e-5
SIM_START = date(2024, 11, 4)
SIM_DAYS = 140  # 20 weeks: term, December exams, the Christmas vacation, January exams, term
SIM_SPLIT = datetime(2025, 3, 3)  # the last three weeks (term) held out
FLOORS = {"sim-quiet": (["quiet", "silent", "quiet"], 30, 5), "sim-group": (["group", "lounge"], 24, 6),
          "sim-open": (["open", "open", "silent"], 40, 7)}


@dataclass
class Gateway:
    name: str
    history: dict[str, list[Observation]]
    calendar: LibraryCalendar
    split: datetime
    train: ZoneDays
    private: ZoneDays  # the rows DP may train on: inputs and target within their zone-day
    capacities: dict[str, float]
    version: str

    def cut(self) -> dict[str, list[Observation]]:
        return {z: [o for o in obs if o[0] < self.split] for z, obs in self.history.items()}

    def released(self, noise_multiplier: float, rng: np.random.Generator) -> ZoneDays:
        """The DP rows with ``carry_typed`` from this gateway's profile released at ``noise_multiplier``."""
        cut = self.cut()
        profiles = release_profiles(cut, self.calendar, clip=RELEASE_CLIP, noise_multiplier=noise_multiplier,
                                    rng=rng, capacities=self.capacities)
        return zone_days(cut, HORIZONS, self.calendar, capacities=self.capacities, in_day=True, version=self.version,
                         profiles=profiles)


def _gateway(name: str, history: dict[str, list[Observation]], calendar: LibraryCalendar, split: datetime,
             capacities: dict[str, float], version: str) -> Gateway:
    cut = {z: [o for o in obs if o[0] < split] for z, obs in history.items()}
    return Gateway(name, history, calendar, split,
                   zone_days(cut, HORIZONS, calendar, capacities=capacities, version=version),
                   zone_days(cut, HORIZONS, calendar, capacities=capacities, in_day=True, version=version),
                   capacities, version)


def _floor(name: str, kinds: list[str], seats: int) -> SiteConfig:
    square = [[0, 0], [10, 0], [10, 4], [0, 4]]
    zones = [{"id": f"{name}-{i}-{k}", "kind": k, "polygon": square} for i, k in enumerate(kinds)]
    rows = [{"id": f"{name}-s{z}-{i}", "zone": zones[z]["id"], "x": i % 10, "y": z} for z in range(len(kinds))
            for i in range(seats)]
    return parse_config({"site": {"id": "bench", "floor": name, "gateway": name}, "zones": zones, "seats": rows})


def gateways(data_dir: Path, version: str) -> list[Gateway]:
    out: list[Gateway] = []
    for name in ("gym", "dtu"):
        history, calendar = load(data_dir, name)
        peak = {z: max(v for t, v in obs if t < SPLITS[name]) for z, obs in history.items()}
        out.append(_gateway(name, history, calendar, SPLITS[name], peak, version))
    calendar = LibraryCalendar.from_toml(calendar_toml(SIM_START, SIM_DAYS))
    for name, (kinds, seats, seed) in FLOORS.items():
        cfg = _floor(name, kinds, seats)
        simulated: dict[str, list[Observation]] = {}
        for t, zone, count in generate_history(cfg, SIM_START, SIM_DAYS, seed):
            simulated.setdefault(zone, []).append((t, float(count)))
        out.append(_gateway(name, simulated, calendar, SIM_SPLIT, {z.id: float(seats) for z in cfg.zones}, version))
    return out


def skill_60(params: Params, gw: Gateway) -> float:
    report = evaluate(Forecaster.from_bytes(export_onnx(params, HORIZONS, {})), gw.history, gw.split, gw.calendar)
    value = report.skill["60"]
    return float("nan") if value is None else value


def _mean(parts: list[Params]) -> Params:
    return [np.mean([p[i] for p in parts], axis=0).astype(np.float32) for i in range(len(parts[0]))]


def federate(start: Params, gws: list[Gateway], rounds: int, how: LocalTraining, scope: str,
             noise: list[float] | None = None, seed: int = 0, in_day: bool = False,
             profiled: list[ZoneDays] | None = None) -> Params:
    """FedAvg; with ``noise`` (one multiplier per gateway) as gateways train under DP (in-day only);
    ``in_day`` alone: the in-day model and rows without noise (what the privacy unit costs by itself);
    ``profiled``: each gateway's DP rows with its released profile (the in-day and profile columns)."""
    rng = np.random.default_rng(seed)
    private = noise is not None or in_day or profiled is not None
    profile = profiled is not None
    mask = trainable(HORIZONS, start[0].shape[1], scope, in_day=private, version=gws[0].version, profile=profile)
    params = in_day_params(start, profile) if private else start
    for _ in range(rounds):
        outs = []
        for i, gw in enumerate(gws):
            local = how if noise is None else LocalTraining(**{**how.__dict__, "noise_multiplier": noise[i]})
            data = profiled[i] if profiled is not None else gw.private if private else gw.train
            outs.append(train_round(params, data, local, rng, mask)[0])
        params = _mean(outs)
    return params


class Mixer:
    """Each gateway's own model mixed with an adapted federated model, the weight chosen on its
    newest ``val_days`` training days (see the module docstring, ``--mix``)."""

    def __init__(self, args: argparse.Namespace, gws: list[Gateway], start: Params) -> None:
        self.args, self.gws = args, gws
        self.val = [_gateway(g.name, g.cut(), g.calendar, g.split - timedelta(days=args.val_days), g.capacities,
                             g.version) for g in gws]
        self.rows: list[Validation] = [
            validation_rows(v.history, v.split, g.split, HORIZONS, g.calendar, g.version)
            for v, g in zip(self.val, gws, strict=True)]
        # "alone" on every training day (the local model served), and on the days before the validation days,
        # by the gateway's own code (the same as ``federate`` on one gateway with ``plain``)
        steps = args.rounds * args.steps
        self.alone = [train_alone(start, g.train, HORIZONS, steps, seed=args.seed) for g in gws]
        self.alone_val = [train_alone(start, v.train, HORIZONS, steps, seed=args.seed) for v in self.val]

    def skills(self, label: str, fed_params: Params, adapted: list[Params]) -> list[float]:
        out = []
        chosen = []
        for i, (g, v) in enumerate(zip(self.gws, self.val, strict=True)):
            adapted_val = adapt_params(fed_params, v.train, HORIZONS, self.args.adapt_steps, seed=self.args.seed)
            weight, _ = choose_weight(self.alone_val[i], adapted_val, self.rows[i])
            chosen.append(f"{g.name} {weight:.2f}")
            out.append(skill_60(blend(self.alone[i], adapted[i], weight), g))
        print(f"{label}, mixed: weight of the gateway's own model " + ", ".join(chosen), flush=True)
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.federation_real")
    parser.add_argument("data_dir", type=Path, help="the directory holding gym_crowdedness/ and dtu_library/")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--adapt-steps", type=int, default=200)
    parser.add_argument("--epsilons", default="1,3,10")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scope", default="head", help="what DP rounds train (models.quantile_mlp.SCOPES)")
    parser.add_argument("--as-alone", action="store_true", help="also train each DP model further as alone does")
    parser.add_argument("--fedper", type=float, default=None, metavar="EPSILON",
                        help="also: DP rounds of every parameter at EPSILON, then a local head per gateway")
    parser.add_argument("--features", choices=FEATURE_VERSIONS, default=V4)
    parser.add_argument("--only-profile", action="store_true", help="demand-v4: only the released-profile rows")
    parser.add_argument("--no-dp", action="store_true", help="only the rows without DP (alone, federated, pooled)")
    parser.add_argument("--profile-share", type=float, default=0.3,
                        help="demand-v4: the share of each epsilon the released profile spends")
    parser.add_argument("--mix", action="store_true",
                        help="also: each gateway's own model mixed with every adapted federated model")
    parser.add_argument("--val-days", type=int, default=14,
                        help="--mix: the newest training days on which each gateway chooses its weight")
    parser.add_argument("--only-mix", action="store_true",
                        help="only alone, the rows --mix needs and the mixtures (with --mix)")
    args = parser.parse_args(argv)
    args.mix = args.mix or args.only_mix
    if args.mix and args.steps != ROUND_STEPS:
        parser.error(f"--mix trains each gateway's own model as a gateway does, in rounds of {ROUND_STEPS} steps")
    t0 = time.process_time()
    gws = gateways(args.data_dir, args.features)
    start, have = params_from_onnx(START_MODEL_PATH.read_bytes())
    start_in_day, have_in_day = params_from_onnx(START_IN_DAY_PATH.read_bytes())
    assert have == have_in_day == HORIZONS, (have, have_in_day)
    start, start_in_day = widen(start, args.features), widen(start_in_day, args.features)
    plain = LocalTraining(steps=args.steps, batch_groups=32, learning_rate=0.003, clip=float("inf"))
    private = LocalTraining(steps=args.steps, batch_groups=32, learning_rate=0.003, clip=0.05)
    total = args.rounds * args.steps
    rows: list[tuple[str, list[float]]] = [("start (public, untrained)", [skill_60(start, g) for g in gws]),
                                           ("in-day start (public)", [skill_60(start_in_day, g) for g in gws])]
    adapted_rows: list[tuple[str, list[float]]] = []
    mix_rows: list[tuple[str, list[float]]] = []
    mixer = Mixer(args, gws, start) if args.mix else None

    def adapted_and_mixed(label: str, fed_params: Params) -> None:
        # the gateway's own adaptation (the same as one round of ``federate`` with ``adaptation``)
        adapted = [adapt_params(fed_params, g.train, HORIZONS, args.adapt_steps, seed=args.seed) for g in gws]
        adapted_rows.append((f"{label} + adapted", [skill_60(p, g) for p, g in zip(adapted, gws, strict=True)]))
        if mixer is not None:
            mix_rows.append((f"{label}, adapted, mixed with alone", mixer.skills(label, fed_params, adapted)))

    def as_alone(params: Params, gw: Gateway) -> float:
        return skill_60(federate(params, [gw], args.rounds, plain, "all", seed=args.seed), gw)

    if args.only_profile:
        profile_rows(args, gws, start_in_day, rows, adapted_rows, as_alone, adapted_and_mixed)
        print_table(args, gws, rows + adapted_rows + mix_rows, t0)
        return 0
    alone = mixer.alone if mixer is not None else [federate(start, [g], args.rounds, plain, "all", seed=args.seed)
                                                   for g in gws]
    rows.append(("alone", [skill_60(p, g) for p, g in zip(alone, gws, strict=True)]))
    fed = federate(start, gws, args.rounds, plain, "all", seed=args.seed)
    rows.append(("federated, no DP", [skill_60(fed, g) for g in gws]))
    adapted_and_mixed("federated, no DP", fed)
    if not args.no_dp:
        if not args.only_mix:
            fed_in_day = federate(start_in_day, gws, args.rounds, plain, args.scope, seed=args.seed, in_day=True)
            rows.append(("federated, in-day, no DP", [skill_60(fed_in_day, g) for g in gws]))
        for eps in (float(e) for e in args.epsilons.split(",")):
            qs = [min(1.0, private.batch_groups / g.private.groups) for g in gws]
            noise = [noise_for(eps, q, total, DELTA) for q in qs]
            spent = max(epsilon([(q, z, total)], DELTA) for q, z in zip(qs, noise, strict=True))
            multipliers = ", ".join(f"{g.name} {z:.2f}" for g, z in zip(gws, noise, strict=True))
            print(f"eps {eps:g}: noise multipliers {multipliers}", flush=True)
            dp = federate(start_in_day, gws, args.rounds, private, args.scope, noise, seed=args.seed)
            rows.append((f"federated, eps={eps:g} (spent {spent:.2f})", [skill_60(dp, g) for g in gws]))
            adapted_and_mixed(f"federated, eps={eps:g}", dp)
            if args.as_alone:
                adapted_rows.append((f"federated, eps={eps:g} + as alone", [as_alone(dp, g) for g in gws]))
        if args.features == V4:
            profile_rows(args, gws, start_in_day, rows, adapted_rows, as_alone, adapted_and_mixed)
        if args.fedper is not None:
            qs = [min(1.0, private.batch_groups / g.private.groups) for g in gws]
            noise = [noise_for(args.fedper, q, total, DELTA) for q in qs]
            body = federate(start_in_day, gws, args.rounds, private, "all", noise, seed=args.seed)
            rows.append((f"federated, eps={args.fedper:g}, all params", [skill_60(body, g) for g in gws]))
            adapted_rows.append((f"federated, eps={args.fedper:g}, all params, then local head", [
                skill_60(federate(body, [g], args.rounds, plain, "head", seed=args.seed), g) for g in gws]))
    if args.only_mix:
        print_table(args, gws, rows + adapted_rows + mix_rows, t0)
        return 0
    pooled_data = ZoneDays.join([g.train for g in gws])
    pooled_how = LocalTraining(**{**plain.__dict__, "batch_groups": plain.batch_groups * len(gws)})
    central = Gateway("pooled", {}, gws[0].calendar, gws[0].split, pooled_data, pooled_data, {}, args.features)
    pooled = federate(start, [central], args.rounds, pooled_how, "all", seed=args.seed)
    rows.append(("pooled (central)", [skill_60(pooled, g) for g in gws]))
    print_table(args, gws, rows + adapted_rows + mix_rows, t0)
    return 0


def print_table(args: argparse.Namespace, gws: list[Gateway], rows: list[tuple[str, list[float]]], t0: float) -> None:
    names = [g.name for g in gws]
    print(f"{args.features}: +60 min skill on held-out weeks; {args.rounds} rounds x {args.steps} local steps; "
          "zone-days: "
          + ", ".join(f"{g.name} {g.train.groups}" for g in gws))
    print("zone-days with in-day rows (DP): " + ", ".join(f"{g.name} {g.private.groups}" for g in gws))
    print(f"{'method':<50}" + "".join(f"{n:>11}" for n in names) + f"{'mean':>9}")
    for label, skills in rows:
        print(f"{label:<50}" + "".join(f"{s:>11.3f}" for s in skills) + f"{np.mean(skills):>9.3f}")
    print(f"({time.process_time() - t0:.0f} s CPU)")


def profile_rows(args: argparse.Namespace, gws: list[Gateway], start_in_day: Params,
                 rows: list[tuple[str, list[float]]], adapted_rows: list[tuple[str, list[float]]],
                 as_alone: Callable[[Params, Gateway], float],
                 adapted_and_mixed: Callable[[str, Params], None]) -> None:
    """The DP rounds that read the typed profile from a released profile (see the module docstring)."""
    plain = LocalTraining(steps=args.steps, batch_groups=32, learning_rate=0.003, clip=float("inf"))
    private = LocalTraining(steps=args.steps, batch_groups=32, learning_rate=0.003, clip=0.05)
    total = args.rounds * args.steps
    residual = profile_start(start_in_day, HORIZONS)
    rows.append(("profile start (now + exact profile change)", [skill_60(residual, g) for g in gws]))
    rng = np.random.default_rng(args.seed + 7)
    exact = [g.released(0.0, rng) for g in gws]
    if not args.only_mix:
        rows.append(("federated, in-day + exact profile, no DP", [
            skill_60(federate(residual, gws, args.rounds, plain, args.scope, seed=args.seed, profiled=exact), g)
            for g in gws]))
    for eps in (float(e) for e in args.epsilons.split(",")):
        z_profile = release_noise(eps * args.profile_share, DELTA)
        prior = [release_entry(z_profile)]
        released = [g.released(z_profile, rng) for g in gws]
        qs = [min(1.0, private.batch_groups / d.groups) for d in released]
        noise = [noise_for(eps, q, total, DELTA, prior) for q in qs]
        spent = max(epsilon([*prior, (q, z, total)], DELTA) for q, z in zip(qs, noise, strict=True))
        print(f"eps {eps:g} with a released profile: profile noise multiplier {z_profile:.2f}, DP-SGD "
              + ", ".join(f"{g.name} {z:.2f}" for g, z in zip(gws, noise, strict=True)), flush=True)
        dp = federate(residual, gws, args.rounds, private, args.scope, noise, seed=args.seed,
                      profiled=released)
        rows.append((f"federated, eps={eps:g}, released profile (spent {spent:.2f})",
                     [skill_60(dp, g) for g in gws]))
        adapted_and_mixed(f"federated, eps={eps:g}, released profile", dp)
        if args.as_alone:
            adapted_rows.append((f"federated, eps={eps:g}, released profile + as alone",
                                 [as_alone(dp, g) for g in gws]))


if __name__ == "__main__":
    sys.exit(main())
