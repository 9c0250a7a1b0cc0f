"""The read path every driver shares: the frame decode over every word, the retries' count and
waits, and what a frame carries for the pollers (kept exact while the path was made cheaper)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from drivers.amg8833 import Amg8833, decode_pixel, decode_pixels
from drivers.errors import BusTimeoutError, ChecksumError, NackError
from drivers.health import DeviceHealth, guarded
from simulator.clock import VirtualClock
from simulator.hw.amg8833 import SimAMG8833
from simulator.hw.bus import SimI2CBus
from tests.drivers.conftest import on_virtual_time


def test_frame_decode_matches_the_pixel_formula_for_every_word() -> None:
    """All 65536 register words (the unused top nibble set or not), 64 to a frame."""
    words = np.arange(0x10000, dtype="<u2")
    for start in range(0, 0x10000, 64):
        frame = decode_pixels(words[start : start + 64].tobytes())
        assert frame.dtype == np.float32 and frame.shape == (8, 8)
        expected = [decode_pixel(int(w)) for w in words[start : start + 64]]
        assert frame.ravel().tolist() == expected, f"words 0x{start:04x}.."


def test_frame_decode_rejects_a_short_frame() -> None:
    with pytest.raises(ValueError, match="128 bytes, got 126"):
        decode_pixels(bytes(126))


class CountingClock:
    def __init__(self) -> None:
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return 100.0

    def time(self) -> float:
        return 0.0

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def run_guarded(failures: list[Exception], attempts: int = 3) -> tuple[object, int, CountingClock, DeviceHealth]:
    clock, health, calls = CountingClock(), DeviceHealth("part"), [0]

    async def operation() -> str:
        calls[0] += 1
        if failures:
            raise failures.pop(0)
        return "value"

    async def main() -> object:
        try:
            return await guarded(health, operation, clock, attempts=attempts)
        except Exception as exc:
            return exc

    return asyncio.run(main()), calls[0], clock, health


def test_a_transient_failure_is_retried_after_the_backoff() -> None:
    result, calls, clock, health = run_guarded([NackError("nack"), ChecksumError("crc")])
    assert result == "value" and calls == 3
    assert clock.slept == [0.01, 0.02]
    assert health.healthy and health.consecutive_failures == 0 and health.last_good == 100.0


def test_the_last_attempt_fails_the_read_once_unchained() -> None:
    last = ChecksumError("crc 3")
    result, calls, clock, health = run_guarded([NackError("nack 1"), NackError("nack 2"), last])
    assert result is last and calls == 3 and clock.slept == [0.01, 0.02]
    assert last.__context__ is None  # not shown as raised while handling the first failure
    assert health.consecutive_failures == 1 and health.errors == {"ChecksumError": 1}
    assert health.reason == "ChecksumError: crc 3"


def test_an_error_not_worth_retrying_fails_at_once() -> None:
    timeout = BusTimeoutError("slow")
    result, calls, clock, health = run_guarded([timeout])
    assert result is timeout and calls == 1 and clock.slept == []
    assert health.errors == {"BusTimeoutError": 1}


def test_one_attempt_is_not_retried_and_none_is_refused() -> None:
    nack = NackError("nack")
    result, calls, clock, _ = run_guarded([nack], attempts=1)
    assert result is nack and calls == 1 and clock.slept == []
    result, calls, _, _ = run_guarded([], attempts=0)
    assert isinstance(result, ValueError) and calls == 0


def test_a_frame_carries_its_hottest_pixel() -> None:
    async def body(clock: VirtualClock) -> None:
        bus = SimI2CBus()
        bus.attach(0x69, SimAMG8833(clock.monotonic, noise=0.3, seed=4))
        driver = Amg8833(bus, clock)
        await driver.start()
        for _ in range(5):
            await clock.sleep(0.1)
            frame = await driver.read_frame()
            assert frame.hottest_c == float(frame.pixels.max())

    on_virtual_time(body)
