"""A node's answer to SET_OUTPUT is the read-back of a command without a ramp: one exchange, not two.

The arbiter confirms every command by reading the output back. On a node the reply to
SET_OUTPUT already says what the output holds once the command is applied (PROTOCOL.md 5.5), so
asking GET_OUTPUT in the same moment only repeated that answer: at 240 seats the desk lamps and
indicators made about 8 such pairs a second on the line. A command with a ramp is still read
back when its ramp is over, and a node that holds something else than commanded is still a
failure.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from edge_agent.actuation.arbiter import Arbiter, ArbiterEvent, Limits
from firmware_bridge import BridgeLink
from firmware_bridge.codec import Frame, decode_frame, encode_frame
from firmware_bridge.devices import DeskLamp, DimmerChannel
from firmware_bridge.exchange import LoopClock
from firmware_bridge.messages import MsgType, OutputState
from rules.state import Intent, IntentKind, Priority
from simulator.nodes import SimNode
from simulator.nodes_line import SimLine

from .harness import on_line

LAMP, LIGHT = IntentKind.DESK_LAMP, IntentKind.LIGHT_LEVEL


def heard(line: SimLine) -> list[tuple[int, int]]:
    return [(frame.dst, frame.type) for _, frame in line.trace or []]


async def desk_lamp_arbiter(link: BridgeLink) -> tuple[Arbiter, list[ArbiterEvent]]:
    """Desk node 5's lamp 2 behind an arbiter with no rate limit, and the events it reports."""
    await link.hello(5)
    events: list[ArbiterEvent] = []
    lamp = DeskLamp(link, 5, 2)
    arbiter = Arbiter({("desk-1", LAMP): lamp}, LoopClock(), limits={"desk-1": Limits(min_interval_s=0.0)},
                      on_event=events.append)
    return arbiter, events


def test_a_command_without_a_ramp_is_confirmed_by_the_nodes_answer() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        arbiter, events = await desk_lamp_arbiter(link)
        line.trace.clear()  # type: ignore[union-attr]
        await arbiter.submit([Intent("desk-1", LAMP, 0.4, priority=Priority.AUTOMATION, rule_id="r")])
        await arbiter.tick()
        assert heard(line) == [(5, MsgType.SET_OUTPUT)]  # before: a GET_OUTPUT right after it
        assert [(e.kind, e.new) for e in events] == [("actuation", 0.4)]
        assert line.node(5).lamps[2].target == 400

    on_line(scenario, [SimNode(5)], trace=True)


def test_a_ramp_is_still_read_back_when_it_is_over() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        await link.hello(101)
        events: list[ArbiterEvent] = []
        dimmer = DimmerChannel(link, 101, 0)
        arbiter = Arbiter({("L1", LIGHT): dimmer}, LoopClock(), limits={"L1": Limits(min_interval_s=0.0, ramp_s=1.0)},
                          on_event=events.append)
        line.trace.clear()  # type: ignore[union-attr]
        await arbiter.submit([Intent("L1", LIGHT, 0.7, priority=Priority.AUTOMATION, rule_id="r")])
        await arbiter.tick()
        assert heard(line) == [(101, MsgType.SET_OUTPUT)] and not events  # ramping
        await asyncio.sleep(1.1)
        await arbiter.tick()
        assert heard(line) == [(101, MsgType.SET_OUTPUT), (101, MsgType.GET_OUTPUT)]
        assert [(e.kind, e.new) for e in events] == [("actuation", 0.7)]

    on_line(scenario, [SimNode(101, "dimmer")], trace=True)


def test_a_node_that_answers_with_something_else_than_commanded_is_a_failure() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        arbiter, events = await desk_lamp_arbiter(link)
        node = line.node(5)
        real = node.receive

        def clamped(block: bytes, now: float | None = None, *, decoded: Frame | None = None) -> bytes | None:
            out = real(block, now, decoded=decoded)
            if out is None:
                return None
            reply = decode_frame(out[:-1])
            if reply.type != MsgType.SET_OUTPUT:
                return out
            state = OutputState.parse(reply.payload)  # a lamp that holds 10 % whatever it is told
            clamp = OutputState(state.channel, state.function, 100, 100, state.flags)
            return encode_frame(replace(reply, payload=clamp.pack()))

        node.receive = clamped  # type: ignore[method-assign]
        await arbiter.submit([Intent("desk-1", LAMP, 0.4, priority=Priority.AUTOMATION, rule_id="r")])
        await arbiter.tick()
        assert not [e for e in events if e.kind == "actuation"]
        assert any(e.kind == "output_failed" and "read back 0.1" in e.detail for e in events)

    on_line(scenario, [SimNode(5)], trace=True)
