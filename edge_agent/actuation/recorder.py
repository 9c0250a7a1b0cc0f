"""Recording floor-state traces for ``edge-agent rules replay``, bounded in size and age.

The recorder appends one JSON line per sampled state (see :mod:`rules.trace` for the format). It
never grows without bound on an SD card: at most one line per ``min_interval_s``, and the file is
rotated to ``<name>.1`` (replacing the previous one) when it passes ``max_bytes`` or half of
``max_age_s``, so no line older than ``max_age_s`` survives and the two files together stay
under ``2 * max_bytes`` plus one line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from rules.state import FloorState
from rules.trace import dump_state, load_state


class TraceRecorder:
    """Append sampled floor states to ``path``; call :meth:`record` from the daemon's state loop."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 8 * 1024 * 1024,
        max_age_s: float = 24 * 3600.0,
        min_interval_s: float = 10.0,
        keep_tags: bool = False,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.min_interval_s = min_interval_s
        self.keep_tags = keep_tags
        self._last_t: float | None = None
        self._started_t: float | None = None

    @property
    def rotated(self) -> Path:
        return self.path.with_name(self.path.name + ".1")

    def record(self, state: FloorState) -> bool:
        """Write ``state`` if it is due; returns whether a line was written. OSError propagates."""
        if self._last_t is not None and state.t - self._last_t < self.min_interval_s:
            return False
        if self._started_t is None:
            self._started_t = state.t
        too_old = state.t - self._started_t >= self.max_age_s / 2
        if self.path.exists() and (self.path.stat().st_size >= self.max_bytes or too_old):
            self.path.replace(self.rotated)
            self._started_t = state.t
        line = json.dumps(dump_state(state, keep_tags=self.keep_tags), separators=(",", ":"))
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        self._last_t = state.t
        return True


def read_trace(path: Path) -> Iterator[FloorState]:
    """The states of a trace file in order; a malformed line raises ValueError naming its line number."""
    with Path(path).open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield load_state(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a floor-state line ({type(exc).__name__}: {exc})") from None
