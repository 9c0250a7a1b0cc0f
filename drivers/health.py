"""Device health, bounded retries, and the checks that keep a lying sensor from being believed.

Every driver owns one :class:`DeviceHealth`. The daemon reads it to publish health and to mark a
device's readings *unavailable* (the Home Assistant way): a failing device never takes the floor
down, it just stops being trusted until it answers properly again.

Two kinds of failure are treated differently:

- transport trouble (NACK, CRC, timeout) is often transient, so a read is retried a few times
  with backoff (:func:`with_retries`) and the device turns unhealthy only after
  ``unhealthy_after`` consecutive failed reads;
- an *implausible* value (out of physical range, stuck) means the part answers but lies, so it
  turns unhealthy at once and stays so until a plausible reading arrives.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import TypeVar

from drivers.errors import BusError, ChecksumError, DataNotReadyError, NackError, SensorImplausibleError
from drivers.ports import Clock

T = TypeVar("T")

#: Errors worth retrying: the next transfer may well succeed.
RETRYABLE: tuple[type[Exception], ...] = (NackError, ChecksumError)


@dataclass
class DeviceHealth:
    """What the daemon needs to know about one device's recent behaviour."""

    device: str
    unhealthy_after: int = 3
    last_good: float | None = None
    consecutive_failures: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    reason: str = ""
    implausible: bool = False
    reads: int = 0

    @property
    def healthy(self) -> bool:
        """False after a run of failed reads, or at once when a value was implausible."""
        return not self.implausible and self.consecutive_failures < self.unhealthy_after

    def record_good(self, t: float) -> None:
        """A reading passed every check: forget the failure run."""
        self.reads += 1
        self.last_good = t
        self.consecutive_failures = 0
        self.implausible = False
        self.reason = ""

    def record_failure(self, exc: BaseException) -> None:
        """A read failed after its retries; keep the error class and a one-line reason."""
        self.reads += 1
        self.consecutive_failures += 1
        self.errors[type(exc).__name__] += 1
        self.reason = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, SensorImplausibleError):
            self.implausible = True

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready snapshot for health messages and the CLI."""
        return {
            "device": self.device,
            "healthy": self.healthy,
            "last_good": self.last_good,
            "consecutive_failures": self.consecutive_failures,
            "errors": dict(self.errors),
            "reason": self.reason,
        }


async def with_retries(
    operation: Callable[[], Awaitable[T]],
    clock: Clock,
    *,
    attempts: int = 3,
    backoff_s: float = 0.01,
    retry_on: tuple[type[Exception], ...] = RETRYABLE,
) -> T:
    """Run ``operation`` up to ``attempts`` times, doubling the wait after each retryable error."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    delay = backoff_s
    for attempt in range(attempts):
        try:
            return await operation()
        except retry_on:
            if attempt == attempts - 1:
                raise
        await clock.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable: the loop returns or raises")


async def guarded(
    health: DeviceHealth,
    operation: Callable[[], Awaitable[T]],
    clock: Clock,
    *,
    attempts: int = 3,
    backoff_s: float = 0.01,
) -> T:
    """Retry ``operation``, then record the outcome on ``health``; errors still propagate.

    Only the project's own bus and driver errors are recorded; anything else is a bug and is left
    to crash loudly in tests rather than being counted as a flaky sensor.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    try:
        # The first attempt runs here and the retries, if any, in with_retries: the same attempts
        # and waits, one coroutine fewer on every read (nearly every read succeeds at once).
        try:
            value = await operation()
            retry = False
        except RETRYABLE:
            if attempts == 1:
                raise
            retry = True
        if retry:  # outside the handler: a later failure is not chained to the first
            await clock.sleep(backoff_s)
            value = await with_retries(operation, clock, attempts=attempts - 1, backoff_s=backoff_s * 2)
    except (BusError, ChecksumError, DataNotReadyError, SensorImplausibleError) as exc:
        health.record_failure(exc)
        raise
    health.record_good(clock.monotonic())
    return value


class StuckDetector:
    """Flags a raw value repeated ``limit`` times in a row where the part's noise would move it.

    A real SHT31 or SCD41 always wanders by a few LSB; a value frozen to the bit for minutes
    means a hung conversion or a latched register, not a perfectly still room. ``limit=0``
    disables the check (for parts like the BH1750 whose value can legitimately sit still).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._last: Hashable | None = None
        self._repeats = 0

    def observe(self, raw: Hashable) -> bool:
        """Record one raw value; True when it has now been seen ``limit`` times in a row."""
        if raw == self._last:
            self._repeats += 1
        else:
            self._last = raw
            self._repeats = 1
        return self.limit > 0 and self._repeats >= self.limit

    def reset(self) -> None:
        """Forget history (after a re-initialisation of the part)."""
        self._last = None
        self._repeats = 0


def check_range(device: str, quantity: str, value: float, low: float, high: float) -> float:
    """Return ``value`` or raise SensorImplausibleError naming the device and the limits."""
    if not low <= value <= high:
        raise SensorImplausibleError(
            f"{device}: {quantity} {value:g} outside the part's range {low:g}..{high:g}", device=device
        )
    return value
