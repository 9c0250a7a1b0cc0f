"""A gateway's share of federated training, without Flower: data, budget, privacy ledger, scoring.

:class:`GatewayTrainer` answers the server's two questions, ``fit`` and ``evaluate``, with numpy
arrays and scalars only. What it returns is all that leaves the gateway:

- ``fit``: the model parameters after local DP-SGD (never a gradient of one zone-day, never a
  count; under DP the model reads only the zone-day's own columns, see :mod:`models.quantile_mlp`),
  and the scalars ``epsilon_round``, ``epsilon_total``, ``steps``, ``refused``. The
  weight FedAvg uses is 1 per gateway, not its number of zone-days (which would itself be a
  count of the gateway's data outside the DP guarantee).
- ``evaluate``: on the newest ``holdout_days`` (never trained on) the mean absolute error in people
  of the round's model, of the model in use (sent by the server), and of the best naive baseline,
  and the number of rows scored.

A delivered model is installed through ``install`` with its manifest's ``signature``; the daemon's
(:func:`install_checked`) checks it as a signed artefact (``model-publisher`` key, the same check as
``update_model``) before the model slot's swap, and records the outcome in the audit log.

With ``[federation] local_steps`` the gateway also keeps a model of its own floor and serves it
mixed with each delivered model (:mod:`edge_agent.federation.personal`, :meth:`GatewayTrainer.mix`);
that model never leaves the gateway and costs no privacy budget.

The ledger (``<state_dir>/federation-privacy.json``) keeps the gateway's privacy spending across
restarts; a round that would take it over ``[federation.privacy] epsilon_total`` is refused and
the gateway sends back the parameters it received, unchanged, with weight 0.

With ``[federation] profile_share > 0`` (0 by default) the DP rounds also read the typed profile, from a
profile the gateway *releases* (:mod:`models.private_profile`): drawn once from its own history with that
share of ``epsilon_total``, entered in the same ledger (one Gaussian mechanism) before any row reads it,
and kept on the gateway (``<state_dir>/federation-profile.json``); it only shapes the training rows'
typed-profile columns and is never sent. ``fit`` reports its epsilon as ``epsilon_release``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from drivers.errors import TrustError
from edge_agent.federation.personal import KeptLocal, Mixture, adapt_params, adaptation, train_alone
from edge_agent.forecast_config import FederationConf
from firmware_bridge.registry import atomic_write
from models import DEFAULT_MODEL_PATH
from models.calendar import LibraryCalendar
from models.errors import HistoryError, ModelError
from models.evaluation import evaluate as score
from models.features import FEATURE_VERSION, version_of_width
from models.history import Observation
from models.inference import Forecaster, SwapResult
from models.mixture import blend, choose_weight, mixture_errors, validation_rows
from models.privacy import PrivacyLedger, epsilon
from models.private_profile import (
    RELEASE_CLIP,
    ReleasedProfile,
    release_entry,
    release_noise,
    release_profiles,
    releases_from_json,
    releases_to_json,
)
from models.quantile_mlp import (
    SCOPES,
    LocalTraining,
    Params,
    ZoneDays,
    bytes_per_group,
    export_onnx,
    in_day_params,
    params_from_onnx,
    train_round,
    trainable,
    widen,
    zone_days,
)

log = logging.getLogger("edge_agent.federation")
LEDGER_FILE = "federation-privacy.json"
RELEASE_FILE = "federation-profile.json"
#: The public start every gateway's own model is trained from (the server's full-column start).
LOCAL_START_PATH = DEFAULT_MODEL_PATH.with_name("federation_start.onnx")


class Install(Protocol):
    """Install a model on this gateway: ``signature`` is the delivered manifest's (None when absent);
    ``adapted_from`` the SHA-256 of the delivered model a locally adapted one was fitted from."""

    def __call__(self, data: bytes, sha256: str, signature: Mapping[str, Any] | None,
                 adapted_from: str | None, /) -> tuple[bool, str]: ...


Scalars = dict[str, bool | bytes | float | int | str]


def horizons_of(config: Mapping[str, Any]) -> tuple[int, ...]:
    return tuple(int(h) for h in str(config.get("horizons", "15,30,60")).split(","))


def cut_history(history: Mapping[str, list[Observation]], before: datetime) -> dict[str, list[Observation]]:
    return {z: [o for o in obs if o[0] < before] for z, obs in history.items()}


@dataclass
class GatewayData:
    """The gateway's training zone-days (before the held-out days) and its full history for scoring."""

    train: ZoneDays
    history: dict[str, list[Observation]]
    holdout_from: datetime
    stamp: tuple[Any, ...] = ()  # changes when the history grows


