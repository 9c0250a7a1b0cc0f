"""The federation server: Flower's gRPC server and round loop with the forecast's strategy.

Each session runs ``rounds`` training rounds and one delivery round:

1. fit: every gateway trains from the current global parameters (FedAvg over the returned
   parameters, each gateway weighted 1; FedProx's pull when ``prox_mu > 0``);
2. evaluate: every gateway scores the round's model, the model in use (sent along as ONNX bytes)
   and the best naive baseline on its held-out days; the server sums the errors over gateways,
   weighted by rows, and **publishes** the round's model only when it beats the model in use
   (or, with none in use yet, the best baseline);
3. the delivery round sends the published model (ONNX bytes, SHA-256) to every gateway, which
   installs it through its checked, atomic model swap.

Publishing goes through a :class:`Publisher`: the default writes ``model.onnx`` and a manifest
``model.json`` (SHA-256, size, round, held-out errors, privacy spent, and a ``signature`` field
left null). A signing publisher (issue: signed artefacts with a ``model-publisher`` key) fills
that field; gateways receive the manifest with the bytes in the delivery round, so the check can
go where ``update_model`` checks its signature.

Flower's legacy in-process gRPC server (``grpc-bidi``) is used, composed here without Flower's
signal handlers so the server runs in a thread of ``edge-agent federation serve`` or a test.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge_agent.federation import flower
from models import DEFAULT_MODEL_PATH
from models.features import V4, version_of_width
from models.private_profile import profile_start
from models.quantile_mlp import (
    SCOPES,
    Params,
    export_onnx,
    init_params,
    params_from_onnx,
    reads_in_day_only,
    widen,
)

log = logging.getLogger("edge_agent.federation")
START_MODEL_PATH = DEFAULT_MODEL_PATH.with_name("federation_start.onnx")
#: The start of private sessions: reads only the columns DP gateways train (models.quantile_mlp.IN_DAY_FEATURES).
START_IN_DAY_PATH = DEFAULT_MODEL_PATH.with_name("federation_start_in_day.onnx")
#: in-day: the in-day start; profile: the released-profile start (demand-v4, gateways with profile_share > 0);
#: all: gateways without DP.
INPUTS = ("in-day", "profile", "all")


class Publisher(Protocol):
    """Where a model goes when it beats the one in use."""

    def current(self) -> tuple[bytes, dict[str, Any]] | None: ...

    def publish(self, onnx_bytes: bytes, manifest: dict[str, Any]) -> dict[str, Any]: ...


class DirectoryPublisher:
    """Publishes to a directory: ``model.onnx`` and ``model.json`` (written temp-then-rename).

    ``sign`` (bytes -> signature document) is the hook for signed artefacts; without it the
    manifest's ``signature`` is null and gateways that require signatures will refuse the model.
    """

    def __init__(self, directory: Path, sign: Callable[[bytes], dict[str, Any]] | None = None) -> None:
        self.directory = directory
        self.sign = sign

    def current(self) -> tuple[bytes, dict[str, Any]] | None:
        try:
            data = (self.directory / "model.onnx").read_bytes()
            manifest = json.loads((self.directory / "model.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if hashlib.sha256(data).hexdigest() != manifest.get("sha256"):
            log.warning("%s: model.onnx does not match its manifest; treating it as absent", self.directory)
            return None
        return data, manifest

    def publish(self, onnx_bytes: bytes, manifest: dict[str, Any]) -> dict[str, Any]:
        self.directory.mkdir(parents=True, exist_ok=True)
        doc = {**manifest, "sha256": hashlib.sha256(onnx_bytes).hexdigest(), "size": len(onnx_bytes),
               "signature": self.sign(onnx_bytes) if self.sign is not None else None}
        for name, data in (("model.onnx", onnx_bytes), ("model.json", json.dumps(doc, indent=2).encode())):
            tmp = self.directory / f".{name}.tmp"
            tmp.write_bytes(data)
            tmp.replace(self.directory / name)
        return doc


@dataclass
class SessionPlan:
    """What the server asks of gateways (they bound it with their own budgets)."""

    rounds: int = 5
    min_gateways: int = 2
    horizons: tuple[int, ...] = (15, 30, 60)
    steps: int = 100
    batch_groups: int = 32
    learning_rate: float = 0.003
    prox_mu: float = 0.0
    scope: str = "head"  # which parameters gateways train (models.quantile_mlp.trainable)
    # "in-day": start from a model of the in-day columns, the only ones gateways under DP train
    # (they drop the others from whatever they receive); "profile": from the in-day start as a
    # residual over the count now carried by the typed profile (demand-v4), which gateways under DP
    # read from the profile they release (``[federation] profile_share``); "all": gateways without DP.
    inputs: str = "in-day"
    round_timeout_s: float | None = 600.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {self.scope!r}")
        if self.inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {', '.join(INPUTS)}, not {self.inputs!r}")


def starting_point(publisher: Publisher, horizons: tuple[int, ...], seed: int = 0,
                   inputs: str = "in-day") -> tuple[Params, str]:
    """Where a session starts: the published model, else the shipped start (``models/federation_start.onnx``,
    or ``federation_start_in_day.onnx`` for ``inputs="in-day"``, trained on the public demand model), else
    :func:`init_params`; the first with the plan's horizons (and, in-day, reading only in-day columns;
    ``inputs="profile"``: a demand-v4 model reading the in-day and typed-profile columns, the shipped start
    made one by :func:`models.private_profile.profile_start`)."""
    in_day, profile = inputs in ("in-day", "profile"), inputs == "profile"
    candidates: list[tuple[str, bytes]] = []
    current = publisher.current()
    if current is not None:
        candidates.append(("the published model", current[0]))
    start = START_IN_DAY_PATH if in_day else START_MODEL_PATH
    try:
        candidates.append((start.name, start.read_bytes()))
    except OSError:
        pass
    for name, data in candidates:
        try:
            params, have = params_from_onnx(data)
        except ValueError as exc:
            log.info("not starting from %s: %s", name, exc)
            continue
        if have != tuple(horizons):
            log.info("not starting from %s: its horizons %s are not the plan's %s", name, have, horizons)
        elif in_day and not reads_in_day_only(params, profile=True):  # a gateway drops what it may not read
            log.info("not starting from %s: it reads more than the columns gateways under DP train", name)
        elif profile and name == start.name:
            return profile_start(widen(params, V4), horizons), f"{name}, on the released profile"
        elif profile and version_of_width(params[0].shape[0]) != V4:
            log.info("not starting from %s: not a demand-v4 model", name)
        else:
            return params, name
    params = init_params(horizons, seed=seed, in_day=in_day)
    return (profile_start(widen(params, V4), horizons), "a random start") if profile else (params, "a random start")


@dataclass
class SessionReport:
    """What happened: per-round held-out errors, privacy spent, and what was published."""

    rounds: list[dict[str, Any]] = field(default_factory=list)
    published: dict[str, Any] | None = None
    start: str = ""
    final_params: Params | None = None


def make_strategy(plan: SessionPlan, publisher: Publisher, report: SessionReport) -> Any:
    """The forecast's FedAvg (see the module docstring), built when Flower is imported."""
    flower()
    from flwr.common import EvaluateIns, FitIns, ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server.strategy import FedAvg

    delivery = plan.rounds + 1
    start, origin = starting_point(publisher, plan.horizons, plan.seed, plan.inputs)
    report.start = origin
    log.info("federation session starts from %s", origin)

    class ForecastStrategy(FedAvg):
        def __init__(self) -> None:
            super().__init__(
                min_fit_clients=plan.min_gateways, min_evaluate_clients=plan.min_gateways,
                min_available_clients=plan.min_gateways, accept_failures=True,
                initial_parameters=ndarrays_to_parameters(start),
            )
            self.latest: Params | None = None
            self.deliver: tuple[bytes, dict[str, Any]] | None = None

        def _config(self, rnd: int) -> dict[str, Any]:
            return {"round": rnd, "horizons": ",".join(str(h) for h in plan.horizons), "steps": plan.steps,
                    "batch_groups": plan.batch_groups, "learning_rate": plan.learning_rate,
                    "prox_mu": plan.prox_mu, "scope": plan.scope}

        def configure_fit(self, server_round: int, parameters: Any, client_manager: Any) -> list[Any]:
            if server_round >= delivery:
                return []
            clients = client_manager.sample(num_clients=plan.min_gateways, min_num_clients=plan.min_gateways)
            return [(c, FitIns(parameters, self._config(server_round))) for c in clients]

        def aggregate_fit(self, server_round: int, results: list[Any],
                          failures: list[Any]) -> tuple[Any, dict[str, Any]]:
            used = [(c, r) for c, r in results if r.num_examples > 0]
            spent = [float(r.metrics.get("epsilon_total", 0.0)) for _, r in results]
            row: dict[str, Any] = {"round": server_round, "gateways": len(used), "refused": len(results) - len(used),
                                   "failures": len(failures), "epsilon_max": max(spent, default=0.0)}
            report.rounds.append(row)
            if not used:
                return None, {}
            arrays = [parameters_to_ndarrays(r.parameters) for _, r in used]
            mean = [np.mean([a[i] for a in arrays], axis=0).astype(np.float32) for i in range(len(arrays[0]))]
            self.latest = mean
            report.final_params = mean
            return ndarrays_to_parameters(mean), {"epsilon_max": row["epsilon_max"]}

        def configure_evaluate(self, server_round: int, parameters: Any, client_manager: Any) -> list[Any]:
            config = self._config(server_round)
            current = publisher.current()
            if current is not None:
                config["current_model"] = current[0]
            if server_round >= delivery:
                if current is None:
                    return []
                config["install_model"], config["install_sha256"] = current[0], current[1]["sha256"]
                config["install_manifest"] = json.dumps(current[1])
            clients = client_manager.sample(num_clients=plan.min_gateways, min_num_clients=plan.min_gateways)
            return [(c, EvaluateIns(parameters, config)) for c in clients]

        def aggregate_evaluate(self, server_round: int, results: list[Any],
                               failures: list[Any]) -> tuple[Any, dict[str, Any]]:
            rows = sum(int(r.metrics.get("rows", 0)) for _, r in results)
            if rows == 0 or server_round >= delivery:
                return None, {}

            def mean(key: str) -> float | None:
                have = [(float(r.metrics[key]), int(r.metrics.get("rows", 0))) for _, r in results if key in r.metrics]
                total = sum(n for _, n in have)
                return sum(v * n for v, n in have) / total if total else None

            new, base, cur = mean("mae_new"), mean("mae_baseline"), mean("mae_current")
            bar = cur if cur is not None else base
            entry: dict[str, Any] = next((r for r in report.rounds if r["round"] == server_round),
                                         {"round": server_round})
            entry.update(mae_new=new, mae_baseline=base, mae_current=cur, rows=rows)
            if new is not None and bar is not None and new < bar and self.latest is not None:
                data = export_onnx(self.latest, plan.horizons, {
                    "training": "federated", "federated_round": str(server_round),
                    "heldout_mae": f"{new:.4f}", "heldout_baseline_mae": f"{base:.4f}",
                })
                manifest = {"round": server_round, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            "heldout_mae": new, "heldout_baseline_mae": base, "replaced_mae": cur,
                            "epsilon_max": entry.get("epsilon_max", 0.0), "gateways": len(results)}
                report.published = publisher.publish(data, manifest)
                entry["published"] = report.published["sha256"]
                log.info("round %d: published %s (held-out MAE %.3f < %.3f)", server_round,
                         report.published["sha256"][:12], new, bar)
            return new, {"rows": rows}

    return ForecastStrategy()


