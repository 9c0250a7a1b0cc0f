"""Shortcuts the simulated day takes must give what the general path gives, byte for byte.

A node tunnels I2C to a simulated bus without smbus2's ctypes messages; the thermopile part
encodes a frame with ufuncs; the world reads one field of a desk; the thermal detector tests
whether two blobs touch through halo sets. Each is checked here against the path it replaces.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from edge_agent.sensing.thermal import _near
from firmware_bridge.codec import Frame, encode_frame
from firmware_bridge.messages import MsgType, OutputFunction, SetOutput
from simulator.hw.amg8833 import SimAMG8833, encode_pixel, encode_pixels
from simulator.hw.bh1750 import SimBH1750
from simulator.hw.bus import Fault, SimI2CBus
from simulator.nodes import SimNode


class _SmbusOnlyBus(SimI2CBus):
    """The same bus, but not exactly a SimI2CBus: a node takes smbus2's i2c_rdwr path to it."""


class _Clock:
    def __init__(self) -> None:
        self.t = 10.0

    def __call__(self) -> float:
        return self.t


def _node_on(bus: SimI2CBus, clock: _Clock) -> SimNode:
    amg = SimAMG8833(clock, noise=0.15, seed=4)
    amg.set_frame(np.full((8, 8), 21.5) + np.arange(64).reshape(8, 8) * 0.25)
    bus.attach(0x69, amg)
    bus.attach(0x23, SimBH1750(clock, noise=1.0, seed=5))
    return SimNode(7, "sensor", i2c=bus, clock=clock)


def _i2c(node: SimNode, seq: int, address: int, read_len: int, write: bytes = b"") -> bytes | None:
    frame = Frame(node.address, 0, seq, MsgType.I2C, 0, bytes([address, read_len]) + write)
    return node.receive(encode_frame(frame)[:-1])


def test_a_node_tunnels_i2c_to_a_simulated_bus_as_through_smbus2_messages() -> None:
    clocks = (_Clock(), _Clock())
    fast_bus, smbus_bus = SimI2CBus("fast"), _SmbusOnlyBus("smbus")
    nodes = (_node_on(fast_bus, clocks[0]), _node_on(smbus_bus, clocks[1]))
    requests = [
        (0x69, 0, bytes([0x00, 0x00])),  # AMG8833: normal mode
        (0x69, 32, bytes([0x80])),  # pixels, a 32-byte burst
        (0x69, 32, b""),  # read on from the pointer
        (0x23, 0, bytes([0x01])),  # BH1750 power on
        (0x23, 0, bytes([0x10])),  # continuous high resolution
        (0x23, 2, b""),  # a reading
        (0x40, 2, bytes([0x00])),  # nobody there: NACK
        (0x69, 2, bytes([0x0E])),  # thermistor
    ]
    replies: list[list[bytes | None]] = [[], []]
    for seq, (address, read_len, write) in enumerate(requests * 3):
        for i, node in enumerate(nodes):
            clocks[i].t += 0.13
            if seq == 10:
                node.i2c.devices[0x69].inject(Fault.CORRUPT_CRC, 1)
            replies[i].append(_i2c(node, seq % 256, address, read_len, write))
    assert replies[0] == replies[1]
    assert all(r is not None for r in replies[0])
    fast_log = [(t.op, t.address, t.write, t.read, t.ok) for t in fast_bus.transactions]
    smbus_log = [(t.op, t.address, t.write, t.read, t.ok) for t in smbus_bus.transactions]
    assert fast_log == smbus_log and any(not ok for *_, ok in fast_log)
    assert nodes[0].counters == nodes[1].counters and nodes[0].counters["i2c"] == 3


def test_a_whole_frame_encodes_as_each_pixel_does() -> None:
    rng = np.random.default_rng(3)
    edges = [511.875, 511.9, 600.0, -512.0, -512.2, -600.0, 0.125, 0.375, -0.125, -0.375, 0.0, -0.0]
    values = np.concatenate([np.array(edges), rng.uniform(-530.0, 530.0, 64 * 20 - len(edges))])
    for frame in values.reshape(-1, 64):
        assert encode_pixels(frame).tolist() == [encode_pixel(float(v)) for v in frame]


