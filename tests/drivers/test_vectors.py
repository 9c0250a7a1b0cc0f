"""Every datasheet vector in HARDWARE.md, against the pure decoders."""

from __future__ import annotations

import pytest

from drivers.amg8833 import decode_pixel, decode_pixels, decode_thermistor
from drivers.bh1750 import Bh1750Mode, counts_to_lux
from drivers.dwm1001 import parse_ble_location, parse_loc_get
from drivers.errors import ChecksumError, DriverError
from drivers.scd41 import CalibrationRefusedError, decode_frc, decode_measurement
from drivers.sensirion import crc8, pack_words, ticks_to_celsius, ticks_to_rh, unpack_words
from drivers.sht import sht4x_ticks_to_rh


@pytest.mark.parametrize(
    ("word", "crc"),
    [(0xBEEF, 0x92), (0x0000, 0x81), (0x6666, 0x93), (0x8000, 0xA2), (0x01F4, 0x33), (0x6667, 0xA2), (0x5EB9, 0x3C)],
)
def test_sensirion_crc_vectors(word: int, crc: int) -> None:
    assert crc8(word.to_bytes(2, "big")) == crc


def test_crc_of_nothing_is_init_value() -> None:
    assert crc8(b"") == 0xFF


def test_unpack_rejects_bad_crc_naming_the_word() -> None:
    good = pack_words((0x1234, 0xBEEF))
    bad = good[:5] + bytes([good[5] ^ 1])
    assert unpack_words(good) == [0x1234, 0xBEEF]
    with pytest.raises(ChecksumError, match="word 1"):
        unpack_words(bad, device="rh-1")


@pytest.mark.parametrize(
    ("word", "celsius"), [(0x1F4, 125.0), (0x064, 25.0), (0x001, 0.25), (0xFFF, -0.25), (0xF9C, -25.0), (0xF24, -55.0)]
)
def test_amg8833_pixel_vectors(word: int, celsius: float) -> None:
    assert decode_pixel(word) == celsius
    frame = decode_pixels(word.to_bytes(2, "little") * 64)
    assert frame.shape == (8, 8) and frame.dtype.name == "float32"
    assert (frame == celsius).all()


@pytest.mark.parametrize(
    ("word", "celsius"), [(0x7D0, 125.0), (0x190, 25.0), (0x004, 0.25), (0x804, -0.25), (0x940, -20.0)]
)
def test_amg8833_thermistor_vectors(word: int, celsius: float) -> None:
    assert decode_thermistor(word) == celsius


def test_amg8833_pixel_order_is_row_major() -> None:
    raw = b"".join((i * 4).to_bytes(2, "little") for i in range(64))  # pixel i = i C
    frame = decode_pixels(raw)
    assert frame[0, 1] == 1.0 and frame[1, 0] == 8.0 and frame[7, 7] == 63.0


def test_bh1750_vector_and_modes() -> None:
    assert round(counts_to_lux(0x8390)) == 28067
    assert counts_to_lux(0x8390, Bh1750Mode.H_RES2) == pytest.approx(28067 / 2, abs=0.5)
    assert counts_to_lux(1200, Bh1750Mode.H_RES, mtreg=138) == pytest.approx(500.0)


@pytest.mark.parametrize(("ticks", "celsius"), [(0, -45.0), (0xFFFF, 130.0), (0x6666, 25.0)])
def test_sht_temperature_vectors(ticks: int, celsius: float) -> None:
    assert ticks_to_celsius(ticks) == pytest.approx(celsius, abs=1e-3)


def test_sht4x_humidity_vector_and_clamp() -> None:
    assert sht4x_ticks_to_rh(0x6666) == pytest.approx(44.0, abs=1e-3)
    assert sht4x_ticks_to_rh(0) == 0.0 and sht4x_ticks_to_rh(0xFFFF) == 100.0
    assert ticks_to_rh(0xFFFF) == 100.0


def test_scd41_test_frame() -> None:
    m = decode_measurement(bytes.fromhex("01F4336667A25EB93C"))
    assert m.co2_ppm == 500
    assert m.temperature_c == pytest.approx(25.0, abs=0.01)
    assert m.humidity_pct == pytest.approx(37.0, abs=0.01)
    with pytest.raises(ChecksumError):
        decode_measurement(bytes.fromhex("01F4336667A25EB93D"))


def test_scd41_frc_answer() -> None:
    assert decode_frc(0x8000 - 25) == -25
    with pytest.raises(CalibrationRefusedError):
        decode_frc(0xFFFF)


def test_dwm1001_captured_ble_vector() -> None:
    data = bytes.fromhex("0200000000000000000000000000032D09D60D00006428842F0A000064238E5D0F000064")
    loc = parse_ble_location(data)
    assert loc.position is not None and (loc.position.x_m, loc.position.y_m, loc.position.z_m) == (0, 0, 0)
    assert loc.position.quality == 0
    assert [(d.anchor_id, round(d.distance_m * 1000), d.quality) for d in loc.distances] == [
        (0x092D, 3542, 100),
        (0x8428, 2607, 100),
        (0x8E23, 3933, 100),
    ]


def test_dwm1001_coordinates_are_signed() -> None:
    data = bytes([0]) + (1500).to_bytes(4, "little", signed=True) + (-2500).to_bytes(4, "little", signed=True)
    data += (-11).to_bytes(4, "little", signed=True) + bytes([87])
    loc = parse_ble_location(data)
    assert loc.position is not None
    assert (loc.position.x_m, loc.position.y_m, loc.position.z_m, loc.position.quality) == (1.5, -2.5, -0.011, 87)
    assert loc.distances == ()


def test_dwm1001_truncated_notification_is_an_error() -> None:
    with pytest.raises(DriverError, match="truncated"):
        parse_ble_location(bytes.fromhex("02000000"))


def test_loc_get_tag_response() -> None:
    pos = (1000).to_bytes(4, "little") + (-2000).to_bytes(4, "little", signed=True) + (300).to_bytes(4, "little")
    anchor = (0x1A2B).to_bytes(2, "little") + (4567).to_bytes(4, "little") + bytes([90]) + bytes(13)
    body = bytes([1]) + anchor
    data = b"\x40\x01\x00\x41\x0d" + pos + bytes([64]) + bytes([0x49, len(body)]) + body
    loc = parse_loc_get(data)
    assert loc.position is not None and (loc.position.x_m, loc.position.y_m, loc.position.quality) == (1.0, -2.0, 64)
    assert [(d.anchor_id, d.distance_m, d.quality) for d in loc.distances] == [(0x1A2B, 4.567, 90)]


def test_loc_get_anchor_response_and_errors() -> None:
    entry = (0x0102030405060708).to_bytes(8, "little") + (2500).to_bytes(4, "little") + bytes([77])
    data = b"\x40\x01\x00\x41\x0d" + bytes(13) + bytes([0x48, 14, 1]) + entry
    loc = parse_loc_get(data)
    assert loc.distances[0].anchor_id == 0x0102030405060708 and loc.distances[0].distance_m == 2.5
    with pytest.raises(DriverError, match="busy"):
        parse_loc_get(b"\x40\x01\x04")
    with pytest.raises(DriverError):
        parse_loc_get(b"\x41\x0d")
