"""Frame codec: COBS byte stuffing, CRC-16/CCITT-FALSE and the 8-byte header (see PROTOCOL.md).

Everything here is pure and bounded: decoding a frame of ``n`` bytes does ``O(n)`` work, and any
input that is not a valid frame raises :class:`drivers.errors.FrameError` (never anything else),
because a noisy RS-485 line must never take the daemon down.
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from drivers.errors import FrameError
from drivers.records import quick_init

PROTOCOL_VERSION = 1
GATEWAY = 0
BROADCAST = 255
MIN_NODE, MAX_NODE = 1, 247

HEADER = struct.Struct("<BBBBBBH")  # version, dst, src, seq, type, flags, payload length
HEADER_SIZE = HEADER.size  # 8
CRC_SIZE = 2
MAX_PAYLOAD = 272  # one 256-byte OTA chunk plus its offset, with room to spare
MAX_RAW = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE  # 282
MAX_ENCODED = MAX_RAW + (MAX_RAW + 253) // 254  # 284: COBS adds one byte per 254, delimiter not counted

FLAG_REPLY = 0x01
FLAG_NACK = 0x02
FLAG_EVENTS_PENDING = 0x04
FLAG_DUPLICATE = 0x08
FLAGS_DEFINED = FLAG_REPLY | FLAG_NACK | FLAG_EVENTS_PENDING | FLAG_DUPLICATE


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_ccitt_false(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor): '123456789' -> 0x29B1.

    ``binascii.crc_hqx`` is exactly this CRC with a caller-chosen initial value (it runs in C);
    :data:`_CRC_TABLE` is the table-driven reference the tests check it against.
    """
    return binascii.crc_hqx(data, crc)


def crc16_reference(data: bytes, crc: int = 0xFFFF) -> int:
    """The same CRC one byte at a time from :data:`_CRC_TABLE`, as node firmware computes it."""
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[((crc >> 8) ^ b) & 0xFF]
    return crc


_CODE = tuple(bytes((n,)) for n in range(256))  # one-byte COBS codes, made once


def cobs_encode(data: bytes) -> bytes:
    """Consistent-overhead byte stuffing: the output contains no 0x00, so 0x00 can delimit frames.

    Each run of non-zero bytes becomes blocks of at most 254 bytes, each led by its length + 1; a
    code below 0xFF stands for the zero that ended the run. Working per run keeps this in C: a
    frame shorter than 254 bytes (every frame but an OTA chunk) has no run that long, so it is
    one join of code and run pairs.
    """
    runs = bytes(data).split(b"\x00")
    if len(data) < 0xFE:
        code = _CODE
        return b"".join([part for run in runs for part in (code[len(run) + 1], run)])
    out = bytearray()
    for run in runs:
        while len(run) >= 0xFE:
            out.append(0xFF)
            out += run[:0xFE]
            run = run[0xFE:]
        out.append(len(run) + 1)
        out += run
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Strict COBS decode; raises FrameError on a zero byte or a block that runs past the end."""
    out = bytearray()
    i, n = 0, len(data)
    if n == 0:
        raise FrameError("empty COBS block")
    if 0 not in data:  # the common case: only the block lengths need checking
        if n < 0xFF:
            # No block can be 254 bytes long, so every code after the first stands for a zero:
            # put the zeros in place of the codes, in a copy.
            out = bytearray(data)
            i = data[0]
            while i < n:
                out[i] = 0
                i += data[i]
            if i > n:
                raise FrameError(f"COBS block at offset {_block_start(data, i)} runs {i - n} byte(s) past the end")
            del out[0]
            return bytes(out)
        while i < n:
            code = data[i]
            end = i + code
            if end > n:
                raise FrameError(f"COBS block at offset {i} runs {end - n} byte(s) past the end")
            out += data[i + 1 : end]
            i = end
            if code != 0xFF and i < n:
                out.append(0)
        return bytes(out)
    while i < n:
        code = data[i]
        if code == 0:
            raise FrameError(f"zero byte inside COBS data at offset {i}")
        end = i + code
        if end > n:
            raise FrameError(f"COBS block at offset {i} runs {end - n} byte(s) past the end")
        chunk = data[i + 1 : end]
        if 0 in chunk:
            raise FrameError("zero byte inside COBS data")
        out += chunk
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def _block_start(data: bytes, end: int) -> int:
    """Offset of the block whose code points at ``end`` (for the error message only)."""
    i = 0
    while i + data[i] != end:
        i += data[i]
    return i


@quick_init  # about a million frames a simulated day
@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame. ``payload`` is message-specific (firmware_bridge.messages parses it)."""

    dst: int
    src: int
    seq: int
    type: int
    flags: int = 0
    payload: bytes = b""
    version: int = PROTOCOL_VERSION

    @property
    def is_reply(self) -> bool:
        return bool(self.flags & FLAG_REPLY)

    @property
    def is_nack(self) -> bool:
        return bool(self.flags & FLAG_NACK)