def test_the_part_flags_overflow_only_at_the_12_bit_limits() -> None:
    clock = _Clock()
    amg = SimAMG8833(clock, noise=0.0)
    for scene, overflow in ((21.5, False), (511.75, True), (511.5, False), (-512.0, True)):
        amg.set_frame(np.full((8, 8), scene))
        amg.regs[0x04] = 0
        clock.t += 1.0
        amg.on_read(2)
        assert bool(amg.regs[0x04] & 0x04) is overflow, scene


def test_one_field_of_a_desk_is_the_field_of_the_whole_desk() -> None:
    clock = _Clock()
    node = SimNode(3, clock=clock)
    for value, function in ((700, OutputFunction.LAMP), (3, OutputFunction.INDICATOR), (1, OutputFunction.DESK_PRESET)):
        node._apply(SetOutput(1, function, value), clock())
    for _ in range(6):  # the lamp ramps and the desk moves: read along the way
        clock.t += 0.4
        for channel in range(node.channels):
            desk = node.desk(channel)
            assert node.desk_field(channel, "lamp") == desk.lamp
            assert node.desk_field(channel, "indicator") == desk.indicator
            assert node.desk_field(channel, "height_mm") == desk.height_mm


@pytest.mark.parametrize("seed", range(5))
def test_blobs_touch_through_halos_as_pixel_by_pixel(seed: int) -> None:
    rng = random.Random(seed)
    grid = list(itertools.product(range(8), range(8)))
    for _ in range(300):
        a = set(rng.sample(grid, rng.randint(1, 6)))
        b = rng.sample(grid, rng.randint(1, 6))
        brute = any(abs(r - r2) <= 1 and abs(c - c2) <= 1 for r, c in a for r2, c2 in b)
        assert _near(a, b) is brute


def test_a_frames_registers_are_those_of_its_encoded_pixels() -> None:
    """The part's registers and overflow flag, from frames inside, at and past the 12-bit limits and with a NaN."""
    from simulator.hw.amg8833 import pixel_registers

    rng = np.random.default_rng(5)
    frames = [rng.uniform(-20.0, 80.0, 64) for _ in range(200)] + [rng.uniform(-530.0, 530.0, 64) for _ in range(50)]
    for edge in (511.75, 511.625, 511.5, 511.874, -512.0, -511.875, -511.75, -512.125, 0.125, -0.125, -0.375):
        frame = np.full(64, 21.5)
        frame[7] = edge
        frames.append(frame)
    with np.errstate(invalid="ignore"):
        frames.append(np.where(np.arange(64) == 3, np.nan, 21.5))
        for frame in frames:
            raw = encode_pixels(frame)
            assert pixel_registers(frame) == (raw.astype("<u2").tobytes(), bool(0x7FF in raw or 0x800 in raw))


def test_the_line_decodes_a_repeated_request_once_and_forgets_past_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests kept decoded by their bytes: the frame handed to the nodes is the one decoding gives,
    a damaged block is never kept, and the store is emptied when it reaches its bound."""
    import simulator.nodes_line as nodes_line
    from firmware_bridge.codec import decode_frame
    from simulator.nodes_line import SimLine

    monkeypatch.setattr(nodes_line, "_DECODED_KEPT", 50)
    nodes = [SimNode(a) for a in (1, 2, 3)]
    line = SimLine(nodes)
    status = encode_frame(Frame(dst=2, src=0, seq=7, type=MsgType.STATUS))[:-1]
    first, listeners = line._listeners(status)
    again, listeners_again = line._listeners(status)
    assert first == decode_frame(status) and again is first
    assert listeners == listeners_again == [nodes[1]]
    damaged = bytes([status[0], status[1] ^ 0x40, *status[2:]])
    assert line._listeners(damaged) == (None, nodes) and damaged not in line._decoded
    sizes = []
    for seq in range(256):
        block = encode_frame(Frame(dst=1 + seq % 3, src=0, seq=seq, type=MsgType.STATUS))[:-1]
        frame, _ = line._listeners(block)
        assert frame == decode_frame(block)
        sizes.append(len(line._decoded))
    assert max(sizes) == 50 and min(sizes[50:]) < 50  # emptied at the bound, then filled again
