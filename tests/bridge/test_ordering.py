"""Ordering and idempotence under loss: no retry runs after a newer command to the same output, and a
tunnelled I2C transaction (not idempotent) is never executed twice."""

from __future__ import annotations

import asyncio

import pytest

from firmware_bridge import BridgeLink
from firmware_bridge.messages import CommandSuperseded, MsgType, OutputFunction
from simulator.nodes import SimNode
from simulator.nodes_line import FrameFault, LineFaults, SimLine

from .fakes import RegisterFile
from .harness import on_line

LAMP = OutputFunction.LAMP


@pytest.mark.parametrize("lost", ["reply", "request"])
def test_retry_of_an_old_command_never_overtakes_a_newer_one(lost: str) -> None:
    """The trace from the field: lamp 0 (its reply or request lost), lamp 1000 3 ms later."""

    async def scenario(link: BridgeLink, line: SimLine) -> None:
        node = line.node(4)
        line.faults.script.append(FrameFault(lost, "drop", node=4, type=MsgType.SET_OUTPUT))  # type: ignore[arg-type]
        old = asyncio.ensure_future(link.set_output(4, 0, LAMP, 0))
        await asyncio.sleep(0.003)
        new = await link.set_output(4, 0, LAMP, 1000)
        assert new.target == 1000
        with pytest.raises(CommandSuperseded):
            await old
        await asyncio.sleep(0.5)  # nothing still queued may move the lamp afterwards
        assert round(node.lamps[0].target) == 1000
        assert [a[3] for a in node.applied][-1] == 1000
        assert [a[3] for a in node.applied] == ([0, 1000] if lost == "reply" else [1000])

    on_line(scenario, [SimNode(4)])


def test_commands_to_other_outputs_are_not_superseded() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        line.faults.script.append(FrameFault("reply", "drop", node=4, type=MsgType.SET_OUTPUT))
        lamp0 = asyncio.ensure_future(link.set_output(4, 0, LAMP, 300))
        await asyncio.sleep(0.003)
        await link.set_output(4, 1, LAMP, 600)  # another desk's lamp
        await link.set_output(4, 0, OutputFunction.INDICATOR, 2)  # the same desk's indicator
        assert (await lamp0).target == 300
        node = line.node(4)
        assert (round(node.lamps[0].target), round(node.lamps[1].target), node.indicators[0]) == (300, 600, 2)

    on_line(scenario, [SimNode(4)])


def test_desk_move_stop_and_preset_are_one_output() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        line.faults.script.append(FrameFault("request", "drop", node=2, type=MsgType.SET_OUTPUT))
        move = asyncio.ensure_future(link.set_output(2, 1, OutputFunction.DESK_MOVE, 1200))
        await asyncio.sleep(0.003)
        await link.set_output(2, 1, OutputFunction.DESK_STOP, 0)
        with pytest.raises(CommandSuperseded):
            await move
        await asyncio.sleep(1.0)
        assert not line.node(2).desk(1).moving

    on_line(scenario, [SimNode(2)])


def test_many_commands_under_random_loss_end_in_the_newest_value() -> None:
    """A burst of commands to one lamp on a line that drops, damages, duplicates and delays frames."""
    faults = LineFaults(frame_drop_rate=0.1, frame_damage_rate=0.1, frame_duplicate_rate=0.1, frame_delay_rate=0.1,
                        late_s=0.004)  # fmt: skip

    async def scenario(link: BridgeLink, line: SimLine) -> None:
        tasks = []
        for i in range(40):
            tasks.append(asyncio.ensure_future(link.set_output(6, 0, LAMP, 25 * i, deadline_s=3.0)))
            await asyncio.sleep(0.002)
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert not isinstance(outcomes[-1], BaseException), outcomes[-1]
        assert all(isinstance(o, CommandSuperseded) or not isinstance(o, BaseException) for o in outcomes), outcomes
        await asyncio.sleep(1.0)
        node = line.node(6)
        assert round(node.lamps[0].target) == 975
        executed = [a[3] for a in node.applied]
        assert executed == sorted(executed), "a command ran after a newer one"
        assert sum(line.record.frame_faults.values()) > 10

    on_line(scenario, [SimNode(6)], faults=faults)


def test_a_tunnelled_read_is_not_executed_twice_when_its_reply_is_lost() -> None:
    """A read without a register write continues at the part's pointer: running it twice skips data."""
    device = RegisterFile(0x48)

    async def scenario(link: BridgeLink, line: SimLine) -> None:
        await link.i2c(3, 0x48, b"\x10", 0)  # pointer to 0x10
        transfers = device.transfers
        line.faults.script.append(FrameFault("reply", "drop", node=3, type=MsgType.I2C))
        read = asyncio.ensure_future(link.i2c(3, 0x48, b"", 2))
        await asyncio.sleep(0.001)
        lamp = asyncio.ensure_future(link.set_output(3, 0, LAMP, 500))  # more urgent, same node
        assert await read == (0, bytes([0x10, 0x11]))
        await lamp
        assert device.transfers == transfers + 1 and device.pointer == 0x12
        assert line.node(3).counters["dup"] == 1  # the retry was answered from the node's cache

    on_line(scenario, [SimNode(3, i2c=device)])
