"""On a tty the line runs its exchanges from loop callbacks: the same choices, the same supervision.

The link decodes bytes in the tty's readable callback and starts an exchange on an idle line in
the loop turn its caller queued it, with no reader or sender task waking per request. These tests
run over a real pty (SerialTransport on both sides) and check what the task-driven line
guarantees elsewhere (tests/bridge/test_line_workers.py, test_ordering.py): requests queued in
one turn go in priority order, a bug in a worker fails the request it hit and is reported by
``supervise`` and the line works again after it, and a frame the tty takes only in part still
gets its answer.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from drivers.errors import BridgeError
from firmware_bridge import BridgeLink, SerialTransport
from firmware_bridge.exchange import Priority
from firmware_bridge.messages import PROTOCOL_REVISION, MsgType
from simulator.nodes import SimNode
from simulator.nodes_line import SimLine


class Bug(RuntimeError):
    """What no worker of the line expects."""


@asynccontextmanager
async def pty_line(transport: type[SerialTransport] = SerialTransport) -> AsyncIterator[tuple[BridgeLink, SimLine]]:
    master_fd, slave_fd = os.openpty()
    line = SimLine([SimNode(3), SimNode(4)], seed=1, trace=True)
    serve = asyncio.get_running_loop().create_task(line.serve(SerialTransport.from_fd(master_fd, "pty-master")))
    try:
        # a generous reply margin: on a loaded machine the scheduling jitter is milliseconds
        async with BridgeLink(transport(os.ttyname(slave_fd), 115200), reply_margin_s=0.05) as link:
            assert link._callbacks  # the tty path, not the task-driven one
            yield link, line
    finally:
        serve.cancel()
        await asyncio.gather(serve, return_exceptions=True)
        os.close(slave_fd)


def fail_once(obj: Any, method: str) -> None:
    """Make ``obj.method`` raise Bug on its next call only (a plain function: the callbacks call it)."""
    real = getattr(obj, method)

    def broken(*args: Any, **kwargs: Any) -> Any:
        setattr(obj, method, real)
        raise Bug(f"{method} hit a bug")

    setattr(obj, method, broken)


async def death(watch: asyncio.Task[None]) -> BridgeError:
    async with asyncio.timeout(5.0):
        with pytest.raises(BridgeError) as raised:
            await watch
    return raised.value


async def within(awaitable: Awaitable[Any], seconds: float = 5.0) -> Any:
    async with asyncio.timeout(seconds):
        return await awaitable


async def test_requests_queued_in_one_turn_go_in_priority_order_on_an_idle_tty() -> None:
    async with pty_line() as (link, line):
        await link.hello(3)
        await link.hello(4)
        await asyncio.sleep(0.05)
        line.trace.clear()  # type: ignore[union-attr]
        poll = asyncio.ensure_future(link.request(4, MsgType.STATUS, priority=Priority.POLL))
        events = asyncio.ensure_future(link.request(3, MsgType.STATUS, priority=Priority.EVENTS))
        urgent = asyncio.ensure_future(link.request(4, MsgType.HELLO, bytes([PROTOCOL_REVISION]),
                                                    priority=Priority.ACTUATION))
        await within(asyncio.gather(poll, events, urgent))
        # first hearings only: on a loaded machine a late answer may draw a retry
        heard = list(dict.fromkeys((frame.dst, frame.type) for _, frame in line.trace or []))
        assert heard == [(4, MsgType.HELLO), (3, MsgType.STATUS), (4, MsgType.STATUS)]


async def test_the_inter_frame_gap_holds_between_exchanges_on_a_tty() -> None:
    async with pty_line() as (link, line):
        await link.hello(3)
        line.trace.clear()  # type: ignore[union-attr]
        for _ in range(20):
            await link.status(3)
        stamps = [t for t, _ in line.trace or []]
        gap = link.byte_s * 3
        assert len(stamps) == 20 and min(b - a for a, b in itertools.pairwise(stamps)) >= gap


async def test_a_bug_in_the_callback_sender_fails_its_request_and_the_sender_is_started_again() -> None:
    async with pty_line() as (link, line):
        watch = asyncio.create_task(link.supervise())
        await link.status(3)
        fail_once(link.transport, "write_now")
        with pytest.raises(BridgeError, match="sender stopped"):
            await within(link.status(3))
        dead = await death(watch)
        assert "bridge-sender" in str(dead) and isinstance(dead.__cause__, Bug)
        queued = asyncio.ensure_future(link.status(4))  # queued while no sender runs: waits for the next
        await asyncio.sleep(0.05)
        assert not queued.done()
        watch = asyncio.create_task(link.supervise())
        assert (await within(queued)).boot_id == line.node(4).boot_id
        assert (await within(link.status(3))).boot_id == line.node(3).boot_id
        assert not watch.done()
        watch.cancel()


async def test_a_bug_in_the_callback_reader_is_reported_and_the_reader_is_started_again() -> None:
    async with pty_line() as (link, line):
        watch = asyncio.create_task(link.supervise())
        await link.status(3)
        fail_once(link, "_dispatch")
        with pytest.raises(BridgeError):  # its answer was never decoded
            await within(link.status(3, retries=0, deadline_s=0.3))
        dead = await death(watch)
        assert "bridge-reader" in str(dead) and isinstance(dead.__cause__, Bug)
        with pytest.raises(BridgeError):  # nobody reads the line: the answer is never seen
            await within(link.status(3, retries=0, deadline_s=0.3))
        watch = asyncio.create_task(link.supervise())
        assert (await within(link.status(3))).boot_id == line.node(3).boot_id
        watch.cancel()


class TakesThreeBytes(SerialTransport):
    """A tty whose buffer takes only three bytes of the next frame (then drains)."""

    partial = 0

    def write_now(self, data: bytes) -> int:
        if self.partial == 0:
            self.partial = 1
            return super().write_now(data[:3])
        return super().write_now(data)


async def test_a_frame_the_tty_takes_in_part_is_finished_and_answered() -> None:
    async with pty_line(TakesThreeBytes) as (link, line):
        status = await within(link.status(3))
        assert status.boot_id == line.node(3).boot_id
        assert link.stats.timeouts == 0 and link.stats.frames_sent == link.stats.replies == 2  # HELLO, STATUS


async def test_the_daemons_reopening_port_runs_the_line_from_callbacks() -> None:
    """The daemon opens its adapter through ReopeningSerial: the tty path must reach through it."""
    from edge_agent.backend import ReopeningSerial

    master_fd, slave_fd = os.openpty()
    line = SimLine([SimNode(3)], seed=1)
    serve = asyncio.get_running_loop().create_task(line.serve(SerialTransport.from_fd(master_fd, "pty-master")))
    try:
        async with BridgeLink(ReopeningSerial(os.ttyname(slave_fd), 115200), reply_margin_s=0.05) as link:
            assert link._callbacks
            assert (await within(link.status(3))).boot_id == line.node(3).boot_id
    finally:
        serve.cancel()
        await asyncio.gather(serve, return_exceptions=True)
        os.close(slave_fd)


async def test_a_missing_adapter_fails_requests_and_kills_no_worker() -> None:
    from edge_agent.backend import ReopeningSerial

    async with BridgeLink(ReopeningSerial("/dev/does-not-exist-ttyXYZ", 115200, retry_s=0.05)) as link:
        watch = asyncio.create_task(link.supervise())
        with pytest.raises(BridgeError, match="not there"):
            await within(link.status(3))
        await asyncio.sleep(0.2)  # the reader keeps trying the port
        assert not watch.done()
        watch.cancel()


async def test_a_lease_on_a_tty_runs_the_line_from_callbacks_and_so_does_a_memory_lines() -> None:
    """The simulated backend leases its line to each bridge link: over a tty (the gateway
    benchmark's floor in another process) the link must run as on a gateway."""
    from edge_agent.backend import SimulatedBackend
    from edge_agent.config import Bridge
    from firmware_bridge.transport import MemoryLine

    def backend(line: object) -> SimulatedBackend:
        return SimulatedBackend(i2c_buses={}, pin_factory=None, ble_backend=None, transport=line,  # type: ignore[arg-type]
                                serial_streams={})

    master_fd, slave_fd = os.openpty()
    line = SimLine([SimNode(3)], seed=1)
    serve = asyncio.get_running_loop().create_task(line.serve(SerialTransport.from_fd(master_fd, "pty-master")))
    tty = SerialTransport(os.ttyname(slave_fd), 115200)
    try:
        lease = backend(tty).bridge_transport(Bridge(port="/dev/ttyUSB0"))
        async with BridgeLink(lease, reply_margin_s=0.05) as link:
            assert link._callbacks
            assert (await within(link.status(3))).boot_id == line.node(3).boot_id
        # The in-process memory line's lease, too (tests/simulator/test_memory_line_callbacks.py);
        # a link on the bare endpoint keeps its tasks.
        assert BridgeLink(backend(MemoryLine().master).bridge_transport(Bridge(port="x")))._callbacks
        assert not BridgeLink(MemoryLine().master)._callbacks
    finally:
        serve.cancel()
        await asyncio.gather(serve, return_exceptions=True)
        await tty.aclose()
        os.close(slave_fd)