class GatewayTrainer:
    """See the module docstring. ``load_history`` is called in the worker thread at each round."""

    def __init__(self, conf: FederationConf, load_history: Callable[[], dict[str, list[Observation]]],
                 calendar: Callable[[], LibraryCalendar | None], state_dir: Path, *,
                 capacities: Mapping[str, float] | None = None, install: Install | None = None,
                 noise_multiplier: float | None = None) -> None:
        self.conf = conf
        self.load_history = load_history
        self.calendar = calendar
        self.capacities = dict(capacities or {})
        self.install = install
        self.noise_multiplier = conf.privacy.noise_multiplier if noise_multiplier is None else noise_multiplier
        self.ledger_path = state_dir / LEDGER_FILE
        self.release_path = state_dir / RELEASE_FILE
        self.ledger = self._read_ledger()
        self.releases = self._read_releases()  # the released profile, once drawn (never sent)
        self.installed: list[str] = []
        self.delivered: bytes | None = None  # the last federated model installed, for local adaptation
        self.local: KeptLocal | None = None  # this gateway's own model (never sent)
        self.mixture: Mixture | None = None  # what the gateway serves after mix()
        self._cache: dict[tuple[tuple[int, ...], bool, str, bool, str], tuple[tuple[Any, ...], GatewayData]] = {}

    def _read_ledger(self) -> PrivacyLedger:
        p = self.conf.privacy
        try:
            return PrivacyLedger.from_json(self.ledger_path.read_text(encoding="utf-8"), p.epsilon_total, p.delta)
        except FileNotFoundError:
            return PrivacyLedger(p.epsilon_total, p.delta)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # An unreadable ledger must not reset the budget: refuse every round until someone looks.
            log.error("%s unreadable (%s): federated rounds refused", self.ledger_path, exc)
            return PrivacyLedger(0.0, p.delta, [(1.0, 1.0, 1)])

    def _read_releases(self) -> dict[str, ReleasedProfile] | None:
        """The kept release, if the ledger accounts it (a reset ledger forgets it: it is drawn again)."""
        try:
            releases = releases_from_json(self.release_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s unreadable (%s): the profile will be released again", self.release_path, exc)
            return None
        noise = {r.noise_multiplier for r in releases.values()}
        if len(noise) != 1 or release_entry(noise.pop()) not in self.ledger.spent:
            log.warning("%s is not in the privacy ledger: the profile will be released again", self.release_path)
            return None
        return releases

    def _save_ledger(self) -> None:
        atomic_write(self.ledger_path, self.ledger.to_json().encode())

    def _draw_release(self, history: Mapping[str, list[Observation]]) -> dict[str, ReleasedProfile] | None:
        """A new release of the zones' profiles from ``history`` with ``profile_share`` of the budget (not yet
        accounted: :meth:`fit` enters it in the ledger before any row reads it), or None if out of reach."""
        p = self.conf.privacy
        try:
            z = release_noise(p.epsilon_total * self.conf.profile_share, p.delta)
        except ValueError as exc:
            log.warning("no released profile: %s; training on the in-day columns only", exc)
            return None
        # The noise must be unpredictable to anyone but this gateway: a fresh generator from OS entropy.
        return release_profiles(history, self.calendar(), clip=RELEASE_CLIP, noise_multiplier=z,
                                rng=np.random.default_rng(), capacities=self.capacities)

    def data(self, horizons: tuple[int, ...], private: bool = False, version: str = FEATURE_VERSION,
             every_day: bool = False, releases: Mapping[str, ReleasedProfile] | None = None) -> GatewayData:
        """The zone-days to train on (cached while the history, horizons and privacy stay the same).

        ``private`` (DP rounds): only zones whose scale is public (a seat count from the config, not
        the largest count seen, which would carry every day's data into every row), and only rows
        that read and predict within their own zone-day (:func:`models.quantile_mlp.zone_days`).
        ``version``: the feature set of the model being trained (the server's start decides it).
        ``every_day``: the held-out days too (only for a model that stays on the gateway, :meth:`mix`).
        ``releases`` (private only): the released profile the typed-profile columns are computed from.
        """
        history, holdout_from, stamp = self._recent()
        release_key = "" if releases is None else hashlib.sha256(releases_to_json(releases).encode()).hexdigest()
        key = (horizons, private, version, every_day, release_key)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        max_groups = max(8, self.conf.memory_mb * 2**20 // bytes_per_group(len(horizons), version))
        kept = (self._private_history(history, holdout_from) if private
                else history if every_day else cut_history(history, holdout_from))
        train = zone_days(kept, horizons, self.calendar(), capacities=self.capacities, max_groups=max_groups,
                          in_day=private, version=version, profiles=releases if private else None)
        data = GatewayData(train, history, holdout_from, stamp)
        self._cache[key] = (stamp, data)
        return data

    def _private_history(self, history: Mapping[str, list[Observation]],
                         holdout_from: datetime) -> dict[str, list[Observation]]:
        """What DP may read: the days before the held-out ones, of the zones with a seat count (public scale)."""
        kept = cut_history(history, holdout_from)
        unscaled = sorted(z for z in kept if not self.capacities.get(z))
        if unscaled:
            log.warning("zones without seats in the config are left out of private training: %s", ", ".join(unscaled))
        return {z: obs for z, obs in kept.items() if self.capacities.get(z)}

    def _recent(self) -> tuple[dict[str, list[Observation]], datetime, tuple[Any, ...]]:
        """The history, where its held-out days begin, and a stamp that changes when it grows."""
        history = self.load_history()
        times = [t for obs in history.values() for t, _ in obs]
        if not times:
            raise HistoryError("no zone history on this gateway yet")
        last = max(times)
        holdout_from = datetime.combine((last - timedelta(days=self.conf.holdout_days)).date(), datetime.min.time())
        return history, holdout_from, (len(times), last)

    # -- the two questions -------------------------------------------------------------------
    def fit(self, params: Params, config: Mapping[str, Any]) -> tuple[Params, int, Scalars]:
        """Local DP-SGD from ``params``; refuses (unchanged params, weight 0) beyond the budget."""
        _lower_priority(self.conf.nice)
        horizons = horizons_of(config)
        private = self.noise_multiplier > 0
        try:
            version = version_of_width(params[0].shape[0])
        except ValueError as exc:
            log.warning("federated round refused: the server's model fits no feature set here (%s)", exc)
            return params, 0, {"refused": 1, "epsilon_total": self.ledger.total(), "epsilon_round": 0.0, "steps": 0}
        releases, new_release = None, False
        if private and self.conf.profile_share > 0:
            releases = self.releases
            if releases is None:
                history, holdout_from, _ = self._recent()
                releases, new_release = self._draw_release(self._private_history(history, holdout_from)), True
        releases = releases or None  # no zone with a seat count: nothing released
        profile = releases is not None
        data = self.data(horizons, private, version, releases=releases)
        how = LocalTraining(
            steps=int(config.get("steps", 30)), batch_groups=int(config.get("batch_groups", 32)),
            learning_rate=float(config.get("learning_rate", 0.003)), prox_mu=float(config.get("prox_mu", 0.0)),
            clip=self.conf.privacy.clip, noise_multiplier=self.noise_multiplier,
            cpu_seconds=self.conf.cpu_seconds_per_round,
        )
        q = min(1.0, how.batch_groups / max(data.train.groups, 1))
        # A new release is accounted with the round it serves: both fit the budget, or neither is spent.
        first = [release_entry(_release_noise(releases))] if releases is not None and new_release else []
        if private and epsilon([*self.ledger.spent, *first, (q, how.noise_multiplier, how.steps)],
                               self.ledger.delta) > self.ledger.budget:
            spent = self.ledger.total()
            log.warning("federated round refused: it would take epsilon from %.3f over the budget %.3f%s",
                        spent, self.ledger.budget, " with the profile's release" if first else "")
            return params, 0, {"refused": 1, "epsilon_total": spent, "epsilon_round": 0.0, "steps": 0}
        if data.train.groups < 4:
            return params, 0, {"refused": 1, "epsilon_total": self.ledger.total(), "epsilon_round": 0.0, "steps": 0}
        scope = str(config.get("scope", "head"))
        if scope not in SCOPES:
            log.warning("federated round refused: the server asks to train %r, not one of %s", scope, SCOPES)
            return params, 0, {"refused": 1, "epsilon_total": self.ledger.total(), "epsilon_round": 0.0, "steps": 0}
        if releases is not None and new_release:
            # Entered in the ledger (on disk) before any row reading it is trained on, then kept.
            self.ledger.add(*first[0])
            self._save_ledger()
            atomic_write(self.release_path, releases_to_json(releases).encode())
            self.releases = releases
            log.info("zone profiles released for DP training (epsilon %.3f by itself)",
                     epsilon(first, self.ledger.delta))
        if private:
            # Whatever the server sent, the model trained here reads only the zone-day's own columns (and
            # the released profile), so no other zone-day's counts reach this zone-day's gradient (the unit
            # stays one zone-day).
            params = in_day_params(params, profile)
        # The noise must be unpredictable to anyone but this gateway: a fresh generator from OS entropy.
        new, report = train_round(params, data.train, how, np.random.default_rng(),
                                  trainable(horizons, params[0].shape[1], scope, in_day=private, version=version,
                                            profile=profile))
        metrics: Scalars = {"refused": 0, "steps": report.steps, "budget_stop": int(report.stopped_by_budget)}
        if releases is not None:
            metrics["epsilon_release"] = epsilon([release_entry(_release_noise(releases))], self.ledger.delta)
        if private:
            metrics["epsilon_round"] = self.ledger.round_epsilon(q, how.noise_multiplier, report.steps)
            self.ledger.record(q, how.noise_multiplier, report.steps)
            self._save_ledger()
            metrics["epsilon_total"] = self.ledger.total()
        return new, 1, metrics

    def evaluate(self, params: Params, config: Mapping[str, Any]) -> tuple[float, int, Scalars]:
        """MAE (people) of the round's model, the model in use and the best baseline on the held-out days."""
        horizons = horizons_of(config)
        history, holdout_from, _ = self._recent()  # scoring needs no training rows
        calendar = self.calendar()
        new = score(Forecaster.from_bytes(export_onnx(params, horizons, {})), history, holdout_from, calendar)
        mae_new = float(np.mean(list(new.model_mae.values())))
        baseline = float(np.mean([min(b[str(h)] for b in new.baseline_mae.values()) for h in horizons]))
        metrics: Scalars = {"mae_new": mae_new, "mae_baseline": baseline, "rows": new.rows}
        current = config.get("current_model")
        if isinstance(current, bytes) and current:
            report = score(Forecaster.from_bytes(current), history, holdout_from, calendar)
            metrics["mae_current"] = float(np.mean(list(report.model_mae.values())))
        install = config.get("install_model")
        if isinstance(install, bytes) and install and self.install is not None:
            ok, why = self.install(install, str(config.get("install_sha256", "")),
                                   delivered_signature(config.get("install_manifest")), None)
            metrics["installed"] = int(ok)
            if ok:
                self.installed.append(hashlib.sha256(install).hexdigest())
                self.delivered = install
            else:
                log.warning("federated model not installed: %s", why)
        return mae_new, new.rows, metrics


    def adapt(self, steps: int) -> tuple[bool, str]:
        """Fine-tune the delivered model on this gateway's own zone-days and serve the result if it
        beats the delivered model on the held-out days.

        Nothing of it leaves the gateway, so it needs no noise and spends no privacy budget: the
        federation gives every floor a common start, the floor's own history then fits it to its
        demand (FedAvg with local adaptation). Returns whether the adapted model is now served, and why.
        """
        if self.conf.local_steps > 0:
            return self.mix(steps, self.conf.local_steps)
        if self.delivered is None or self.install is None:
            return False, "no federated model delivered"
        _lower_priority(self.conf.nice)
        try:
            params, have = params_from_onnx(self.delivered)
        except ValueError as exc:
            return False, f"the delivered model cannot be adapted: {exc}"
        version = version_of_width(params[0].shape[0])
        data = self.data(have, version=version)
        if data.train.groups < 4:
            return False, "too little history to adapt on"
        adapted = adapt_params(params, data.train, have, steps, self.conf.cpu_seconds_per_round)
        candidate = export_onnx(adapted, have, {"training": "federated, then adapted on this gateway",
                                                "adapted_from": hashlib.sha256(self.delivered).hexdigest()})
        calendar = self.calendar()
        before = score(Forecaster.from_bytes(self.delivered), data.history, data.holdout_from, calendar)
        after = score(Forecaster.from_bytes(candidate), data.history, data.holdout_from, calendar)
        mae_before, mae_after = (float(np.mean(list(r.model_mae.values()))) for r in (before, after))
        if not mae_after < mae_before:
            return False, f"adapted held-out MAE {mae_after:.3f} does not beat {mae_before:.3f}"
        ok, why = self.install(candidate, hashlib.sha256(candidate).hexdigest(), None,
                               hashlib.sha256(self.delivered).hexdigest())
        return ok, (f"adapted held-out MAE {mae_after:.3f} < {mae_before:.3f}" if ok else why)

    def mix(self, adapt_steps: int, local_steps: int) -> tuple[bool, str]:
        """Serve this gateway's own model mixed with the delivered one (see
        :mod:`edge_agent.federation.personal`): the weight chosen on the held-out days with both
        trained before them, then both trained on every day and blended. Returns whether the mixture
        is now served, and why."""
        if self.delivered is None or self.install is None:
            return False, "no federated model delivered"
        _lower_priority(self.conf.nice)
        try:
            params, have = params_from_onnx(self.delivered)
            start, start_horizons = params_from_onnx(LOCAL_START_PATH.read_bytes())
        except (OSError, ValueError) as exc:
            return False, f"no mixture: {exc}"
        if start_horizons != have:
            return False, f"no mixture: the public start forecasts {start_horizons}, the delivered model {have}"
        version = version_of_width(params[0].shape[0])
        before = self.data(have, version=version)
        if before.train.groups < 4:
            return False, "too little history to mix on"
        every = self.data(have, version=version, every_day=True)
        cpu = self.conf.cpu_seconds_per_round
        key = (before.stamp, have, version, local_steps)
        if self.local is None or self.local.key != key:
            start = widen(start, version)
            self.local = KeptLocal(key, train_alone(start, before.train, have, local_steps, cpu),
                                   train_alone(start, every.train, have, local_steps, cpu))
        fed_before = adapt_params(params, before.train, have, adapt_steps, cpu)
        try:
            rows = validation_rows(before.history, before.holdout_from, datetime.max, have, self.calendar(), version)
        except HistoryError as exc:
            return False, f"no mixture: {exc}"
        weight, errors = choose_weight(self.local.before, fed_before, rows)
        mae_delivered = mixture_errors(self.local.before, params, rows, (0.0,))[0.0]
        if not errors[weight] < mae_delivered:
            return False, f"mixed held-out MAE {errors[weight]:.3f} does not beat the delivered {mae_delivered:.3f}"
        mixture = Mixture(self.local.every, adapt_params(params, every.train, have, adapt_steps, cpu), weight,
                          errors, mae_delivered)
        origin = hashlib.sha256(self.delivered).hexdigest()
        candidate = export_onnx(blend(mixture.local, mixture.federated, weight), have, {
            "training": "federated, mixed with this gateway's own model", "adapted_from": origin,
            "mixture_weight": f"{weight:.2f}"})
        ok, why = self.install(candidate, hashlib.sha256(candidate).hexdigest(), None, origin)
        if ok:
            self.mixture = mixture
        return ok, (f"mixed (weight {weight:.2f} on this gateway's own model): held-out MAE {errors[weight]:.3f} "
                    f"< {mae_delivered:.3f}" if ok else why)


def delivered_signature(manifest: object) -> dict[str, Any] | None:
    """The ``signature`` of the manifest the server sends with a model (JSON text), or None."""
    if not isinstance(manifest, str) or not manifest:
        return None
    try:
        doc = json.loads(manifest)
    except ValueError:
        log.warning("the delivered model's manifest is not JSON; treating the model as unsigned")
        return None
    signature = doc.get("signature") if isinstance(doc, dict) else None
    return signature if isinstance(signature, dict) else None


def install_checked(data: bytes, sha256: str, signature: Mapping[str, Any] | None, adapted_from: str | None, *,
                    check: Callable[[str, int, Mapping[str, Any] | None], str | None],
                    swap: Callable[[bytes, str], SwapResult],
                    audit: Callable[[dict[str, Any]], None]) -> tuple[bool, str]:
    """How a gateway installs a federated model: the trust check, then the slot's checked swap, audited.

    ``check(sha256, size, signature)`` is the gateway's signed-artefact check (the signer's key id;
    TrustError when refused, which it records in the audit log itself); ``swap`` the model slot's
    ``try_swap``; ``audit`` records the outcome of an install that got past the check.

    A delivered model must carry a ``model-publisher`` signature over its own digest and size
    (where the site's ``[security]`` requires signatures). A model adapted on this gateway
    (``adapted_from``) is fitted here, from a delivered model that passed that check, on the
    gateway's own history: no publisher has seen it, so it carries no publisher signature; it is
    recorded with the digest of the delivered model it came from.
    """
    actual = hashlib.sha256(data).hexdigest()
    record: dict[str, Any] = {"sha256": actual, "size": len(data),
                              "source": "federation" if adapted_from is None else "federation, adapted on this gateway"}
    if sha256.lower() != actual:
        why = f"the model's SHA-256 is {actual[:12]}, not the announced {sha256[:12]}"
        audit({**record, "ok": False, "reason": why})
        return False, why
    if adapted_from is None:
        try:
            record["signer"] = check(actual, len(data), signature)
        except TrustError as exc:
            return False, f"signature refused ({exc.reason}): {exc}"
    else:
        record["adapted_from"] = adapted_from
    result = swap(data, actual)
    audit({**record, "ok": bool(result.ok), "reason": str(result.reason), "serving": str(result.serving)})
    return bool(result.ok), str(result.reason)


def _release_noise(releases: Mapping[str, ReleasedProfile]) -> float:
    """The noise multiplier of a gateway's release (one draw: the same for every zone)."""
    return max(r.noise_multiplier for r in releases.values())


def _lower_priority(nice: int) -> None:
    """Make the calling thread (Linux: per-thread niceness) yield to the daemon's own work."""
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        if current < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
    except (OSError, AttributeError):
        pass


def check_model_bytes(data: bytes) -> None:
    """Raise ModelError if ``data`` is not a forecast model this gateway can run (used before publishing)."""
    Forecaster.from_bytes(data, "<federated model>")


__all__ = ["GatewayTrainer", "Install", "ModelError", "adaptation", "check_model_bytes", "install_checked"]
