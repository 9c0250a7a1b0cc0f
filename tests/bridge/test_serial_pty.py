"""The real serial path: SerialTransport on both sides of a pty pair, real event loop, real time."""

from __future__ import annotations

import asyncio
import os
import random

import pytest

from drivers.errors import BridgeError
from firmware_bridge import BridgeI2CBus, BridgeLink, SerialTransport
from firmware_bridge.messages import OutputFunction
from simulator.nodes import SimNode
from simulator.nodes_line import LineFaults, SimLine

from .fakes import RegisterFile


def pty_names() -> tuple[int, int, str]:
    """A pty pair: the gateway opens /dev/pts/N (the slave side); the simulated line holds the master fd."""
    master_fd, slave_fd = os.openpty()
    return master_fd, slave_fd, os.ttyname(slave_fd)


@pytest.mark.slow
async def test_polling_and_commands_over_a_pty_with_noise() -> None:
    master_fd, slave_fd, path = pty_names()
    nodes = [SimNode(a, i2c=RegisterFile(0x48)) for a in range(1, 5)] + [SimNode(101, "dimmer")]
    line = SimLine(nodes, faults=LineFaults(byte_error_rate=0.01), seed=5)
    rng = random.Random(2)
    serve = asyncio.get_running_loop().create_task(line.serve(SerialTransport.from_fd(master_fd, "pty-master")))
    try:
        # generous reply margin: on a loaded CI machine the scheduling jitter is milliseconds
        async with BridgeLink(SerialTransport(path, 115200), reply_margin_s=0.05) as link:
            for n in nodes:
                link.watch(n.address, 0.2)
            confirmed: dict[tuple[int, int], int] = {}
            for _ in range(60):
                node = rng.choice(nodes[:4])
                channel, value = rng.randrange(4), rng.randrange(0, 1001, 100)
                state = await link.set_output(node.address, channel, OutputFunction.LAMP, value, deadline_s=2.0)
                assert state.target == value
                confirmed[(node.address, channel)] = value
                await asyncio.sleep(0.01)
            for (address, channel), value in confirmed.items():
                assert round(line.node(address).lamps[channel].target) == value
            data = await BridgeI2CBus(link, 2).transfer(0x48, b"\x20", 32)
            assert data == bytes(range(0x20, 0x40))
            await asyncio.sleep(0.5)
            # On a loaded machine a real-time poll may miss its window now and then ("degraded"),
            # but no node may be lost on a 1 % noisy line.
            assert all(link.registry.nodes[n.address].health != "offline" for n in nodes)
            assert line.record.corrupted_bytes > 0  # the noise was real
    finally:
        serve.cancel()
        await asyncio.gather(serve, return_exceptions=True)
        os.close(slave_fd)


async def test_serial_transport_errors_are_bridge_errors() -> None:
    with pytest.raises(BridgeError, match="cannot open"):
        SerialTransport("/dev/does-not-exist-ttyXYZ")
    with pytest.raises(BridgeError, match="not a serial port"):
        SerialTransport("/dev/null")
    with pytest.raises(BridgeError, match="baud"):
        SerialTransport("/dev/null", 12345)
