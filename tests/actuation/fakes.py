"""Test doubles at the hardware boundary: a hand-advanced clock and recording outputs."""

from __future__ import annotations

from drivers.errors import NackError


class ManualClock:
    """Monotonic time that moves only when a test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1.7e9 + self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeOutput:
    """An output that records commands; can fail the next N sets, report nothing, or report a stuck value."""

    def __init__(self, clock: ManualClock, *, fail_next: int = 0, reports: bool = True,
                 stuck_at: float | None = None) -> None:
        self.clock = clock
        self.fail_next = fail_next
        self.reports = reports
        self.stuck_at = stuck_at
        self.value: float | None = None
        self.sets: list[tuple[float, float, float]] = []  # (t, value, ramp_s)

    async def set(self, value: float, ramp_s: float = 0.0) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise NackError("dimmer node did not acknowledge", bus="node7", address=0x20)
        self.sets.append((self.clock.now, value, ramp_s))
        self.value = value

    async def read_back(self) -> float | None:
        if not self.reports:
            return None
        return self.stuck_at if self.stuck_at is not None else self.value

    @property
    def values(self) -> list[float]:
        return [v for _, v, _ in self.sets]