def encode_frame(frame: Frame) -> bytes:
    """Header + payload + CRC, COBS-stuffed, with the trailing 0x00 delimiter."""
    return encode_fields(frame.version, frame.dst, frame.src, frame.seq, frame.type, frame.flags, frame.payload)


def encode_fields(version: int, dst: int, src: int, seq: int, mtype: int, flags: int, payload: bytes) -> bytes:
    """:func:`encode_frame` of the frame with these fields, for a sender that has no Frame object to
    hand (a simulated node builds one reply per request)."""
    try:  # struct checks every field's range in C; the message comes from the loop below
        header = HEADER.pack(version, dst, src, seq, mtype, flags, len(payload))
    except struct.error:
        header = b""
    if not header or len(payload) > MAX_PAYLOAD:
        fields = (dst, src, seq, mtype, flags, version)
        for name, v in zip(("dst", "src", "seq", "type", "flags", "version"), fields, strict=True):
            if not 0 <= v <= 0xFF:
                raise FrameError(f"{name}={v} does not fit in one byte")
        if len(payload) > MAX_PAYLOAD:
            raise FrameError(f"payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte maximum")
        header = HEADER.pack(version, dst, src, seq, mtype, flags, len(payload))
    raw = header + payload
    raw += binascii.crc_hqx(raw, 0xFFFF).to_bytes(2, "little")
    return cobs_encode(raw) + b"\x00"


def decode_frame(block: bytes) -> Frame:
    """Decode the bytes between two delimiters; every inconsistency is a FrameError."""
    if len(block) > MAX_ENCODED:
        raise FrameError(f"frame of {len(block)} bytes exceeds the {MAX_ENCODED}-byte maximum")
    raw = cobs_decode(block)
    if len(raw) < HEADER_SIZE + CRC_SIZE:
        raise FrameError(f"frame of {len(raw)} bytes is shorter than header and CRC")
    body, (crc,) = raw[:-CRC_SIZE], struct.unpack("<H", raw[-CRC_SIZE:])
    if binascii.crc_hqx(body, 0xFFFF) != crc:
        raise FrameError("CRC mismatch")
    version, dst, src, seq, mtype, flags, length = HEADER.unpack_from(body)
    if version != PROTOCOL_VERSION:
        raise FrameError(f"protocol version {version} is not {PROTOCOL_VERSION}")
    if length != len(body) - HEADER_SIZE:
        raise FrameError(f"length field says {length} but {len(body) - HEADER_SIZE} payload bytes follow")
    if flags & ~FLAGS_DEFINED:
        raise FrameError(f"reserved flag bits set: 0x{flags:02x}")
    return Frame(dst, src, seq, mtype, flags, bytes(body[HEADER_SIZE:]), version)


@dataclass(slots=True)
class FrameReader:
    """Splits a byte stream at 0x00 delimiters and decodes each block.

    A block longer than :data:`MAX_ENCODED` is discarded up to the next delimiter (its bytes are
    not buffered), so garbage on the line costs bounded memory. Yields a Frame or the FrameError
    that block raised, so the caller can count line errors.
    """

    buffer: bytearray = field(default_factory=bytearray)
    overflow: bool = False

    def feed(self, data: bytes) -> Iterator[Frame | FrameError]:
        start = 0
        while True:
            end = data.find(0, start)
            if end < 0:
                self._append(data[start:])
                return
            self._append(data[start:end])
            block, overflow = bytes(self.buffer), self.overflow
            self.buffer.clear()
            self.overflow = False
            start = end + 1
            if overflow:
                yield FrameError("oversized frame discarded")
            elif block:
                try:
                    yield decode_frame(block)
                except FrameError as exc:
                    yield exc

    def whole_frame(self, data: bytes) -> Frame | FrameError | None:
        """What :meth:`feed` yields for ``data`` when it is exactly one frame and its delimiter with
        nothing buffered before it (how a node's reply nearly always arrives), without the
        generator; None for any other chunk, which goes to :meth:`feed`."""
        if self.buffer or self.overflow or not 0 < data.find(0) == len(data) - 1 <= MAX_ENCODED:
            return None
        try:
            return decode_frame(data[:-1])
        except FrameError as exc:
            return exc

    def _append(self, data: bytes) -> None:
        if self.overflow:
            return
        if len(self.buffer) + len(data) > MAX_ENCODED:
            self.buffer.clear()
            self.overflow = True
            return
        self.buffer += data
