"""Sensirion's shared wire format: 16-bit words each followed by a CRC-8, and the T/RH formulas.

SHT3x, SHT4x and SCD4x all send and receive data as big-endian 16-bit words, each followed by
one CRC byte (CRC-8, polynomial 0x31, init 0xFF, no reflection, no final XOR; SHT3x DS v5
Table 20, SCD4x DS v1.3 Table 32, check value CRC(0xBEEF) = 0x92). Command words carry no CRC.
The parts and the simulator both use these functions, so they are pure and tested on vectors.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from drivers.errors import ChecksumError

_POLY = 0x31


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ _POLY) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc8(data: bytes | Iterable[int]) -> int:
    """Sensirion CRC-8 of ``data`` (CRC of no bytes is the init value 0xFF)."""
    crc = 0xFF
    for byte in data:
        crc = _TABLE[crc ^ byte]
    return crc


def pack_words(words: Sequence[int]) -> bytes:
    """Words -> ``MSB LSB CRC`` triplets, as the part sends them (and as command arguments go)."""
    out = bytearray()
    for word in words:
        pair = bytes(((word >> 8) & 0xFF, word & 0xFF))
        out += pair
        out.append(crc8(pair))
    return bytes(out)


def unpack_words(data: bytes, *, device: str = "") -> list[int]:
    """``MSB LSB CRC`` triplets -> words; raise ChecksumError naming the first bad word."""
    if len(data) % 3:
        raise ChecksumError(f"{device}: {len(data)} bytes is not a whole number of words", device=device)
    words = []
    for i in range(0, len(data), 3):
        pair = data[i : i + 2]
        expected = crc8(pair)
        if data[i + 2] != expected:
            raise ChecksumError(
                f"{device}: CRC mismatch on word {i // 3} ({pair.hex()}: got 0x{data[i + 2]:02x}, "
                f"expected 0x{expected:02x})",
                device=device,
            )
        words.append((pair[0] << 8) | pair[1])
    return words


def command(code: int, *args: int) -> bytes:
    """A 16-bit command word (no CRC), followed by argument words with their CRCs."""
    return bytes(((code >> 8) & 0xFF, code & 0xFF)) + pack_words(args)


def ticks_to_celsius(ticks: int) -> float:
    """SHT3x / SCD4x temperature: T = -45 + 175 * S / 65535."""
    return -45.0 + 175.0 * ticks / 65535.0


def celsius_to_ticks(celsius: float) -> int:
    """Inverse of :func:`ticks_to_celsius`, rounded and clamped to 16 bits (simulator, offsets)."""
    return max(0, min(0xFFFF, round((celsius + 45.0) * 65535.0 / 175.0)))


def ticks_to_rh(ticks: int) -> float:
    """SHT3x / SCD4x relative humidity: RH = 100 * S / 65535."""
    return 100.0 * ticks / 65535.0


def rh_to_ticks(rh: float) -> int:
    """Inverse of :func:`ticks_to_rh`, clamped to 16 bits."""
    return max(0, min(0xFFFF, round(rh * 65535.0 / 100.0)))
