"""The injectable clock: monotonic seconds for intervals, wall seconds for timestamps.

A Raspberry Pi has no real-time clock: after a power cut it boots with a wall clock from the
last shutdown until NTP syncs. Every timestamp the gateway publishes therefore carries a flag
saying whether the clock was synchronised when it was taken (``synced``), and the MQTT layer can
correct backlog timestamps once sync arrives (monotonic offset is kept per message).

The simulator supplies a virtual clock with the same surface (``simulator.clock``).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

# systemd-timesyncd touches this file each time it synchronises (see systemd-timesyncd(8)).
TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")


class SystemClock:
    """The real clock. ``synced`` is True once the kernel or timesyncd reports synchronisation."""

    def __init__(self, flag: Path = TIMESYNC_FLAG) -> None:
        self._flag = flag
        self._synced_cache: tuple[float, bool] = (-1e9, False)

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    @property
    def synced(self) -> bool:
        """Whether the wall clock is known to be right (checked at most every 10 s)."""
        now = time.monotonic()
        checked_at, value = self._synced_cache
        if now - checked_at < 10.0:
            return value
        value = self._flag.exists() or _adjtimex_synced()
        self._synced_cache = (now, value)
        return value


def _adjtimex_synced() -> bool:
    """Ask the kernel: STA_UNSYNC clear means an NTP daemon disciplines the clock."""
    try:
        import ctypes
        import ctypes.util

        class Timex(ctypes.Structure):
            _fields_ = [("modes", ctypes.c_uint), ("pad", ctypes.c_byte * 204)]

        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        tx = Timex()
        state = libc.adjtimex(ctypes.byref(tx))
        return int(state) != 5  # TIME_ERROR == 5: clock not synchronised
    except (OSError, AttributeError):
        return False
