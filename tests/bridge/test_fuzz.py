"""Fuzzing: decoders and payload parsers raise only FrameError, never accept a bad CRC, and stay bounded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.errors import FrameError
from firmware_bridge import messages as m
from firmware_bridge.codec import MAX_ENCODED, Frame, FrameReader, cobs_decode, cobs_encode, decode_frame, encode_frame
from simulator.nodes import SimNode

from .fakes import RegisterFile

PARSERS: list[Callable[[bytes], Any]] = [
    m.Nack.parse,
    m.HelloInfo.parse,
    m.NodeStatus.parse,
    m.SetOutput.parse,
    m.GetOutput.parse,
    m.OutputState.parse,
    m.EventsRequest.parse,
    m.NodeEventRecord.parse,
    m.parse_events,
    m.I2CRequest.parse,
    lambda p: m.parse_i2c_reply(p, 4),
    m.OtaBegin.parse,
    m.OtaChunk.parse,
    m.OtaProgress.parse,
    m.OtaStatus.parse,
    m.SensorBlock.parse,
]


@settings(max_examples=400)
@given(st.binary(max_size=2 * MAX_ENCODED))
def test_decode_frame_only_raises_frame_error(block: bytes) -> None:
    try:
        frame = decode_frame(block)
    except FrameError:
        return
    assert encode_frame(frame)[:-1] == block  # anything accepted is exactly a valid encoding


@settings(max_examples=300)
@given(st.binary(max_size=300), st.integers(0, 10_000), st.integers(1, 0xFFFF))
def test_corrupted_crc_never_accepted(payload: bytes, where: int, xor: int) -> None:
    wire = encode_frame(Frame(7, 0, 3, m.MsgType.SET_OUTPUT, 0, payload))[:-1]
    raw = bytearray(cobs_decode(wire))
    raw[-2] ^= xor & 0xFF
    raw[-1] ^= xor >> 8
    try:
        decode_frame(cobs_encode(bytes(raw)))
    except FrameError:
        return
    raise AssertionError("frame with a wrong CRC was accepted")


@settings(max_examples=300)
@given(st.binary(max_size=300), st.integers(0, 299), st.integers(0, 7))
def test_single_bit_flip_detected(payload: bytes, where: int, bit: int) -> None:
    raw = bytearray(cobs_decode(encode_frame(Frame(7, 0, 3, m.MsgType.EVENTS, 0, payload))[:-1]))
    raw[where % len(raw)] ^= 1 << bit
    try:
        decode_frame(cobs_encode(bytes(raw)))
    except FrameError:
        return
    raise AssertionError("a single flipped bit went unnoticed")


@settings(max_examples=300)
@given(st.sampled_from(range(len(PARSERS))), st.binary(max_size=400))
def test_payload_parsers_only_raise_frame_error(which: int, payload: bytes) -> None:
    try:
        PARSERS[which](payload)
    except FrameError:
        pass


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=600), max_size=20))
def test_reader_memory_is_bounded(chunks: list[bytes]) -> None:
    reader = FrameReader()
    total = 0
    for c in chunks:
        produced = list(reader.feed(c))
        total += len(produced)
        assert len(reader.buffer) <= MAX_ENCODED
    assert total <= sum(len(c) for c in chunks)  # at most one item per delimiter


@settings(max_examples=300)
@given(st.integers(0, 255), st.binary(max_size=280), st.integers(0, 255))
def test_node_answers_any_request_with_reply_or_nack(mtype: int, payload: bytes, seq: int) -> None:
    node = SimNode(9, "desk-cluster", i2c=RegisterFile(), clock=lambda: 100.0)
    out = node.receive(encode_frame(Frame(9, 0, seq, mtype, 0, payload))[:-1])
    assert out is not None
    reply = decode_frame(out[:-1])
    assert reply.is_reply and reply.seq == seq and reply.type == mtype and reply.src == 9
    if reply.is_nack:
        m.Nack.parse(reply.payload)


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_node_survives_garbage(block: bytes) -> None:
    node = SimNode(9, "dimmer", clock=lambda: 5.0)
    node.receive(block)
