"""Gateways for federation tests: each a state directory with a durable history of its own floor."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from edge_agent.config import SiteConfig, parse_config
from edge_agent.history import FILE_NAME, HistoryStore
from simulator.demand import generate_history

START = date(2024, 9, 30)
DAYS = 35


def floor(name: str, kinds: list[str], seats: int) -> SiteConfig:
    """A small floor whose zones have the given kinds (each kind has its own demand shape)."""
    square = [[0, 0], [10, 0], [10, 4], [0, 4]]
    zones = [{"id": f"{name}-{i}-{kind}", "kind": kind, "polygon": square} for i, kind in enumerate(kinds)]
    seat_rows = [{"id": f"{name}-s{z}-{i}", "zone": zones[z]["id"], "x": i, "y": z} for z in range(len(kinds))
                 for i in range(seats)]
    return parse_config({"site": {"id": "lib", "floor": name, "gateway": f"gw-{name}"}, "zones": zones,
                         "seats": seat_rows})


def gateway_state(root: Path, cfg: SiteConfig, seed: int) -> Path:
    """A state directory whose history.sqlite holds five simulated weeks of ``cfg``'s zones."""
    state = root / cfg.site.gateway
    store = HistoryStore.in_state_dir(state)
    store.record_many((t, zone, float(count)) for t, zone, count in generate_history(cfg, START, DAYS, seed))
    store.close()
    return state


def history_reader(state: Path) -> Callable[[], dict[str, list[Any]]]:
    """What a gateway's trainer is given to read its history: the store opened read-only per call."""

    def load() -> dict[str, list[Any]]:
        store = HistoryStore(state / FILE_NAME, readonly=True)
        try:
            return store.observations()
        finally:
            store.close()

    return load
