"""The outbox's committed tail: the rows of its latest commits, kept in memory for the live stream.

Why it exists: the uplink's live stream publishes each row once its commit has returned, and it
read every one of them back from SQLite to do so: a query on the outbox's thread and a hand-off to
that thread and back for every read, about a tenth of the gateway's CPU a forwarded message at a few
thousand messages a second (docs/benchmarks.md). The rows it reads are the ones the outbox has just
written, so the outbox keeps them.

What is promised does not change:

* a row enters the tail only after its commit has returned, so the stream still sends nothing that
  a power cut could take back;
* the tail answers a read only when it holds every row the database would return for it: every
  committed, not yet deleted row with ``seq > floor``, in seq order. Any other read goes to SQLite;
* whatever deletes rows other than acknowledged ones (the outbox's bounds, the retention sweep), or
  a commit whose rows do not follow the tail's in seq order, empties the tail and raises its floor to
  the committed high-water mark, so SQLite answers until the tail has caught up again;
* it holds at most ``size`` rows: the oldest leave it (not the database) and raise the floor.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence, Set
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_agent.sync.outbox import Row


class CommittedTail:
    """The committed rows above ``floor`` (see the module docstring)."""

    def __init__(self, floor: int = 0, size: int = 2000) -> None:
        self.floor = floor
        self.size = size
        self._seqs: list[int] = []
        self._rows: list[Row] = []

    def __len__(self) -> int:
        return len(self._rows)

    def covers(self, after: int) -> bool:
        """Whether the tail holds every committed row with ``seq > after``."""
        return after >= self.floor

    def rows(self, after: int, limit: int, acked: Set[int]) -> list[Row]:
        """Up to ``limit`` rows with ``seq > after``, in seq order, skipping acknowledged ones; only
        for an ``after`` the tail :meth:`covers`."""
        found: list[Row] = []
        rows = self._rows
        for i in range(bisect.bisect_right(self._seqs, after), len(rows)):
            row = rows[i]
            if row.seq not in acked:
                found.append(row)
                if len(found) >= limit:
                    break
        return found

    def reset(self, high: int) -> None:
        """Forget every row: from now on rows up to ``high`` are the database's to answer."""
        self._seqs.clear()
        self._rows.clear()
        self.floor = max(self.floor, high)

    def committed(self, rows: Sequence[Row], deleted: Set[int], high: int) -> None:
        """A commit returned: it wrote ``rows`` and deleted the acknowledged rows ``deleted``;
        ``high`` is the committed high-water mark after it."""
        last = self._seqs[-1] if self._seqs else self.floor
        for row in rows:
            if row.seq <= last:  # out of seq order: the tail could not answer reads below it whole
                self.reset(high)
                return
            last = row.seq
        if deleted and self._seqs:
            kept = [i for i, seq in enumerate(self._seqs) if seq not in deleted]
            if len(kept) < len(self._seqs):
                self._seqs = [self._seqs[i] for i in kept]
                self._rows = [self._rows[i] for i in kept]
        self._seqs.extend(row.seq for row in rows)
        self._rows.extend(rows)
        over = len(self._rows) - self.size
        if over > 0:
            self.floor = self._seqs[over - 1]
            del self._seqs[:over], self._rows[:over]
