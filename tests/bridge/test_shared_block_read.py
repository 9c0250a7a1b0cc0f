"""A node's sensor block read shared by several desks: when its callers have gone before it fails, and
when a load step prompts a read while a young read of the block is kept.

The read is shielded so that one desk's cancelled poll does not cut it short for the others. A reload
cancels every poller and then closes the link: the read fails with nobody awaiting it, and its error
must not surface as asyncio's "Task exception was never retrieved" traceback in the daemon's log.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from drivers.errors import BusTimeoutError
from drivers.hx711 import LOAD_STEP_SETTLED_S
from drivers.kinds import PartSpec, part_kind
from firmware_bridge import BridgeLink
from firmware_bridge.devices import BridgeSensorBlocks
from simulator.nodes import SimNode
from simulator.nodes_line import SimLine
from simulator.nodes_loadcell import SETTLE_BAND_G, SETTLE_S

from .harness import on_line


def test_a_shared_read_that_fails_after_its_callers_left_reports_no_lost_error() -> None:
    lost: list[dict[str, Any]] = []

    async def scenario(link: BridgeLink, line: SimLine) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: lost.append(context))
        blocks = BridgeSensorBlocks(link, 9)  # no node 9 on the line: the read times out
        caller = asyncio.ensure_future(blocks.read_block(1))
        await asyncio.sleep(0.001)
        caller.cancel()  # the poller stopped by a reload
        with pytest.raises(asyncio.CancelledError):
            await caller
        shared = blocks._reading[1]
        for _ in range(1000):  # wait for its end without looking at its result, which would collect it
            if shared.done():
                break
            await asyncio.sleep(0.01)
        assert shared.done() and not shared.cancelled()
        del shared, blocks, caller
        gc.collect()

    on_line(scenario, [SimNode(3)])
    assert not [c for c in lost if "never retrieved" in str(c.get("message", ""))], lost


def test_a_caller_still_waiting_gets_the_shared_reads_error() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        blocks = BridgeSensorBlocks(link, 9)
        first = asyncio.ensure_future(blocks.read_block(1))
        second = asyncio.ensure_future(blocks.read_block(1))
        for caller in (first, second):
            with pytest.raises(BusTimeoutError, match="node9: sensor block 1: node did not answer"):
                await caller

    on_line(scenario, [SimNode(3)])


class _NodePorts:
    """The one port a desk node's load cell asks for."""

    def __init__(self, blocks: BridgeSensorBlocks) -> None:
        self.blocks = blocks

    def sensor_blocks(self) -> BridgeSensorBlocks:
        return self.blocks


@pytest.mark.parametrize("poll_s", [1.0, 5.0, 60.0])
def test_the_read_a_load_step_prompts_is_never_answered_from_before_the_load_settled(poll_s: float) -> None:
    """The desks of a node share a read of block 1 for a while; the node raises LOAD_STEP once the
    new load has held within 20 g for LOAD_STEP_SETTLED_S (PROTOCOL.md 5.7). The driver keeps a block
    no longer than that, so the read the step prompts shows the settled load even when polls of the
    node's other desks fell all through the settling."""
    assert SETTLE_S == LOAD_STEP_SETTLED_S  # the simulated firmware's window is the protocol's

    async def scenario(link: BridgeLink, line: SimLine) -> None:
        loop = asyncio.get_running_loop()
        spec = PartSpec("weight-desk", node=10, poll_interval_s=poll_s, settings={"channel": 3})
        driver = part_kind("hx711").build(_NodePorts(BridgeSensorBlocks(link, 10)), link.clock, spec)
        assert driver.max_age_s <= LOAD_STEP_SETTLED_S
        steps: list[float] = []
        link.add_listener(lambda e: steps.append(loop.time()) if e.kind == "load_step" else None)
        link.watch(10, 1.0)
        await asyncio.sleep(0.5)
        empty = await driver.read_grams()
        line.node(10).set_desk_load(3, 2200.0)
        while not steps:  # the other desks' polls, every 0.1 s through the settling
            await driver.read_grams()
            await asyncio.sleep(0.1)
            assert loop.time() < 10.0
        prompted = await driver.read_grams()
        assert prompted - empty == pytest.approx(2200.0, abs=SETTLE_BAND_G), (empty, prompted)

    on_line(scenario, [SimNode(10, revision=4, load_cells=True)])
