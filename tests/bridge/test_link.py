"""BridgeLink against simulated nodes on the in-memory line, in virtual time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from drivers.errors import BridgeError, NodeTimeoutError
from drivers.ports import IndicatorColour
from firmware_bridge import (
    BridgeLink,
    DeskHeight,
    DeskLamp,
    DimmerChannel,
    NodeEvent,
    NodeNackError,
    NodeRegistry,
    SeatIndicator,
)
from firmware_bridge.codec import Frame, encode_frame
from firmware_bridge.messages import MsgType, NackCode, OutputFunction
from firmware_bridge.registry import load_registry
from simulator.clock import run_virtual
from simulator.nodes import SimNode
from simulator.nodes_line import LineFaults, SimLine

Scenario = Callable[[BridgeLink, SimLine], Awaitable[None]]


def on_line(scenario: Scenario, nodes: list[SimNode], *, faults: LineFaults | None = None, **link_kw: object) -> None:
    """Run ``scenario(link, line)`` on a fresh virtual-time loop with ``nodes`` on a memory line."""

    async def main() -> None:
        line = SimLine(nodes, faults=faults, seed=7)
        async with line.on_memory_line() as memory, BridgeLink(memory.master, **link_kw) as link:  # type: ignore[arg-type]
            await scenario(link, line)

    run_virtual(main())


def test_hello_and_status_fill_the_registry() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        info = await link.hello(3)
        st = await link.status(3)
        assert (info.kind, info.firmware, info.channels) == (1, "1.0.0", 4)
        assert st.boot_id == info.boot_id == line.node(3).boot_id
        rec = link.registry.nodes[3]
        assert (rec.kind, rec.firmware, rec.health) == ("desk-cluster", "1.0.0", "ok")

    on_line(scenario, [SimNode(3)])


def test_outputs_confirm_and_read_back() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        loop = asyncio.get_running_loop()
        dimmer, lamp, seat, desk = (
            DimmerChannel(link, 101, 1),
            DeskLamp(link, 2, 0),
            SeatIndicator(link, 2, 3),
            DeskHeight(link, 2, 1),
        )
        await dimmer.set(0.8, ramp_s=2.0)
        t0 = loop.time()
        await asyncio.sleep(1.0)
        halfway = await dimmer.read_back()
        assert halfway is not None and 0.35 < halfway < 0.45
        assert line.node(101).dimmer_level(1, t0 + 5) == pytest.approx(0.8)
        await lamp.set(0.3)
        await seat.set(IndicatorColour.AWAY)
        await desk.set(1000)
        assert line.node(2).desk(0).lamp == pytest.approx(0.3)
        assert line.node(2).desk(3).indicator == IndicatorColour.AWAY
        assert line.node(2).desk(1).moving and desk.last_confirmed is not None and desk.last_confirmed.target == 1000
        await asyncio.sleep(20)
        assert await desk.read_back() == 1000
        with pytest.raises(ValueError):
            await dimmer.set(1.5)

    on_line(scenario, [SimNode(101, "dimmer"), SimNode(2)])


def test_refusals_are_nacks_with_codes_and_not_retried() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        with pytest.raises(NodeNackError) as no_channel:
            await link.set_output(101, 9, OutputFunction.LEVEL, 100)
        assert no_channel.value.code == NackCode.NO_SUCH_CHANNEL
        with pytest.raises(NodeNackError) as unsupported:
            await link.set_output(101, 0, OutputFunction.DESK_MOVE, 900)
        assert unsupported.value.code == NackCode.UNSUPPORTED
        with pytest.raises(NodeNackError) as unknown:
            await link.request(101, 0x6E, b"")
        assert unknown.value.code == NackCode.UNKNOWN_TYPE
        assert link.registry.nodes[101].retries == 0
        assert line.node(101).applied == []

    on_line(scenario, [SimNode(101, "dimmer")])


def test_late_answers_do_not_make_the_node_act_twice() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        node = line.node(4)
        for level in range(0, 1000, 100):
            await link.set_output(4, 0, OutputFunction.LAMP, level)
        assert line.record.late > 0 and link.registry.nodes[4].retries > 0
        assert [a[3] for a in node.applied] == list(range(0, 1000, 100))  # each command executed once
        assert node.counters["dup"] > 0

    on_line(scenario, [SimNode(4)], faults=LineFaults(late_rate=0.5, late_s=0.05))


def test_silent_node_times_out_and_goes_offline() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        for _ in range(3):
            with pytest.raises(NodeTimeoutError):
                await link.status(99, deadline_s=0.2)
        assert link.registry.nodes[99].health == "offline"
        await link.status(5)  # the rest of the line is unaffected
        assert link.registry.nodes[5].health == "ok"

    on_line(scenario, [SimNode(5)])


def test_two_nodes_on_one_address_collide_without_crashing() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        with pytest.raises(NodeTimeoutError):
            await link.hello(6, deadline_s=0.5)
        assert line.record.collisions > 0 and link.stats.rx_errors > 0
        assert (await link.hello(7)).kind == 2

    on_line(scenario, [SimNode(6), SimNode(6, "dimmer"), SimNode(7, "dimmer")])


def test_reboot_is_detected_and_reported() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        seen: list[NodeEvent] = []
        link.add_listener(seen.append)
        link.watch(8, 0.5)
        await asyncio.sleep(2)
        first = link.registry.nodes[8].boot_id
        line.node(8).reboot(silent_s=3)
        await asyncio.sleep(2)
        assert link.registry.nodes[8].health in ("degraded", "offline")
        await asyncio.sleep(4)
        rec = link.registry.nodes[8]
        assert rec.health == "ok" and rec.reboots == 1 and rec.boot_id != first
        assert [e.kind for e in seen] == ["reboot"]

    on_line(scenario, [SimNode(8)])


def test_events_are_delivered_once_in_order_with_noise() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        node = line.node(9)
        link.watch(9, 1.0)
        await asyncio.sleep(1.5)
        for i in range(40):  # more than one drain's worth, spread over time
            node.press_button(i % 4) if i % 2 else node.motion(i % 4)
            await asyncio.sleep(0.3)
        await asyncio.sleep(5)
        got = []
        while not link._events.empty():
            got.append(link._events.get_nowait())
        assert [e.seq for e in got] == list(range(1, 41))
        assert [e.kind for e in got[:2]] == ["motion", "button"]
        assert node.events_pending == 0

    on_line(scenario, [SimNode(9)], faults=LineFaults(byte_error_rate=0.01))


def test_event_iterator_yields_button_press() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        link.watch(10, 1.0)
        await asyncio.sleep(0.5)
        line.node(10).press_button(2)
        pressed_at = asyncio.get_running_loop().time()
        async for event in link.events():
            assert (event.node, event.kind, event.channel) == (10, "button", 2)
            assert event.t == pytest.approx(pressed_at, abs=0.01)
            assert asyncio.get_running_loop().time() - pressed_at <= 1.1  # next poll at the latest
            break

    on_line(scenario, [SimNode(10)])


def test_a_desk_load_step_arrives_as_a_load_step_event() -> None:
    """Revision 4: the gateway's HELLO names it, so a desk node queues LOAD_STEP once a new load on
    a desk has settled (PROTOCOL.md 5.7); the link delivers it at its next exchange with the node."""
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        link.watch(10, 1.0)
        await asyncio.sleep(0.5)
        line.node(10).set_desk_load(3, 2200.0)  # a laptop and books
        put_at = asyncio.get_running_loop().time()
        async for event in link.events():
            assert (event.node, event.kind, event.channel) == (10, "load_step", 3)
            assert event.t == pytest.approx(put_at + 1.8, abs=0.05)  # 8 conversions at 10 SPS, then 1 s settled
            assert asyncio.get_running_loop().time() - put_at <= 1.8 + 1.1  # next poll at the latest
            break

    on_line(scenario, [SimNode(10, revision=4, load_cells=True)])


def test_actuation_goes_before_queued_polls() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        order: list[int] = []
        polls = [asyncio.ensure_future(link.request(n, MsgType.STATUS)) for n in (11, 12, 11, 12, 11)]
        polls[0].add_done_callback(lambda _: order.append(0))
        await asyncio.sleep(0)
        act = asyncio.ensure_future(link.set_output(12, 0, OutputFunction.INDICATOR, 2))
        act.add_done_callback(lambda _: order.append(1))
        await asyncio.gather(*polls, act)
        assert [a[2] for a in line.node(12).applied] == [OutputFunction.INDICATOR]
        # The first poll was already on the line; the actuation overtook the other four.
        assert order == [0, 1]
        assert line.node(12).frames_answered == 3

    on_line(scenario, [SimNode(11), SimNode(12)])


def test_broadcast_acts_on_every_node_without_replies() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        await link.broadcast(
            MsgType.SET_OUTPUT, bytes([0, OutputFunction.LEVEL]) + (600).to_bytes(2, "little") + bytes(2)
        )
        await asyncio.sleep(0.05)
        assert all(n.dimmer_level(0) == pytest.approx(0.6) for n in line.nodes)
        assert link.stats.replies == 0 and line.record.replies == 0

    on_line(scenario, [SimNode(101, "dimmer"), SimNode(102, "dimmer")])


def test_registry_is_persisted_atomically_and_reloads(tmp_path: Path) -> None:
    registry = NodeRegistry(tmp_path, save_interval_s=5)

    async def scenario(link: BridgeLink, line: SimLine) -> None:
        link.watch(13, 1.0)
        link.watch(102, 1.0)
        await asyncio.sleep(3)
        assert registry.due(asyncio.get_running_loop().time() + 5) or registry.path is not None

    on_line(scenario, [SimNode(13), SimNode(102, "dimmer")], registry=registry)
    doc = json.loads((tmp_path / "nodes.json").read_text())
    assert {n["address"] for n in doc["nodes"]} == {13, 102}
    assert [p.name for p in tmp_path.iterdir()] == ["nodes.json"]  # no temp files left
    again = load_registry(tmp_path)
    assert again[102].kind == "dimmer" and again[13].health == "ok" and again[13].last_seen is not None


def test_node_ignores_other_addresses_and_replies() -> None:
    node = SimNode(20, clock=lambda: 1.0)
    assert node.receive(encode_frame(Frame(21, 0, 1, MsgType.HELLO))[:-1]) is None
    assert node.receive(encode_frame(Frame(20, 0, 1, MsgType.HELLO, flags=1))[:-1]) is None
    assert node.receive(encode_frame(Frame(20, 0, 1, MsgType.HELLO))[:-1]) is not None


def test_registry_saves_urgent_changes_at_once_and_others_on_interval(tmp_path: Path) -> None:
    registry = NodeRegistry(tmp_path, save_interval_s=60)
    registry.get(5)  # a new node is urgent
    assert registry.due(0.0)
    registry.save(0.0)
    assert not registry.due(1.0)
    registry.get(5).requests += 1
    registry.changed()
    assert not registry.due(30.0) and registry.due(61.0)
    registry.changed(urgent=True)
    assert registry.due(31.0)
    (tmp_path / "nodes.json").write_text("{not json")
    with pytest.raises(BridgeError, match="unreadable node registry"):
        load_registry(tmp_path)


def test_offline_node_is_polled_sparingly_and_recovers() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        link.watch(50, 1.0)
        link.watch(14, 1.0)
        await asyncio.sleep(60)
        dead = link.registry.nodes[50]
        assert dead.health == "offline"
        assert dead.requests < 3 * 9 + 60 / 5 + 2  # full retries only until it is declared offline
        assert link.registry.nodes[14].health == "ok"
        late = SimNode(50)
        late.use_clock(asyncio.get_running_loop().time)
        line.add(late)  # the node is plugged in
        await asyncio.sleep(12)
        assert link.registry.nodes[50].health == "ok" and link.registry.nodes[50].kind == "desk-cluster"

    on_line(scenario, [SimNode(14)])