class FederationServer:
    """Flower's gRPC server and round loop in a thread; ``wait()`` returns the :class:`SessionReport`."""

    def __init__(self, address: str, plan: SessionPlan, publisher: Publisher,
                 certificates: tuple[bytes, bytes, bytes] | None = None) -> None:
        self.address = address
        self.plan = plan
        self.publisher = publisher
        self.certificates = certificates
        self.report = SessionReport()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="federation-server", daemon=True)
        self._grpc: Any = None
        self._listening = threading.Event()

    def start(self) -> FederationServer:
        self._thread.start()
        if not self._listening.wait(30):
            raise TimeoutError("the federation server did not start listening within 30 s")
        if self.error is not None:
            raise self.error
        return self

    def _serve(self) -> None:
        try:
            flower()
            from flwr.server import Server, ServerConfig, SimpleClientManager
            from flwr.server.server import run_fl
            from flwr.server.superlink.fleet.grpc_bidi.grpc_server import start_grpc_server

            manager = SimpleClientManager()
            server = Server(client_manager=manager, strategy=make_strategy(self.plan, self.publisher, self.report))
            self._grpc = start_grpc_server(client_manager=manager, server_address=self.address,
                                           certificates=self.certificates)
            self._listening.set()
            run_fl(server, ServerConfig(num_rounds=self.plan.rounds + 1, round_timeout=self.plan.round_timeout_s))
        except BaseException as exc:
            self.error = exc
            self._listening.set()
        finally:
            if self._grpc is not None:
                self._grpc.stop(grace=1)

    def wait(self, timeout_s: float | None = None) -> SessionReport:
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError("the federation session did not finish in time")
        if self.error is not None:
            raise self.error
        return self.report
