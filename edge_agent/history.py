"""The gateway's durable zone history: per-zone counts on the forecast's grid, in SQLite.

The edge forecast needs four weeks of each zone's counts, and a site that wants to retrain (or
join a federation) needs months. Memory is lost at every restart, so every gateway keeps
``<state_dir>/history.sqlite``: one row per zone and 15-minute grid slot (the last people count
and free-seat count seen in the slot ``(g - 15 min, g]``, stamped ``g``), exactly what
:func:`models.history.resample` makes of the raw observations, so the grid rebuilt from the
store equals the one built from memory.

SD cards wear: a slot is written once, when the next one begins (one small transaction per
15 minutes for the whole floor), in WAL mode with ``synchronous=FULL``, so a power cut loses at
most the slot in progress and never corrupts what was committed. Rows older than the retention
(``[history] retention_days``, default 400) are pruned once a day. At start-up
:meth:`HistoryStore.warm` fills the forecaster's in-memory :class:`~models.history.ZoneHistory`
from the store: no cold start after a reboot.

Aggregates only: zone ids, slot times and counts. ``edge-agent model history export`` writes the
documented ``timestamp,zone,occupied`` CSV from it.

Blocking (sqlite3): the daemon calls it through ``asyncio.to_thread`` (or inline on virtual time).
Several threads use one store: the forecast loop commits (in a worker thread, or on the loop on
virtual time), the retention sweep prunes in another, and the forecast loop closes it on the loop
when it stops, possibly while a prune is still running. An sqlite3 connection closed under a
statement another thread is stepping frees memory that statement still uses, and the process
dies with a segmentation fault; so every use of the connection, closing included, holds the
store's lock, and a closed store refuses with :class:`HistoryStoreError`.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

from models.errors import HistoryStoreError
from models.history import STEP_MIN, ZoneHistory, at_minutes, minutes

FILE_NAME = "history.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS zones (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS counts (
    zone INTEGER NOT NULL REFERENCES zones(id),
    slot INTEGER NOT NULL,          -- grid time = EPOCH + slot * 15 min (wall clock)
    occupied REAL NOT NULL,
    free REAL,
    PRIMARY KEY (zone, slot)
) WITHOUT ROWID;
"""
PRUNE_EVERY_SLOTS = 1440 // STEP_MIN  # once a day
READ_BATCH = 4096  # rows read per hold of the store's lock


def slot_of(t: datetime) -> int:
    """The grid slot whose window ``(g - step, g]`` holds wall time ``t``."""
    return math.ceil(minutes(t) / STEP_MIN - 1e-9)


def time_of(slot: int) -> datetime:
    return at_minutes(slot * STEP_MIN)


