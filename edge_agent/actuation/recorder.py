"""Recording floor-state traces for ``edge-agent rules replay``, bounded in size and age.

The recorder appends one JSON line per sampled state (see :mod:`rules.trace` for the format). It
never grows without bound on an SD card: at most one line per ``min_interval_s``, and the file is
rotated to ``<name>.1`` (replacing the previous one) when it passes ``max_bytes`` or half of
``max_age_s``, so no line older than ``max_age_s`` survives and the two files together stay
under ``2 * max_bytes`` plus one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from rules.state import FloorState
from rules.trace import dump_state, load_state

T = TypeVar("T")


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


class TraceWriter:
    """The daemon's recorder: samples states on the loop, writes them on one thread of its own, and runs
    the retention sweep and erasures on that same thread (so a rewrite never races an append)."""

    def __init__(self, recorder: TraceRecorder, interval_s: float) -> None:
        self.recorder = recorder
        self.interval_s = interval_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trace")
        self._last = -1e18

    def __call__(self, state: FloorState) -> None:
        if state.t - self._last >= self.interval_s:
            self._last = state.t
            self._executor.submit(self.recorder.record, state)

    async def run(self, fn: Callable[[], T]) -> T:
        return await asyncio.wrap_future(self._executor.submit(fn))


def trace_files(path: Path) -> tuple[Path, Path]:
    """The trace and its rotated predecessor."""
    return path, path.with_name(path.name + ".1")


def _rewrite(path: Path, keep: Callable[[str], bool]) -> int:
    """Keep only the lines ``keep`` accepts (written temp-then-rename); returns how many went."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    except FileNotFoundError:
        return 0
    kept = [line for line in lines if keep(line)]
    gone = len(lines) - len(kept)
    if not gone:
        return 0
    if not kept:
        path.unlink(missing_ok=True)
        return gone
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(kept)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return gone


def _line_wall(line: str) -> float | None:
    try:
        return datetime.fromisoformat(json.loads(line)["wall"]).timestamp()
    except (ValueError, KeyError, TypeError):
        return None


def prune_traces(path: Path, before: float) -> int:
    """Drop trace lines sampled before wall time ``before`` (and unreadable ones); returns how many went."""
    def keep(line: str) -> bool:
        wall = _line_wall(line)
        return wall is not None and wall >= before

    return sum(_rewrite(p, keep) for p in trace_files(path))


def erase_from_traces(path: Path, pseudonym: str) -> int:
    """Drop every trace line that holds ``pseudonym``; returns how many went."""
    return sum(_rewrite(p, lambda line: pseudonym not in line) for p in trace_files(path))


def traces_holding(path: Path, pseudonym: str) -> int:
    """How many trace lines hold ``pseudonym`` (a patron's export)."""
    count = 0
    for p in trace_files(path):
        with contextlib.suppress(FileNotFoundError), p.open(encoding="utf-8") as fh:
            count += sum(1 for line in fh if pseudonym in line)
    return count
