"""Timing as PROTOCOL.md gives it: the short backoff after a damaged or missing reply, BUSY retried
within the request's deadline, and the reply timeout counted from the end of the request."""

from __future__ import annotations

import asyncio
import random

import pytest

from firmware_bridge import BridgeLink, MemoryLine, NodeNackError, build_image, update_firmware
from firmware_bridge.exchange import INTERFRAME_CHARS
from firmware_bridge.messages import HardwareKind, MsgType, NackCode, OutputFunction, SetOutput
from firmware_bridge.transport import MemoryEndpoint, Transport
from simulator.clock import run_virtual
from simulator.nodes import SimNode
from simulator.nodes_line import FrameFault, SimLine

from .fakes import RegisterFile
from .harness import on_line


def test_a_damaged_reply_is_retried_after_the_short_backoff_not_the_whole_timeout() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        line.faults.script.append(FrameFault("reply", "damage", node=3, type=MsgType.I2C))
        status, data = await link.i2c(3, 0x48, b"\x00", 128)
        assert status == 0 and data == bytes(range(128))
        (t0, first), (t1, retry) = [(t, f) for t, f in line.trace or [] if f.type == MsgType.I2C]
        assert retry.seq == first.seq  # the identical frame
        assert link.stats.rx_errors == 1
        # The damaged reply took ~13 ms to arrive; a whole I2C reply timeout is ~58 ms.
        assert link.reply_timeout(MsgType.I2C) > 0.05
        assert t1 - t0 < 0.025, f"retry {1000 * (t1 - t0):.1f} ms after the request"

    on_line(scenario, [SimNode(3, i2c=RegisterFile(0x48))], trace=True)


def test_a_missing_reply_is_retried_after_its_timeout_and_the_short_backoff() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        line.faults.script.append(FrameFault("reply", "drop", node=3, type=MsgType.STATUS))
        await link.status(3)
        (t0, _), (t1, _) = [(t, f) for t, f in line.trace or [] if f.type == MsgType.STATUS]
        assert t1 - t0 < link.reply_timeout(MsgType.STATUS) + 0.002 + 0.002

    on_line(scenario, [SimNode(3)], trace=True)


def test_busy_is_retried_until_the_node_takes_the_request() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        node = line.node(5)
        node.busy_until = asyncio.get_running_loop().time() + 0.3
        state = await link.set_output(5, 0, OutputFunction.LAMP, 800)
        assert state.target == 800 and len(node.applied) == 1
        assert asyncio.get_running_loop().time() >= node.busy_until

    on_line(scenario, [SimNode(5)])


def test_busy_past_the_deadline_is_a_refusal() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        line.node(5).busy_until = asyncio.get_running_loop().time() + 10
        with pytest.raises(NodeNackError) as busy:
            await link.set_output(5, 0, OutputFunction.LAMP, 800, deadline_s=0.5)
        assert busy.value.code == NackCode.BUSY
        assert line.node(5).applied == []

    on_line(scenario, [SimNode(5)])


class BufferingAdapter(MemoryEndpoint):
    """A USB RS-485 adapter: ``write`` returns once the bytes are in its buffer, before they are sent."""

    write_waits_for_line = False

    async def write(self, data: bytes) -> None:
        self.send_later(0.0, data)


def test_reply_timeout_counts_from_the_end_of_the_request_on_a_buffering_adapter() -> None:
    """An OTA chunk takes 23.7 ms to send at 115200 baud: the reply timer must not run meanwhile."""
    image = build_image(HardwareKind.DESK_CLUSTER, (1, 1, 0), random.Random(4).randbytes(12_000))

    async def main() -> None:
        line = SimLine([SimNode(5)])
        memory = MemoryLine(115200)
        adapter = BufferingAdapter(memory, "usb-adapter")
        adapter.peer, memory.slave.peer = memory.slave, adapter
        serve = asyncio.get_running_loop().create_task(line.serve(memory.slave))
        try:
            async with BridgeLink(adapter, baud=115200) as link:
                report = await update_firmware(link, 5, image)
                assert report.outcome == "updated"
                assert link.stats.timeouts == 0, link.stats
        finally:
            serve.cancel()
            await asyncio.gather(serve, return_exceptions=True)

    run_virtual(main())



