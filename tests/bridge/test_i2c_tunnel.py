"""Tunnelled I2C: BridgeI2CBus returns exactly what the node's local bus returns."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from smbus2 import i2c_msg

from drivers.errors import BusTimeoutError, NackError
from drivers.ports import AsyncI2CBus
from firmware_bridge import BridgeI2CBus, BridgeLink
from simulator.clock import run_virtual
from simulator.hw.amg8833 import SimAMG8833
from simulator.hw.bus import SimI2CBus
from simulator.nodes import SimNode
from simulator.nodes_line import LineFaults, SimLine

from .fakes import RegisterFile


def local_read(bus: object, address: int, write: bytes, n: int) -> bytes:
    msgs = [i2c_msg.write(address, write), i2c_msg.read(address, n)]
    bus.i2c_rdwr(*msgs)  # type: ignore[attr-defined]
    return bytes(msgs[1])


def test_register_reads_match_local_bus_under_noise() -> None:
    device = RegisterFile(0x48)
    device.regs[0x10:0x20] = bytes(range(0xA0, 0xB0))

    async def main() -> None:
        line = SimLine([SimNode(3, i2c=device)], faults=LineFaults(byte_error_rate=0.01), seed=11)
        async with line.on_memory_line() as memory, BridgeLink(memory.master) as link:
            bus = BridgeI2CBus(link, 3)
            assert isinstance(bus, AsyncI2CBus)
            for start, n in [(0x10, 16), (0x00, 128), (0xF0, 255), (0x7F, 1)]:
                tunnelled = await bus.transfer(0x48, bytes([start]), n)
                assert tunnelled == local_read(device, 0x48, bytes([start]), n)
            await bus.transfer(0x48, bytes([0x30, 1, 2, 3]), 0)  # a write-only transaction
            assert device.regs[0x30:0x33] == b"\x01\x02\x03"
            with pytest.raises(NackError) as nack:
                await bus.transfer(0x49, b"\x00", 2)
            assert nack.value.address == 0x49 and nack.value.bus == "node3"

    run_virtual(main())


def test_thermopile_frame_through_the_bridge_equals_local() -> None:
    """The drivers engineer's simulated AMG8833 on a node's bus: 128 pixel bytes, byte for byte."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        local = SimI2CBus("node4-local")
        sensor = SimAMG8833(loop.time, noise=0.0)
        sensor.set_frame(np.linspace(18, 34, 64).reshape(8, 8))
        local.attach(0x69, sensor)
        line = SimLine([SimNode(4, i2c=local)])
        async with line.on_memory_line(460800) as memory, BridgeLink(memory.master, baud=460800) as link:
            await asyncio.sleep(1.0)  # let the part finish its first conversion
            tunnelled = await BridgeI2CBus(link, 4).transfer(0x69, b"\x80", 128)
            assert tunnelled == local_read(local, 0x69, b"\x80", 128)
            assert len(set(tunnelled)) > 8  # a real gradient, not a blank frame

    run_virtual(main())


def test_silent_node_is_a_bus_timeout_for_drivers() -> None:
    async def main() -> None:
        line = SimLine([])
        async with line.on_memory_line() as memory, BridgeLink(memory.master) as link:
            with pytest.raises(BusTimeoutError):
                await BridgeI2CBus(link, 30).transfer(0x69, b"\x80", 2)

    run_virtual(main())


def test_i2c_reply_status_is_checked() -> None:
    from drivers.errors import FrameError
    from firmware_bridge.messages import I2CRequest, pack_i2c_request, parse_i2c_reply

    assert parse_i2c_reply(b"\x00\x01\x02", 2) == (0, b"\x01\x02")
    assert parse_i2c_reply(b"\x01", 2) == (1, b"")  # a NACK carries no data
    with pytest.raises(FrameError, match="I2C status: 9 is not a known I2CStatus"):
        parse_i2c_reply(b"\x09\x01\x02", 2)
    with pytest.raises(FrameError, match="1 bytes, expected 2"):
        parse_i2c_reply(b"\x00\x01", 2)
    assert pack_i2c_request(0x69, 128, b"\x80") == I2CRequest(0x69, 128, b"\x80").pack() == b"\x69\x80\x80"
