"""A desk's LOAD_STEP event through edge_agent.desks: the desk's load cell and the thermopile over
its seat are read at once, and a look that fails is logged rather than lost as a task nobody reads."""

from __future__ import annotations

import asyncio
import logging
import tomllib
from typing import Any

import pytest

from edge_agent.config import parse_config
from edge_agent.desks import DeskInputs
from firmware_bridge.link import NodeEvent
from simulator.floorgen import floor_toml


class _Floor:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.steps: list[tuple[str, float]] = []

    def on_desk_step(self, seat: str, t: float) -> None:
        if self.fail:
            raise RuntimeError("seat model broke")
        self.steps.append((seat, t))

    def seat_status(self, seat: str) -> Any:
        return None


class _Controller:
    state = None

    def wake(self) -> None:
        pass

    def seat_news(self) -> None:
        pass


def _first_load_cell(cfg: Any) -> Any:
    return next(s for s in cfg.sensors if s.kind == "hx711")


@pytest.mark.parametrize("fail", [False, True])
def test_a_load_step_reads_the_desk_and_its_thermopile_or_logs_why_not(
    fail: bool, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = parse_config(tomllib.loads(floor_toml()))
    cell = _first_load_cell(cfg)
    seat = cell.seats[0]
    over = {s.id for s in cfg.sensors if s.kind == "amg8833" and seat in s.seats}
    read: list[str] = []

    async def read_now(sensor_id: str) -> bool:
        read.append(sensor_id)
        return True

    async def scenario() -> None:
        desks = DeskInputs(cfg, _Floor(fail), _Controller(), read_now=read_now)  # type: ignore[arg-type]
        channel = int(cell.settings.get("channel", 0))
        desks.on_node_event(NodeEvent(node=cell.node, kind="load_step", channel=channel, t=12.0))
        for _ in range(5):
            await asyncio.sleep(0)
        assert desks.load_steps == 1

    with caplog.at_level(logging.ERROR, logger="edge_agent.desks"):
        asyncio.run(scenario())
    if fail:
        assert read == []
        logged = [r.getMessage() for r in caplog.records]
        assert [m for m in logged if "seat model broke" in m], logged
    else:
        assert set(read) == {cell.id, *over} and over
        assert not caplog.records
