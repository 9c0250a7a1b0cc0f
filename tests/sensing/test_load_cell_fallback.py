"""A desk node of revision 4 reports its desks' load steps itself (LOAD_STEP), so the gateway reads
its load-cell block once a minute as a fallback; a node of revision 3 has no such event and is
still read at the sensor's own period (5 s). The daemon's parts on a virtual-time loop: the
simulated nodes on a memory RS-485 line, the real link, hardware assembly, pollers and desk inputs."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path
from typing import Any

from edge_agent.config import parse_config
from edge_agent.desks import DeskInputs
from edge_agent.pollers import SensorPollers
from edge_agent.sensing.floor import FloorModel
from edge_agent.simulate import build_nodes
from edge_agent.supervisor import Supervisor
from firmware_bridge.messages import LOAD_STEP_EVENTS_FROM, MsgType
from firmware_bridge.registry import NodeRecord, NodeRegistry
from simulator.clock import VirtualClock
from simulator.floorgen import floor_toml
from simulator.hw.floor import build_simulated_hardware
from simulator.nodes import SimNode
from simulator.nodes_line import SimLine
from tests.drivers.conftest import on_virtual_time
from tests.sensing.memory_line import hardware_on_memory_line

NEW, OLD = 1, 2  # the floor's two desk nodes: revision 4 and revision 3


class _Controller:
    state = None

    def __init__(self) -> None:
        self.wakes = 0

    def wake(self) -> None:
        self.wakes += 1

    def seat_news(self) -> None:
        self.wakes += 1


def _block_reads(line: SimLine, node: int, since: float, until: float) -> int:
    return sum(1 for t, f in line.trace or [] if f.dst == node and f.type == MsgType.READ_SENSOR and since <= t < until)


def test_the_kind_names_the_revision_whose_nodes_report_load_steps() -> None:
    cfg = parse_config(tomllib.loads(floor_toml(zones=1, seats=8)))
    cell = next(s for s in cfg.sensors if s.kind == "hx711")
    assert cell.part.events_from_revision == LOAD_STEP_EVENTS_FROM
    assert cell.poll_interval_s == 5 and cell.part.event_fallback_s == 60


def test_a_revision_4_desk_node_is_read_once_a_minute_and_its_load_step_still_reaches_the_seat(
    tmp_path: Path,
) -> None:
    cfg = parse_config(tomllib.loads(floor_toml(zones=1, seats=8)))
    cell = next(s for s in cfg.sensors if s.kind == "hx711" and s.node == NEW and s.settings.get("channel", 0) == 0)
    seat = cell.seats[0]

    async def body(clock: VirtualClock) -> dict[str, Any]:
        hw = build_simulated_hardware(cfg, clock.monotonic)
        nodes = build_nodes(cfg, hw)
        old = nodes[OLD]
        nodes[OLD] = SimNode(OLD, "desk-cluster", i2c=hw.node_buses.get(OLD), seed=OLD, revision=3, load_cells=True)
        assert nodes[NEW].revision == 4 and old.revision == 4
        async with hardware_on_memory_line(cfg, hw, nodes.values(), clock, tmp_path, trace=True) as (hardware, line):
            assert hardware.link is not None
            floor = FloorModel(cfg)
            supervisor = Supervisor()
            pollers = SensorPollers(hardware, floor, clock, supervisor, tag_salt=b"salt")
            controller = _Controller()
            desks = DeskInputs(cfg, floor, controller, read_now=pollers.read_now)  # type: ignore[arg-type]
            hardware.link.add_listener(desks.on_node_event)
            pollers.start()
            loop = asyncio.get_running_loop()
            await clock.sleep(20.0)  # identified, ok
            since = loop.time()
            await clock.sleep(120.0)
            reads = {n: _block_reads(line, n, since, loop.time()) for n in (NEW, OLD)}
            intervals = {n: pollers.interval(next(s for s in cfg.sensors if s.kind == "hx711" and s.node == n))
                         for n in (NEW, OLD)}
            before = pollers.last[cell.id]
            step_at = loop.time()
            nodes[NEW].set_desk_load(int(cell.settings.get("channel", 0)), 800.0)  # a laptop put down
            await clock.sleep(6.0)
            after = pollers.last[cell.id]
            step_reads = _block_reads(line, NEW, step_at, loop.time())
            load = floor.desk_load(seat)
            await supervisor.stop()
        hw.close()
        return {"reads": reads, "intervals": intervals, "before": before, "after": after, "steps": desks.load_steps,
                "step_at": step_at, "step_reads": step_reads, "load": load}

    got = on_virtual_time(body)
    assert got["intervals"] == {NEW: 60.0, OLD: 5.0}
    assert got["reads"][NEW] <= 3, got["reads"]  # 120 s: twice, at most three times
    assert got["reads"][OLD] >= 22, got["reads"]  # every 5 s: 24
    # The step: the node's event made the gateway read the block at once (one read, not a poll).
    assert got["steps"] == 1
    assert got["step_reads"] >= 1
    assert got["after"].t > got["step_at"]
    assert got["after"].values["mass"] - got["before"].values["mass"] > 700.0, (got["before"], got["after"])
    assert got["load"] is not None and got["load"] > 700.0  # the seat's desk carries it, a minute before the fallback


def test_after_a_restart_the_first_read_comes_within_the_sensors_own_period(tmp_path: Path) -> None:
    """The previous run saved the node as ok at revision 4; the load cells are still read within
    5 s of the start (then once a minute), so the seats do not wait a minute for their desks."""
    cfg = parse_config(tomllib.loads(floor_toml(zones=1, seats=8)))
    saved = NodeRegistry(tmp_path)
    saved.nodes[NEW] = NodeRecord(NEW, health="ok", revision=4, boot_id=1234)
    saved.save()

    async def body(clock: VirtualClock) -> float | None:
        hw = build_simulated_hardware(cfg, clock.monotonic)
        nodes = build_nodes(cfg, hw).values()
        async with hardware_on_memory_line(cfg, hw, nodes, clock, tmp_path, trace=True) as (hardware, line):
            assert hardware.link is not None and hardware.link.registry.nodes[NEW].health == "ok"
            supervisor = Supervisor()
            pollers = SensorPollers(hardware, FloorModel(cfg), clock, supervisor, tag_salt=b"salt")
            started = asyncio.get_running_loop().time()
            pollers.start()
            await clock.sleep(10.0)
            first = next((t - started for t, f in line.trace or [] if f.dst == NEW and f.type == MsgType.READ_SENSOR),
                         None)
            await supervisor.stop()
        hw.close()
        return first

    first = on_virtual_time(body)
    assert first is not None and first <= 5.0, first
