"""A node's sensor block read shared by several desks, when its callers have gone before it fails.

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
from firmware_bridge import BridgeLink
from firmware_bridge.devices import BridgeSensorBlocks
from simulator.nodes import SimNode
from simulator.nodes_line import SimLine

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