class HistoryStore:
    """Durable per-zone counts (see the module docstring). One writer; readers may open the file too."""

    def __init__(self, path: Path | str, retention_days: int = 400, *, readonly: bool = False) -> None:
        path = self.path = Path(path)
        self.retention_days = retention_days
        self.readonly = readonly
        self._pending: dict[tuple[str, int], tuple[float, float | None]] = {}
        self._zone_ids: dict[str, int] = {}
        self._last_prune = -(10**12)
        self._lock = threading.RLock()  # the pending slots and every use of the connection (module docstring)
        self._closed = False
        try:
            if readonly:
                self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(SCHEMA)
            self._zone_ids = {name: i for i, name in self._db.execute("SELECT id, name FROM zones")}
        except sqlite3.Error as exc:
            raise HistoryStoreError(f"{path}: cannot open the zone history ({exc})") from exc

    @classmethod
    def in_state_dir(cls, state_dir: Path, retention_days: int = 400) -> HistoryStore:
        return cls(state_dir / FILE_NAME, retention_days)

    # -- writing -----------------------------------------------------------------------------
    def record(self, t: datetime, counts: Mapping[str, tuple[float, float | None]]) -> int:
        """Note each zone's (people, free seats) at wall time ``t``; commit slots that have closed.

        Returns the number of rows committed by this call.
        """
        slot = slot_of(t)
        with self._lock:
            for zone, value in counts.items():
                self._pending[(zone, slot)] = value
            closed = {key: v for key, v in self._pending.items() if key[1] < slot}
            if not closed:
                return 0
            for key in closed:
                del self._pending[key]
        self._write(closed)
        if slot - self._last_prune >= PRUNE_EVERY_SLOTS:
            self.prune(t)
            self._last_prune = slot
        return len(closed)

    def record_many(self, rows: Iterable[tuple[datetime, str, float]]) -> int:
        """Commit many past (wall time, zone, people) at once, in one transaction: seeding a gateway
        with a recorded history (a new gateway taking over a floor's, a test). The last count of each
        slot wins, as with :meth:`record`. Returns the number of slots written."""
        slots: dict[tuple[str, int], tuple[float, float | None]] = {}
        for t, zone, people in rows:
            slots[(zone, slot_of(t))] = (float(people), None)
        if slots:
            self._write(slots)
        return len(slots)

    def flush(self) -> int:
        """Commit everything noted, including the slot in progress (at shutdown)."""
        with self._lock:
            rows, self._pending = self._pending, {}
        if rows:
            self._write(rows)
        return len(rows)

    def _connection(self) -> sqlite3.Connection:
        """The open connection; call with the lock held."""
        if self._closed:
            raise HistoryStoreError(f"{self.path}: the zone history is closed")
        return self._db

    def _zone_id(self, zone: str) -> int:
        known = self._zone_ids.get(zone)
        if known is None:
            self._db.execute("INSERT OR IGNORE INTO zones (name) VALUES (?)", (zone,))
            known = int(self._db.execute("SELECT id FROM zones WHERE name = ?", (zone,)).fetchone()[0])
            self._zone_ids[zone] = known
        return known

    def _write(self, rows: Mapping[tuple[str, int], tuple[float, float | None]]) -> None:
        with self._lock:
            db = self._connection()
            try:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(
                    "INSERT OR REPLACE INTO counts (zone, slot, occupied, free) VALUES (?, ?, ?, ?)",
                    [(self._zone_id(zone), slot, occ, free) for (zone, slot), (occ, free) in rows.items()],
                )
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise HistoryStoreError(f"{self.path}: cannot write the zone history ({exc})") from exc

    def prune(self, now: datetime) -> int:
        """Delete rows older than the retention; returns how many went."""
        oldest = slot_of(now - timedelta(days=self.retention_days))
        with self._lock:
            try:
                cur = self._connection().execute("DELETE FROM counts WHERE slot < ?", (oldest,))
            except sqlite3.Error as exc:
                raise HistoryStoreError(f"{self.path}: cannot prune the zone history ({exc})") from exc
            return cur.rowcount

    # -- reading -----------------------------------------------------------------------------
    def rows(self, since: datetime | None = None,
             until: datetime | None = None) -> Iterator[tuple[datetime, str, float]]:
        """(grid time, zone, people) in time order, committed rows only, ``since <= t < until``.

        Read in batches, each under the lock, so a caller that is slow between rows never holds
        the store (and a close never pulls the connection from under an unfinished read).
        """
        lo = slot_of(since) if since is not None else -(2**62)
        hi = slot_of(until) if until is not None else 2**62
        select = "SELECT c.slot, z.name, c.occupied FROM counts c JOIN zones z ON z.id = c.zone WHERE "
        order = " AND c.slot < ? ORDER BY c.slot, z.name LIMIT ?"
        start: tuple[object, ...] = (lo,)
        sql = select + "c.slot >= ?" + order
        while True:
            with self._lock:
                try:
                    batch = self._connection().execute(sql, (*start, hi, READ_BATCH)).fetchall()
                except sqlite3.Error as exc:
                    raise HistoryStoreError(f"{self.path}: cannot read the zone history ({exc})") from exc
            for slot, zone, occupied in batch:
                yield time_of(int(slot)), str(zone), float(occupied)
            if len(batch) < READ_BATCH:
                return
            sql = select + "(c.slot, z.name) > (?, ?)" + order  # on from the last row read
            start = (int(batch[-1][0]), str(batch[-1][1]))

    def observations(self, since: datetime | None = None) -> dict[str, list[tuple[datetime, float]]]:
        """Per-zone observations, oldest first (what :mod:`models.training` reads)."""
        out: dict[str, list[tuple[datetime, float]]] = {}
        for t, zone, value in self.rows(since):
            out.setdefault(zone, []).append((t, value))
        return out

    def warm(self, histories: Mapping[str, ZoneHistory], now: datetime, days: float = 29.0) -> int:
        """Fill the edge's in-memory histories from the store (start-up); returns rows loaded."""
        loaded = 0
        for t, zone, value in self.rows(now - timedelta(days=days)):
            history = histories.get(zone)
            if history is not None:
                history.add(t, value)
                loaded += 1
        return loaded

    def export_csv(self, out: IO[str], since: datetime | None = None, until: datetime | None = None) -> int:
        """Write ``timestamp,zone,occupied`` (the documented history CSV); returns data rows written."""
        out.write("timestamp,zone,occupied\n")
        n = 0
        for t, zone, value in self.rows(since, until):
            out.write(f"{t.isoformat()},{zone},{value:g}\n")
            n += 1
        return n

    def span(self) -> tuple[datetime, datetime, int] | None:
        """First and last grid time and the row count, or None when empty."""
        with self._lock:
            try:
                row = self._connection().execute("SELECT MIN(slot), MAX(slot), COUNT(*) FROM counts").fetchone()
            except sqlite3.Error as exc:
                raise HistoryStoreError(f"{self.path}: cannot read the zone history ({exc})") from exc
        if row is None or row[2] == 0:
            return None
        return time_of(int(row[0])), time_of(int(row[1])), int(row[2])

    def close(self) -> None:
        """Commit what is noted and close; waits for a write, prune or read batch in another thread."""
        with self._lock:
            if self._closed:
                return
            try:
                if not self.readonly:
                    self.flush()
            finally:
                self._closed = True
                self._db.close()


