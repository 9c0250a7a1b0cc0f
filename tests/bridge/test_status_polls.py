"""How often a watched node is asked its STATUS: less while its other replies show it alive."""

from __future__ import annotations

import asyncio

from firmware_bridge import BridgeLink
from firmware_bridge.messages import MsgType
from simulator.nodes import SimNode
from simulator.nodes_line import SimLine

from .harness import on_line


def _statuses(line: SimLine, node: int, since: float) -> int:
    return sum(1 for t, f in line.trace or [] if f.dst == node and f.type == MsgType.STATUS and t >= since)


async def _read_block_every_s(link: BridgeLink, node: int, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        await link.read_sensor(node, 0)
        await asyncio.sleep(1.0)


def test_a_busy_node_is_asked_its_status_every_status_period_and_a_quiet_one_every_poll() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        link.watch(3, 1.0)  # its sensor block is read every second
        link.watch(4, 1.0)  # nothing else is asked of it
        await asyncio.sleep(3)
        since = asyncio.get_running_loop().time()
        await _read_block_every_s(link, 3, 20)
        assert _statuses(line, 4, since) >= 19  # every poll
        assert 3 <= _statuses(line, 3, since) <= 5  # one poll in five: every 5 s
        assert link.registry.nodes[3].health == "ok"

    on_line(scenario, [SimNode(3), SimNode(4)], trace=True)


def test_a_reboot_of_a_busy_node_is_noticed_within_the_status_period() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        noticed = asyncio.Event()
        link.add_listener(lambda e: e.kind == "reboot" and noticed.set())
        link.watch(5, 1.0)
        reader = asyncio.ensure_future(_read_block_every_s(link, 5, 30))
        await asyncio.sleep(4)
        first = link.registry.nodes[5].boot_id
        line.node(5).reboot(silent_s=0.0)
        rebooted_at = asyncio.get_running_loop().time()
        await noticed.wait()
        assert asyncio.get_running_loop().time() - rebooted_at <= 5.0 + 1.0  # status period + one poll
        assert link.registry.nodes[5].boot_id != first
        await reader

    on_line(scenario, [SimNode(5)], trace=True)


def test_status_every_poll_when_the_status_period_is_the_poll_interval() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        link.watch(6, 1.0)
        await asyncio.sleep(2)
        since = asyncio.get_running_loop().time()
        await _read_block_every_s(link, 6, 10)
        assert _statuses(line, 6, since) >= 9

    on_line(scenario, [SimNode(6)], trace=True, status_every_s=1.0)
