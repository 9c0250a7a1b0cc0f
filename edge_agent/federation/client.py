"""The gateway's Flower client, and the daemon's training window.

:func:`run_client` connects one :class:`~edge_agent.federation.trainer.GatewayTrainer` to a Flower
server and blocks until the server ends the session; the daemon runs it in a worker thread
(:func:`federation_loop`), once a day inside ``[federation] window``, so training never competes
with the floor at opening hours. The thread lowers its own priority (``nice``), stops local steps
at ``cpu_seconds_per_round`` of its CPU time, and bounds its data to ``memory_mb``. A delivered
model is installed only after the gateway's signed-artefact check (``[security]``: a
``model-publisher`` signature in the server's manifest), and every install or refusal is audited.

``mods`` are Flower client mods (``ClientApp(mods=...)``): the tests use one to record every
message the gateway sends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_agent.federation import flower
from edge_agent.federation.trainer import GatewayTrainer, install_checked
from edge_agent.forecast_config import FederationConf
from models.errors import FederationError, HistoryError

if TYPE_CHECKING:
    from edge_agent.assembly import Gateway
    from edge_agent.daemon import Daemon

log = logging.getLogger("edge_agent.federation")


def flower_client(trainer: GatewayTrainer) -> Any:
    """A Flower ``Client`` around ``trainer`` (NumPy parameters, scalar metrics)."""
    flower()
    from flwr.client import NumPyClient

    class ForecastClient(NumPyClient):
        def get_parameters(self, config: dict[str, Any]) -> list[np.ndarray[Any, Any]]:
            raise FederationError("the server holds the model; a gateway never initialises it")

        def fit(self, parameters: list[Any], config: dict[str, Any]) -> tuple[list[Any], int, dict[str, Any]]:
            try:
                return trainer.fit([np.asarray(p, np.float32) for p in parameters], config)
            except HistoryError as exc:
                log.warning("federated round skipped: %s", exc)
                return parameters, 0, {"refused": 1, "steps": 0}

        def evaluate(self, parameters: list[Any], config: dict[str, Any]) -> tuple[float, int, dict[str, Any]]:
            try:
                return trainer.evaluate([np.asarray(p, np.float32) for p in parameters], config)
            except HistoryError as exc:
                log.warning("federated evaluation skipped: %s", exc)
                return 0.0, 0, {"rows": 0}

    return ForecastClient().to_client()


def run_client(trainer: GatewayTrainer, conf: FederationConf, *, mods: Sequence[Callable[..., Any]] = (),
               max_wait_s: float | None = 60.0) -> None:
    """Take part in one federation session (blocking; run it in a worker thread)."""
    flower()
    from flwr.clientapp import ClientApp
    from flwr.compat.client.app import start_client_internal

    client = flower_client(trainer)
    app = ClientApp(client_fn=lambda _context: client, mods=list(mods))
    root = conf.tls.ca_file.read_bytes() if conf.tls is not None else None
    try:
        start_client_internal(
            server_address=conf.server, node_config={}, load_client_app_fn=lambda *_: app,
            root_certificates=root, insecure=root is None, transport="grpc-bidi",
            max_retries=None, max_wait_time=max_wait_s,
        )
    except Exception as exc:  # gRPC and Flower raise their own types; the daemon must see one of ours
        raise FederationError(f"federation with {conf.server} failed: {type(exc).__name__}: {exc}") from exc


def next_window(now: datetime, window: tuple[str, str]) -> datetime:
    """The next start of the daily training window at or after ``now`` (local wall time)."""
    start = datetime.combine(now.date(), time.fromisoformat(window[0]))
    end = datetime.combine(now.date(), time.fromisoformat(window[1]))
    if end <= start:
        end += timedelta(days=1)
    if start <= now < end:
        return now
    return start if now < start else start + timedelta(days=1)


async def federation_loop(daemon: Daemon, gw: Gateway) -> None:
    """Once a day in the training window, join the federation with this gateway's history.

    Without the ``federation`` extra it logs why once and ends (the rest of the gateway runs on).
    """
    from edge_agent.history import FILE_NAME, HistoryStore

    try:
        flower()
    except FederationError as exc:
        log.error("[federation] enabled = true, but %s", exc)
        return

    conf = daemon.cfg.federation
    capacities = {z.id: float(len(daemon.cfg.seats_in(z.id))) for z in daemon.cfg.zones if daemon.cfg.seats_in(z.id)}

    def load_history() -> dict[str, list[tuple[datetime, float]]]:
        store = HistoryStore(daemon.state_dir / FILE_NAME, readonly=True)
        try:
            return store.observations()
        finally:
            store.close()

    def install(data: bytes, sha256: str, signature: Mapping[str, Any] | None,
                adapted_from: str | None) -> tuple[bool, str]:
        # The signed-artefact check of update_model, then the slot's swap; both outcomes audited.
        return install_checked(
            data, sha256, signature, adapted_from,
            check=lambda sha, size, sig: daemon.check_artefact("model", sha, size, dict(sig) if sig else None,
                                                               actor="federation"),
            swap=gw.model.try_swap, audit=lambda record: daemon.audit("model", record, actor="federation"),
        )

    def calendar() -> Any:
        return gw.calendar.calendar if gw.calendar is not None else None

    trainer = GatewayTrainer(conf, load_history, calendar, Path(daemon.state_dir), capacities=capacities,
                             install=install)
    while True:
        now = gw.controller.wall().replace(tzinfo=None)
        wait = (next_window(now, conf.window) - now).total_seconds()
        await daemon.clock.sleep(max(0.0, wait))
        log.info("joining the federation at %s", conf.server)
        installed = len(trainer.installed)
        try:
            await asyncio.to_thread(run_client, trainer, conf, max_wait_s=600.0)
            log.info("federation session over; installed: %s", trainer.installed[-1:] or "nothing")
            if len(trainer.installed) > installed:
                daemon.publish_event("model_updated", {"ok": True, "serving": gw.model.serving,
                                                       "source": "federation"})
            if (conf.adapt_steps > 0 or conf.local_steps > 0) and trainer.delivered is not None:
                # With local_steps, adapt() serves the delivered model mixed with this gateway's own one.
                served, why = await asyncio.to_thread(trainer.adapt, conf.adapt_steps)
                log.info("local adaptation of the federated model: %s (%s)", "served" if served else "not served", why)
                if served:
                    source = ("federation, mixed with this gateway's own model" if conf.local_steps > 0
                              else "federation, adapted on this gateway")
                    daemon.publish_event("model_updated", {"ok": True, "serving": gw.model.serving, "source": source})
        except FederationError as exc:
            log.warning("%s", exc)
        await daemon.clock.sleep(6 * 3600.0)  # at most one session per window