class ZoneRecorder:
    """The forecast loop's memory of the floor: in-memory histories, written through to the store.

    Opening it warms the in-memory histories from the store, so the first forecast after a
    reboot has its lags. If the store cannot be opened the floor keeps forecasting from memory
    (``problem`` says why, and the daemon logs it): history is worth having, not worth stopping for.
    """

    def __init__(self, histories: dict[str, ZoneHistory], store: HistoryStore | None, problem: str = "") -> None:
        self.histories = histories
        self.store = store
        self.problem = problem
        self.warmed = 0

    @classmethod
    def open(cls, capacities: Mapping[str, float | None], state_dir: Path, retention_days: int,
             now: datetime) -> ZoneRecorder:
        histories = {zone: ZoneHistory(capacity=cap) for zone, cap in capacities.items()}
        try:
            store = HistoryStore.in_state_dir(state_dir, retention_days)
        except HistoryStoreError as exc:
            return cls(histories, None, str(exc))
        recorder = cls(histories, store)
        recorder.warmed = store.warm(histories, now)
        return recorder

    def note(self, wall: datetime, counts: Mapping[str, tuple[float, float | None]]) -> None:
        """Add each zone's people count to memory (on the event loop: cheap)."""
        for zone, (people, _) in counts.items():
            history = self.histories.get(zone)
            if history is not None:
                history.add(wall, people)

    def commit(self, wall: datetime, counts: Mapping[str, tuple[float, float | None]]) -> None:
        """Write through to the store (blocking: a thread, or inline on virtual time)."""
        if self.store is None:
            return
        try:
            self.store.record(wall, counts)
        except HistoryStoreError as exc:
            self.problem = str(exc)

    def close(self) -> None:
        if self.store is not None:
            try:
                self.store.close()
            except HistoryStoreError as exc:
                self.problem = str(exc)
            self.store = None
