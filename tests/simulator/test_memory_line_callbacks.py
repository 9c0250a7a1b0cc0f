"""The simulated day's RS-485 line from callbacks: the same exchanges, at the same virtual times.

The simulated backend leases the in-process memory line to the daemon's bridge link so that the
link runs its exchanges from callbacks (as on a gateway's tty) and the simulated nodes hear each
request in the callback that delivers it. What the link and the nodes see must not change: the
same replies at the same simulated instants as over the bare endpoint, where the link and the
line each run on a task.
"""

from __future__ import annotations

import asyncio

import pytest

from drivers.errors import BridgeError
from edge_agent.backend import MemoryLineLease, SimulatedBackend
from edge_agent.config import Bridge
from firmware_bridge.link import BridgeLink
from firmware_bridge.messages import MsgType, OutputFunction
from firmware_bridge.transport import MemoryLine, Transport
from simulator.clock import run_virtual
from simulator.nodes import SimNode
from simulator.nodes_line import SimLine


def _lease(line: MemoryLine) -> Transport:
    backend = SimulatedBackend(i2c_buses={}, pin_factory=None, ble_backend=None, transport=line.master,
                               serial_streams={})
    return backend.bridge_transport(Bridge(port="/dev/ttyUSB0"))


async def _session(leased: bool) -> tuple[bool, list[tuple[float, object]], int]:
    """A few seconds of a link's work on three nodes: heartbeats, sensor blocks, a command and
    requests queued together; every reply with the virtual time it came at."""
    loop = asyncio.get_running_loop()
    sim = SimLine([SimNode(3, seed=1), SimNode(4, "dimmer", seed=2), SimNode(5, "sensor", seed=3)], seed=7)
    seen: list[tuple[float, object]] = []
    async with sim.on_memory_line() as line:
        transport = _lease(line) if leased else line.master
        async with BridgeLink(transport) as link:
            for node in (3, 4, 5):
                seen.append((loop.time(), await link.hello(node)))
            for _ in range(3):
                seen.append((loop.time(), await link.status(4)))
                seen.append((loop.time(), await link.read_sensor(3, 0)))
                seen.append((loop.time(), await link.set_output(4, 0, OutputFunction.LEVEL, 700)))
                together = await asyncio.gather(link.status(3), link.status(5),
                                                link.get_output(4, 0, OutputFunction.LEVEL),
                                                link.request(5, MsgType.READ_SENSOR, bytes([0])))
                seen.append((loop.time(), together))
                await asyncio.sleep(0.25)
            callbacks = link._callbacks
        return callbacks, seen, line.bytes_carried


def test_a_leased_memory_line_runs_from_callbacks_with_the_replies_and_times_of_the_task_path() -> None:
    on_tasks = run_virtual(_session(leased=False))
    from_callbacks = run_virtual(_session(leased=True))
    assert on_tasks[0] is False and from_callbacks[0] is True
    assert len(from_callbacks[1]) == 3 + 3 * 4
    assert from_callbacks[1] == on_tasks[1]  # every reply, and the simulated instant it came at
    assert from_callbacks[2] == on_tasks[2] > 0  # the same bytes on the wire


async def test_a_listening_endpoint_hands_each_delivery_to_its_callback_until_it_closes() -> None:
    line = MemoryLine()
    heard: list[tuple[float, bytes]] = []
    loop = asyncio.get_running_loop()
    await line.master.write(b"before\x00")  # waiting in the inbox: handed over first
    listening = loop.create_task(line.slave.listen(lambda data: heard.append((loop.time(), data))))
    await asyncio.sleep(0)
    line.master.transmit(b"abc\x00")
    start = loop.time()
    await asyncio.sleep(10 * line.byte_s)
    assert [d for _, d in heard] == [b"before\x00", b"abc\x00"]
    assert heard[1][0] >= start + 4 * line.byte_s  # after its byte times on the wire
    await line.slave.aclose()
    with pytest.raises(BridgeError, match="closed"):
        await listening


async def test_a_listener_that_raises_ends_the_listening_with_its_error() -> None:
    line = MemoryLine()

    def broken(_data: bytes) -> None:
        raise ValueError("a bug in the reader")

    listening = asyncio.get_running_loop().create_task(line.slave.listen(broken))
    await asyncio.sleep(0)
    await line.master.write(b"x\x00")
    with pytest.raises(ValueError, match="a bug in the reader"):
        await listening
    await line.master.write(b"y\x00")  # nobody listening any more: the bytes wait in the inbox
    assert await line.slave.read() == b"y\x00"


def test_the_lease_is_the_memory_lines_own() -> None:
    lease = _lease(MemoryLine())
    assert isinstance(lease, MemoryLineLease)
