"""After a node reboots, the gateway puts back every output it owns before it calls the node healthy,
and what it shows as an output's read-back is what the node reports."""

from __future__ import annotations

import asyncio

from firmware_bridge import BridgeLink, DeskHeight, DeskLamp, DimmerChannel, NodeEvent
from firmware_bridge.messages import OutputFunction, OutputState
from simulator.nodes import SimNode
from simulator.nodes_line import LineFaults, SimLine

from .harness import on_line


def test_outputs_are_restored_before_the_node_is_reported_healthy() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        node = line.node(8)
        seen: list[NodeEvent] = []
        link.add_listener(seen.append)
        link.watch(8, 0.5)
        await asyncio.sleep(1.0)
        lamp, height = DeskLamp(link, 8, 1), DeskHeight(link, 8, 0)
        await lamp.set(0.7, ramp_s=2.0)
        await link.set_output(8, 2, OutputFunction.INDICATOR, 3)
        await link.set_output(8, 3, OutputFunction.LAMP, 200)
        await link.set_output(8, 3, OutputFunction.LAMP, 400)  # only the newest is restored
        await height.set(900)
        await asyncio.sleep(7.0)  # the desk gets there
        first = link.registry.nodes[8].boot_id
        node.reboot(silent_s=1.0)
        assert round(node.lamps[1].target) == 0 and node.indicators[2] == 0  # power-on state
        loop = asyncio.get_running_loop()
        until = loop.time() + 5.0
        while loop.time() < until:
            await asyncio.sleep(0.002)
            rec = link.registry.nodes[8]
            if rec.boot_id != first and rec.health == "ok":
                break
            if rec.boot_id != first:
                assert rec.health != "ok"
        else:
            raise AssertionError("the node never became healthy again")
        # healthy only once everything it owned is back, at once (no ramp from dark)
        assert round(node.lamps[1].at(loop.time())) == 700
        assert node.indicators[2] == 3 and round(node.lamps[3].target) == 400
        assert node.desk(0).height_mm == 900 and not node.desk(0).moving  # a desk is not moved by a reboot
        assert [e.kind for e in seen] == ["reboot", "restored"]
        assert lamp.reported == 0.7

    on_line(scenario, [SimNode(8)])


def test_restore_survives_a_lossy_line_and_a_second_reboot() -> None:
    faults = LineFaults(frame_drop_rate=0.15, frame_damage_rate=0.05)

    async def scenario(link: BridgeLink, line: SimLine) -> None:
        node = line.node(101)
        link.watch(101, 0.5)
        await asyncio.sleep(1.0)
        for ch in range(4):
            await link.set_output(101, ch, OutputFunction.LEVEL, 100 * (ch + 1), deadline_s=3.0)
        noticed = asyncio.Event()
        link.add_listener(lambda e: e.kind == "reboot" and noticed.set())
        node.reboot(silent_s=0.5)
        await noticed.wait()  # the link noticed it and starts the restore
        node.reboot(silent_s=0.5)  # again, in the middle of the restore
        await asyncio.sleep(8.0)
        assert [round(r.target) for r in node.levels] == [100, 200, 300, 400]
        rec = link.registry.nodes[101]
        assert rec.health == "ok" and rec.boot_id == node.boot_id and rec.reboots == 2

    on_line(scenario, [SimNode(101, "dimmer")], faults=faults)


def test_reported_read_back_is_the_nodes_not_the_last_command() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        await link.hello(101)
        dimmer = DimmerChannel(link, 101, 0)
        await dimmer.set(0.6)
        assert dimmer.reported == 0.6
        line.node(101).local_change(0, OutputFunction.LEVEL, 250)  # a wall dimmer, say
        assert await dimmer.read_back() == 0.25
        assert dimmer.reported == 0.25
        line.node(101).reboot(silent_s=0.2)
        await link.status(101, deadline_s=2.0)  # the gateway notices the new boot id ...
        await asyncio.sleep(0.5)
        assert dimmer.reported == 0.6  # ... and puts back what it owns (0.6), and reports that

    on_line(scenario, [SimNode(101, "dimmer")])


def test_a_command_on_its_way_during_the_restore_is_neither_dropped_nor_undone() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        node = line.node(8)
        newer: list[asyncio.Future[OutputState]] = []

        def on_event(event: NodeEvent) -> None:  # someone commands the lamp the moment the reboot is seen
            if event.kind == "reboot":
                newer.append(asyncio.ensure_future(link.set_output(8, 0, OutputFunction.LAMP, 900)))

        link.add_listener(on_event)
        link.watch(8, 0.25)
        await link.hello(8)
        await link.set_output(8, 0, OutputFunction.LAMP, 300)
        node.reboot(silent_s=0.5)
        await asyncio.sleep(2.0)
        assert newer and (await newer[0]).target == 900  # not dropped for the restore
        assert round(node.lamps[0].target) == 900 and link.registry.nodes[8].health == "ok"
        assert [a[3] for a in node.applied if a[2] == OutputFunction.LAMP][-1] == 900

    on_line(scenario, [SimNode(8)])