class LosesOneDelimiter(SimLine):
    """The first reply's closing 0x00 never arrives (a bit error turned it into data)."""

    lost = False

    def _send_later(self, transport: Transport, delay: float, reply: bytes) -> None:
        if not self.lost:
            self.lost, reply = True, reply[:-1] + b"\x55"
        super()._send_later(transport, delay, reply)


def test_a_reply_without_its_delimiter_does_not_swallow_the_next_one() -> None:
    async def main() -> None:
        line = LosesOneDelimiter([SimNode(3)])
        async with line.on_memory_line() as memory, BridgeLink(memory.master) as link:
            await link.status(3)
            assert link.registry.nodes[3].retries == 1  # one retry, whose answer got through
            assert link.stats.rx_errors == 0

    run_virtual(main())


def test_damage_seen_after_the_wait_ran_out_leaves_the_reader_running() -> None:
    """The reader may see a damaged reply in the loop turn between the reply wait expiring and
    the exchange task clearing it. Bringing that expired wait forward must be a no-op: raising
    there killed the reader task and every later request on the line timed out; restarting the
    wait would turn a settled timeout into a second one."""
    from firmware_bridge.exchange import LineMaster, _expire

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        master = LineMaster(MemoryLine().master)
        reply = master._reply = loop.create_future()
        timer = master._timer = loop.call_at(loop.time(), _expire, reply)
        for _ in range(10):  # the wait runs out; the exchange task has not run to clear it yet
            if reply.done():
                break
            await asyncio.sleep(0)
        assert reply.done() and isinstance(reply.exception(), TimeoutError)
        master._give_up_after(loop.time() + 0.01)  # raised RuntimeError before
        assert master._timer is timer  # left alone: no second timer for a settled wait
        master._timer = None
        master._give_up_after(loop.time() + 0.01)

        # A wait still running is brought forward: it runs out at the new time, not the old one.
        reply = master._reply = loop.create_future()
        master._timer = loop.call_at(loop.time() + 60, _expire, reply)
        master._give_up_after(loop.time() + 0.01)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(5):
                await reply

    asyncio.run(scenario())


class StampedLine:
    """The master end of a memory line, noting when each write starts and each read returns."""

    write_waits_for_line = True

    def __init__(self, end: MemoryEndpoint) -> None:
        self.end = end
        self.writes: list[float] = []
        self.reads: list[float] = []

    async def write(self, data: bytes) -> None:
        self.writes.append(asyncio.get_running_loop().time())
        await self.end.write(data)

    async def read(self) -> bytes:
        data = await self.end.read()
        self.reads.append(asyncio.get_running_loop().time())
        return data

    async def aclose(self) -> None:
        await self.end.aclose()


def test_the_inter_frame_gap_follows_every_exchange_before_a_request_or_a_broadcast() -> None:
    """Three idle characters between a reply and the next frame the gateway sends, whether the
    next is a queued request or a broadcast (which bypasses the queue but not the gap)."""

    async def main() -> None:
        line = SimLine([SimNode(3)])
        async with line.on_memory_line() as memory:
            stamped = StampedLine(memory.master)
            async with BridgeLink(stamped) as link:
                gap = link.byte_s * INTERFRAME_CHARS
                await link.status(3)
                replied = stamped.reads[-1]
                await link.broadcast(MsgType.SET_OUTPUT, SetOutput(0, OutputFunction.LAMP, 0, 0).pack())
                assert stamped.writes[-1] - replied >= gap - 1e-9
                await link.status(3)
                replied = stamped.reads[-1]
                await link.status(3)
                assert stamped.writes[-1] - replied >= gap - 1e-9
                assert link.stats.timeouts == 0

    run_virtual(main())
