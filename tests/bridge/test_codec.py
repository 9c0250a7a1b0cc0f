"""Codec units: CRC vector, COBS, frames (PROTOCOL.md's worked examples: test_protocol_doc.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import FrameError
from firmware_bridge.codec import (
    MAX_ENCODED,
    MAX_PAYLOAD,
    Frame,
    FrameReader,
    cobs_decode,
    cobs_encode,
    crc16_ccitt_false,
    decode_frame,
    encode_frame,
)
from firmware_bridge.messages import MsgType, SetOutput


def test_crc_vector() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc16_ccitt_false(b"") == 0xFFFF


@pytest.mark.parametrize(
    ("raw", "stuffed"),
    [
        (b"\x00", b"\x01\x01"),
        (b"\x00\x00", b"\x01\x01\x01"),
        (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
        (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    ],
)
def test_cobs_known_vectors(raw: bytes, stuffed: bytes) -> None:
    assert cobs_encode(raw) == stuffed
    assert cobs_decode(stuffed) == raw


@given(st.binary(max_size=700))
def test_cobs_round_trip_has_no_zeros(data: bytes) -> None:
    enc = cobs_encode(data)
    assert 0 not in enc
    assert cobs_decode(enc) == data
    assert len(enc) <= len(data) + len(data) // 254 + 1


@given(
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.sampled_from([0, 1, 3, 5, 15]),
    st.binary(max_size=MAX_PAYLOAD),
)
def test_frame_round_trip(dst: int, src: int, seq: int, mtype: int, flags: int, payload: bytes) -> None:
    frame = Frame(dst, src, seq, mtype, flags, payload)
    wire = encode_frame(frame)
    assert wire.endswith(b"\x00") and 0 not in wire[:-1]
    assert len(wire) - 1 <= MAX_ENCODED
    assert decode_frame(wire[:-1]) == frame


def test_oversized_payload_refused() -> None:
    with pytest.raises(FrameError, match="exceeds"):
        encode_frame(Frame(1, 0, 0, 1, 0, bytes(MAX_PAYLOAD + 1)))


def test_decode_rejects_each_kind_of_damage() -> None:
    good = encode_frame(Frame(5, 0, 9, MsgType.STATUS))[:-1]
    raw = bytearray(cobs_decode(good))
    for index, value, reason in [(0, 2, "version"), (5, 0x80, "reserved"), (6, 9, "length"), (-1, raw[-1] ^ 1, "CRC")]:
        bad = bytearray(raw)
        bad[index] = value
        if reason != "CRC":  # re-seal so that only the intended field is wrong
            body = bytes(bad[:-2])
            bad[-2:] = crc16_ccitt_false(body).to_bytes(2, "little")
        with pytest.raises(FrameError, match=reason):
            decode_frame(cobs_encode(bytes(bad)))
    with pytest.raises(FrameError, match="shorter"):
        decode_frame(cobs_encode(b"\x01\x02\x03"))


def test_reader_splits_stream_and_resyncs_after_garbage() -> None:
    a = encode_frame(Frame(1, 0, 1, MsgType.HELLO))
    b = encode_frame(Frame(2, 0, 2, MsgType.STATUS))
    reader = FrameReader()
    stream = b"\x55" * 1000 + b"\x00" + a + b"\x13\x37\x00" + b
    out: list[Frame | FrameError] = []
    for i in range(0, len(stream), 7):  # arbitrary chunking
        out.extend(reader.feed(stream[i : i + 7]))
    frames = [f for f in out if isinstance(f, Frame)]
    errors = [e for e in out if isinstance(e, FrameError)]
    assert [f.dst for f in frames] == [1, 2]
    assert len(errors) == 2  # the oversized run and the short garbage block
    assert len(reader.buffer) == 0


def test_set_output_payload_layout() -> None:
    assert SetOutput(2, 1, 750, 1000).pack() == bytes.fromhex("0201ee02e803")
