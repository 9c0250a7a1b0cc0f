"""The serial path end to end: the gateway's link on a real tty (a pty slave), the nodes in their own
process behind it (``simulator.nodes_process``), frames dropped, damaged, duplicated and delayed."""

from __future__ import annotations

import asyncio
import random

import pytest

from drivers.errors import BridgeError
from firmware_bridge import BridgeI2CBus, BridgeLink, DeskLamp, SerialTransport
from firmware_bridge.messages import CommandSuperseded, OutputFunction

from .harness import NodeProcess

LAMP = OutputFunction.LAMP
pytestmark = pytest.mark.slow


def link_on(path: str) -> BridgeLink:
    # A generous reply margin: on a loaded machine the node process's scheduling jitter is milliseconds.
    return BridgeLink(SerialTransport(path, 115200), reply_margin_s=0.03)


async def test_commands_hold_on_a_line_with_every_kind_of_frame_fault() -> None:
    rates = ("--drop", "0.04", "--damage", "0.04", "--duplicate", "0.04", "--delay", "0.04", "--delay-s", "0.02")
    with NodeProcess("1:desk-cluster", "2:desk-cluster", "101:dimmer", args=(*rates, "--seed", "3")) as nodes:
        rng = random.Random(5)
        last: dict[tuple[int, int, int], int] = {}
        async with link_on(nodes.path) as link:
            for n in (1, 2, 101):
                link.watch(n, 0.3)
            pending = []
            for _ in range(60):
                node = rng.choice((1, 2, 101))
                fn = OutputFunction.LEVEL if node == 101 else rng.choice((LAMP, OutputFunction.INDICATOR))
                ch = rng.randrange(4)
                value = rng.randrange(5) if fn == OutputFunction.INDICATOR else rng.randrange(0, 1001, 50)
                pending.append(((node, ch, int(fn)), value, asyncio.ensure_future(
                    link.set_output(node, ch, fn, value, deadline_s=3.0))))  # fmt: skip
                await asyncio.sleep(rng.uniform(0.0, 0.02))
            for key, value, task in pending:
                try:
                    await task
                except CommandSuperseded:
                    continue
                last[key] = value
            await asyncio.sleep(0.5)
        record = nodes.ask("record")
        for (node, ch, fn), value in last.items():
            state = nodes.state(node)
            held = {OutputFunction.LEVEL: state["level_targets"], LAMP: state["lamp_targets"],
                    OutputFunction.INDICATOR: state["indicators"]}[OutputFunction(fn)][ch]  # fmt: skip
            assert held == value, f"node {node} ch {ch} fn {fn}: holds {held}, the newest command was {value}"
        assert {k.split(":")[1] for k in record["frame_faults"]} == {"drop", "damage", "duplicate", "delay"}


async def test_an_old_retry_does_not_overtake_a_newer_command_over_the_tty() -> None:
    with NodeProcess("5:desk-cluster", args=("--fault", "reply:drop:type=SET_OUTPUT:node=5")) as nodes:
        async with link_on(nodes.path) as link:
            old = asyncio.ensure_future(link.set_output(5, 0, LAMP, 0))
            await asyncio.sleep(0.003)
            assert (await link.set_output(5, 0, LAMP, 1000)).target == 1000
            await asyncio.gather(old, return_exceptions=True)
            await asyncio.sleep(0.3)
        state = nodes.state(5)
        assert state["lamp_targets"][0] == 1000
        assert [a[3] for a in state["applied"]][-1] == 1000


async def test_outputs_come_back_after_the_node_process_reboots_a_node() -> None:
    with NodeProcess("5:desk-cluster", "101:dimmer") as nodes:
        async with link_on(nodes.path) as link:
            link.watch(5, 0.2)
            link.watch(101, 0.2)
            await link.hello(5)
            await link.hello(101)
            lamp = DeskLamp(link, 5, 2)
            await lamp.set(0.45)
            await link.set_output(101, 3, OutputFunction.LEVEL, 650)
            before = nodes.state(5)["boot_id"]
            nodes.ask("reboot", 5, 0.3)
            nodes.ask("reboot", 101, 0.3)
            assert nodes.state(5)["lamp_targets"][2] == 0
            loop = asyncio.get_running_loop()
            until = loop.time() + 15
            while not (link.registry.nodes[5].boot_id != before and link.registry.nodes[5].health == "ok"):
                assert loop.time() < until, "node 5 never came back healthy"
                await asyncio.sleep(0.01)
            assert nodes.state(5)["lamp_targets"][2] == 450  # restored before it was called healthy
            while link.registry.nodes[101].health != "ok" or link.registry.nodes[101].reboots < 1:
                assert loop.time() < until, "node 101 never came back healthy"
                await asyncio.sleep(0.01)
            assert nodes.state(101)["level_targets"][3] == 650
            assert lamp.reported == 0.45


async def test_a_tunnelled_read_runs_once_when_its_reply_is_lost_over_the_tty() -> None:
    with NodeProcess("4:desk-cluster:amg8833=0x69") as nodes:
        async with link_on(nodes.path) as link:
            bus = BridgeI2CBus(link, 4)
            await bus.transfer(0x69, b"\x80", 0)  # pointer to the first pixel
            nodes.ask("fault", "reply:drop:type=I2C:node=4")
            read = asyncio.ensure_future(bus.transfer(0x69, b"", 4))  # no register write: continues at the pointer
            await asyncio.sleep(0.001)
            await link.set_output(4, 0, LAMP, 100)
            data = await read
        peek = nodes.ask("peek", 4, "0x69", "0x80", 4)
        assert data.hex() == peek["data"] and peek["pointer"] == 0x84


async def test_a_damaged_reply_is_cut_short_and_busy_is_asked_again_over_the_tty() -> None:
    with NodeProcess("3:desk-cluster:amg8833=0x69", args=("--fault", "reply:damage:type=I2C:node=3")) as nodes:
        async with link_on(nodes.path) as link:
            data = await BridgeI2CBus(link, 3).transfer(0x69, b"\x80", 128)
            assert data.hex() == nodes.ask("peek", 3, "0x69", "0x80", 128)["data"]
            # the damaged reply ended the attempt early: a damaged reply, not a timeout
            assert link.stats.damaged_replies >= 1
            nodes.ask("busy", 3, 0.3)
            assert (await link.set_output(3, 1, LAMP, 250, deadline_s=3.0)).target == 250
            assert link.stats.busy >= 1
        assert nodes.state(3)["lamp_targets"][1] == 250
        assert len(nodes.state(3)["applied"]) == 1


async def test_a_second_master_cannot_open_the_line() -> None:
    with NodeProcess("5:desk-cluster") as nodes:
        async with link_on(nodes.path) as link:
            await link.hello(5)
            with pytest.raises(BridgeError, match="in use"):
                SerialTransport(nodes.path, 115200)
        again = SerialTransport(nodes.path, 115200)  # released when the first closed
        await again.aclose()
