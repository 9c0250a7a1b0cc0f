"""The durable outbox: every upstream message is in SQLite before it is sent.

Why it looks like this:

* **Loses nothing.** A message is committed before the uplink may read it, and its row is deleted
  only after the broker's PUBACK. A crash between PUBACK and the delete commit resends it after the
  restart: delivery is at-least-once, consumers dedupe on ``msg_id``.
* **What a producer is promised.** :meth:`Outbox.put` returns at once and promises nothing about
  the disk: a message is durable when the commit of its batch returns (``flush_interval_s``, or
  ``flush_max`` rows, or ``urgent_delay_s`` for urgent rows; :meth:`Outbox.flush` waits for it).
  Nothing is handed to the uplink, so nothing reaches the broker, before that commit: what a
  central system has seen is never lost by a power cut, and what was not yet committed is at
  most one batch (docs/mqtt.md, *Delivery guarantees*).
* **Easy on the SD card.** WAL mode with ``synchronous=NORMAL`` (a commit is one sequential WAL
  append, fsync only at checkpoints), and writes are batched: rows queue in memory and commit
  together after ``flush_interval_s`` or ``flush_max`` rows; acknowledged deletes ride along with
  the next insert batch. Urgent rows (command results) commit within ``urgent_delay_s``.
* **Bounded.** By payload bytes and by age. Periodic rows (summaries, health, forecasts) go first,
  oldest first; records (events, actuations, command results) only when no periodic row is left.
  Drops are counted in the ``meta`` table, so the count survives restarts and reaches ``health``.
* **Sequence numbers** are allocated in memory and the high-water mark is committed with the rows,
  so a number is reused after a crash only if its row never committed (and so was never sent).
* **Off the loop.** One dedicated thread owns the connection; the event loop only appends to
  lists, and awaits batched calls.
* **One clock.** Commit timers and row ages keep the daemon's clock (virtual in the simulator), so
  a simulated day batches its commits as a gateway's day does.

Retained topics (seat states) live in a separate ``retained`` table holding only the latest payload
per topic: they are current state, republished after every reconnect, never replayed as history.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, TypeVar

from drivers.errors import SyncError
from drivers.ports import Clock
from edge_agent.clock import SystemClock

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    klass INTEGER NOT NULL,
    created REAL NOT NULL,
    size INTEGER NOT NULL,
    correlation BLOB  -- MQTT 5 correlation data of a command result, else NULL
);
CREATE TABLE IF NOT EXISTS retained (topic TEXT PRIMARY KEY, payload BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
"""


class MessageClass(IntEnum):
    """Drop order under the byte bound: lower classes are dropped first."""

    PERIODIC = 0  # summaries, health, forecasts: the next one supersedes them
    RECORD = 1  # events, actuations, command results: history, kept longest


@dataclass(frozen=True, slots=True)
class Row:
    seq: int
    topic: str
    payload: bytes
    klass: MessageClass
    correlation: bytes | None = None


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    bytes: int
    oldest_age_s: float | None
    dropped: int


class Outbox:
    """SQLite outbox in ``state_dir``; use as ``async with Outbox(...) as outbox``."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        max_age_s: float = 168 * 3600.0,
        flush_interval_s: float = 1.0,
        flush_max: int = 500,
        urgent_delay_s: float = 0.05,
        ack_flush_interval_s: float = 30.0,
        clock: Clock | None = None,
        inline: bool = False,
    ) -> None:
        self.path = path
        # The database on the event loop's own thread instead of a thread of its own. Only for a
        # simulated floor on virtual time: there the loop stands still while a thread works, so a
        # thread saves nothing and its hand-offs (a wake-up each way, the GIL passed back and
        # forth) cost more than the writes. A gateway always writes from the thread.
        self.inline = inline
        self._open_inline = False
        self.clock: Clock = clock or SystemClock()
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.flush_interval_s = flush_interval_s
        self.flush_max = flush_max
        self.urgent_delay_s = urgent_delay_s
        self.ack_flush_interval_s = ack_flush_interval_s
        self.epoch = ""  # random id of this database, part of every msg_id
        self.committed_high = 0  # highest committed seq
        self.rows_put = 0  # messages queued since this Outbox was opened (retained state not included)
        self.rows_acked = 0  # of those and of older backlog, acknowledged by the broker
        self.cut_seq: int | None = None  # set by cut(): later messages are not counted below
        self.rows_put_by_cut = 0
        self.rows_acked_by_cut = 0  # acknowledged rows with seq <= cut_seq (or all, before a cut)
        self.dropped_by_cut = 0  # the drop counter (over the file's life) when cut() was called
        self._next_seq = 1
        self._pending: list[tuple[int, str, bytes, int, float, bytes | None]] = []
        self._pending_retained: dict[str, bytes] = {}
        self._acked: set[int] = set()
        self._first_pending_at: float | None = None
        self._first_ack_at: float | None = None
        self._urgent = False
        self._wake: asyncio.Event | None = None
        self._committed: asyncio.Condition | None = None
        self._listeners: list[Callable[[int, dict[str, bytes]], None]] = []
        self._persisted_next_seq = 1
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._writer: asyncio.Task[None] | None = None
        # Owned by the DB thread, read (whole ints) from the loop.
        self._depth = 0
        self._bytes = 0
        self._dropped = 0
        self._oldest_created: float | None = None
        self._last_age_check = 0.0

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Outbox:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._wake = asyncio.Event()
        self._committed = asyncio.Condition()
        if self.inline:
            self._open()
            self._open_inline = True
            self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name="outbox-writer")
            return self
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-db")
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open)
        self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name="outbox-writer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._executor is None and not self._open_inline:
            return  # abandoned (a simulated power cut): nothing more may reach the disk
        if self._writer is not None:
            self._writer.cancel()
            try:
                await self._writer
            except asyncio.CancelledError:
                pass
            self._writer = None
        try:
            await self._commit()
        finally:
            await self.call(self._close)
            self._open_inline = False
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

    def abandon(self) -> None:
        """Stop as a power cut would: no final commit; what was committed stays on disk."""
        if self._writer is not None:
            self._writer.cancel()
            self._writer = None
        self._pending.clear()
        self._pending_retained.clear()
        if self._open_inline:
            self._close_quietly()
            self._open_inline = False
        if self._executor is not None:
            self._executor.submit(self._close_quietly)
            self._executor.shutdown(wait=True)
            self._executor = None

    def _close_quietly(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the outbox thread (other sync tables share the database)."""
        if self._open_inline:
            return self._with_db(fn)
        if self._executor is None:
            raise SyncError("the outbox is not open; use it as 'async with Outbox(...)'")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._with_db, fn)

    def _with_db(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._db is None:
            raise SyncError("the outbox database is closed")
        try:
            return fn(self._db)
        except sqlite3.Error as exc:
            raise SyncError(f"outbox database {self.path}: {exc}") from exc

    def _open(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
            # Small pages: a commit appends every page it touched to the WAL, and outbox rows are
            # a few hundred bytes, so 1 KiB pages cut SD writes ~3x against the 4 KiB default.
            # No secondary index for the same reason; the bound queries scan by seq instead.
            db.execute("PRAGMA page_size=1024")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA journal_size_limit=1048576")  # keep the WAL file itself small
            # A command result may carry a patron's export until acknowledged: freed pages are zeroed.
            db.execute("PRAGMA secure_delete=ON")
            db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise SyncError(f"cannot open the outbox {self.path}: {exc}; check the state_dir permissions") from exc
        self._db = db
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if "epoch" not in meta:
            meta["epoch"] = secrets.token_hex(4)
            db.execute("INSERT INTO meta VALUES ('epoch', ?)", (meta["epoch"],))
        self.epoch = str(meta["epoch"])
        self._dropped = int(meta.get("dropped", 0))
        (max_seq,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM outbox").fetchone()
        self._next_seq = max(int(meta.get("next_seq", 1)), int(max_seq) + 1)
        self.committed_high = self._next_seq - 1
        self._persisted_next_seq = self._next_seq
        self._refresh_totals(db)

    def _close(self, db: sqlite3.Connection) -> None:
        db.close()
        self._db = None

    # -- producing ------------------------------------------------------------------------------

    def next_seq(self) -> int:
        """Reserve the next sequence number (the caller puts a message with it)."""
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def cut(self) -> None:
        """Close the books for a report: from now on only messages produced so far are counted.

        The simulator calls it at the end of the simulated day, so that what the daemon produces
        while the last messages drain (a time that follows the wall clock) changes no figure.
        """
        self.cut_seq = self._next_seq - 1
        self.rows_put_by_cut = self.rows_put
        self.dropped_by_cut = self._dropped

    def msg_id(self, gateway: str, seq: int) -> str:
        return f"{gateway}:{self.epoch}:{seq}"

    def put(
        self,
        seq: int,
        topic: str,
        payload: bytes,
        klass: MessageClass,
        *,
        urgent: bool = False,
        correlation: bytes | None = None,
    ) -> None:
        """Queue a message for the next commit; never blocks."""
        self.rows_put += 1
        self._pending.append((seq, topic, payload, int(klass), self.clock.time(), correlation))
        # Wake the writer only when this row moves its next commit earlier: the batch's first row
        # starts the timer, an urgent row shortens it, a full batch makes it due now.
        if self._first_pending_at is None or (urgent and not self._urgent) or len(self._pending) >= self.flush_max:
            self._urgent = self._urgent or urgent
            self._poke()

    def put_retained(self, topic: str, payload: bytes) -> None:
        """Replace the current retained payload of ``topic`` (committed with the next batch)."""
        self._pending_retained[topic] = payload
        self._poke()

    async def sweep(self, *, results_before: float, clear_retained: Callable[[str], bool]) -> dict[str, int]:
        """The retention sweep's part (edge_agent.privacy.retention): rows past ``max_age_s`` dropped,
        command results created before ``results_before`` deleted, the WAL truncated (freed pages are
        zeroed: secure_delete), and an empty retained payload queued for each topic ``clear_retained``
        names, so the broker forgets its retained message too."""
        await self._commit()

        def run(db: sqlite3.Connection) -> tuple[int, int, list[str]]:
            db.execute("BEGIN")
            try:
                self._last_age_check = -float("inf")
                dropped = self._enforce_bounds(db)
                if dropped:
                    self._dropped += dropped
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('dropped', ?)", (self._dropped,))
                has_results = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'command_results'").fetchone()
                results = db.execute("DELETE FROM command_results WHERE created < ?",
                                     (results_before,)).rowcount if has_results else 0
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                self._refresh_totals(db)
                raise
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            topics = [str(t) for (t,) in db.execute("SELECT topic FROM retained WHERE length(payload) > 0")]
            return dropped, int(results), topics

        dropped, results, topics = await self.call(run)
        cleared = [t for t in topics if clear_retained(t)]
        for topic in cleared:
            self.put_retained(topic, b"")
        return {"messages": dropped, "command_results": results, "retained_cleared": len(cleared)}

    def ack(self, seq: int) -> None:
        """The broker acknowledged ``seq``: its row is deleted with a later commit."""
        first = not self._acked
        if first:
            self._first_ack_at = self.clock.monotonic()
        if seq not in self._acked:
            self.rows_acked += 1
            if self.cut_seq is None or seq <= self.cut_seq:
                self.rows_acked_by_cut += 1
        self._acked.add(seq)
        # As for put(): only the first ack of a batch and a full batch change when the writer commits.
        if self._wake is not None and (first or len(self._acked) >= self.flush_max):
            self._wake.set()

    def add_listener(self, fn: Callable[[int, dict[str, bytes]], None]) -> None:
        """``fn(committed_high, retained_changes)`` runs on the loop after every commit."""
        self._listeners.append(fn)

    def _poke(self) -> None:
        if self._first_pending_at is None:
            self._first_pending_at = self.clock.monotonic()
        if self._wake is not None:
            self._wake.set()

    async def flush(self) -> None:
        """Commit everything queued now (tests, shutdown, before a controlled restart)."""
        await self._commit()

    async def durable_seq(self) -> int:
        """A sequence number whose allocation is committed, for messages sent without a row (birth).

        Without this, a crash could hand the same number to another message after the restart,
        and a consumer deduplicating on msg_id would discard that one.
        """
        seq = self.next_seq()
        await self._commit()
        return seq

    # -- reading --------------------------------------------------------------------------------

    async def read(self, after: int, before: int | None = None, limit: int = 200) -> list[Row]:
        """Committed rows with ``after < seq < before`` in seq order, skipping acknowledged ones."""
        upper = before if before is not None else 2**62
        acked = frozenset(self._acked)

        def query(db: sqlite3.Connection) -> list[Row]:
            cur = db.execute(
                "SELECT seq, topic, payload, klass, correlation FROM outbox WHERE seq > ? AND seq < ? "
                "ORDER BY seq LIMIT ?",
                (after, upper, limit + len(acked)),
            )
            rows: list[Row] = []
            for s, t, p, k, c in cur:  # stop at the limit: the rows past it may be thousands
                if s not in acked:
                    rows.append(Row(s, t, bytes(p), MessageClass(k), c))
                    if len(rows) >= limit:
                        break
            return rows

        return await self.call(query)

    async def retained(self) -> dict[str, bytes]:
        """Every retained topic's latest committed payload."""
        return await self.call(lambda db: {t: bytes(p) for t, p in db.execute("SELECT topic, payload FROM retained")})

    async def wait_committed(self, above: int, within_s: float) -> bool:
        """Wait until a row with seq > ``above`` is committed (True) or ``within_s`` passes."""
        assert self._committed is not None
        async with self._committed:
            try:
                await asyncio.wait_for(self._committed.wait_for(lambda: self.committed_high > above), within_s)
            except TimeoutError:
                return False
        return True

    def stats(self) -> OutboxStats:
        # Acknowledged rows wait for the next commit to be deleted; they are no longer waiting.
        depth = max(0, self._depth - len(self._acked))
        oldest = None
        if self._oldest_created is not None and depth:
            oldest = max(0.0, self.clock.time() - self._oldest_created)
        return OutboxStats(depth, self._bytes if depth else 0, oldest, self._dropped)

    def drained(self) -> bool:
        """Nothing waits: every committed message is acknowledged and nothing is queued for a commit."""
        return self.stats().depth == 0 and not self._pending

    # -- committing -----------------------------------------------------------------------------

    def _due(self) -> float | None:
        """Monotonic time the next commit is due, or None when there is nothing to write."""
        now = self.clock.monotonic()
        if self._pending or self._pending_retained:
            if len(self._pending) >= self.flush_max:
                return now
            delay = self.urgent_delay_s if self._urgent else self.flush_interval_s
            return (self._first_pending_at or now) + delay
        if self._acked:
            # Only deletes: they ride along with the next insert batch, up to a bound.
            if len(self._acked) >= self.flush_max:
                return now
            return (self._first_ack_at or now) + self.ack_flush_interval_s
        return None

    async def _write_loop(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            due = self._due()
            while due is not None and due > self.clock.monotonic():
                try:  # wait for the commit's time on the clock, or for news (an urgent row, a full batch)
                    await asyncio.wait_for(self._wake.wait(), due - self.clock.monotonic())
                    self._wake.clear()
                except TimeoutError:
                    break
                due = self._due()
            if due is None:
                continue
            try:
                await self._commit()
            except SyncError as exc:
                log.error("outbox commit failed, retrying in 1 s: %s", exc)
                await self.clock.sleep(1.0)
                self._wake.set()

    async def _commit(self) -> None:
        if not (self._pending or self._pending_retained or self._acked or self._next_seq > self._persisted_next_seq):
            return
        rows, retained, acked = self._pending, self._pending_retained, self._acked
        self._pending, self._pending_retained, self._acked = [], {}, set()
        self._first_pending_at, self._first_ack_at, self._urgent = None, None, False
        high = max((r[0] for r in rows), default=0)
        next_seq = self._next_seq
        try:
            await self.call(lambda db: self._write(db, rows, retained, acked, next_seq))
        except BaseException:
            # Put everything back in front so nothing is lost; the writer retries.
            self._pending[:0] = rows
            self._pending_retained = {**retained, **self._pending_retained}
            self._acked |= acked
            raise
        if high > self.committed_high:
            self.committed_high = high
        assert self._committed is not None
        async with self._committed:
            self._committed.notify_all()
        for fn in self._listeners:
            fn(self.committed_high, retained)

    def _write(
        self,
        db: sqlite3.Connection,
        rows: list[tuple[int, str, bytes, int, float, bytes | None]],
        retained: dict[str, bytes],
        acked: set[int],
        next_seq: int,
    ) -> None:
        db.execute("BEGIN")
        try:
            if acked:
                self._delete(db, sorted(acked), count_as_dropped=False)
            if rows:
                db.executemany(
                    "INSERT OR REPLACE INTO outbox (seq, topic, payload, klass, created, size, correlation) "
                    "VALUES (?,?,?,?,?,?,?)",
                    [(s, t, p, k, c, len(p), cd) for s, t, p, k, c, cd in rows],
                )
                self._depth += len(rows)
                self._bytes += sum(len(r[2]) for r in rows)
            if next_seq > self._persisted_next_seq:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('next_seq', ?)", (next_seq,))
            if retained:
                db.executemany("INSERT OR REPLACE INTO retained VALUES (?, ?)", list(retained.items()))
            dropped = self._enforce_bounds(db)
            if dropped:
                self._dropped += dropped
                db.execute("INSERT OR REPLACE INTO meta VALUES ('dropped', ?)", (self._dropped,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._refresh_totals(db)
            raise
        self._persisted_next_seq = max(self._persisted_next_seq, next_seq)
        if self._depth == 0:
            self._oldest_created = None
        elif acked or self._oldest_created is None or dropped:
            row = db.execute("SELECT created FROM outbox ORDER BY seq LIMIT 1").fetchone()
            self._oldest_created = None if row is None else float(row[0])

    def _delete(self, db: sqlite3.Connection, seqs: list[int], *, count_as_dropped: bool) -> int:
        gone = 0
        for i in range(0, len(seqs), 500):
            part = seqs[i : i + 500]
            marks = ",".join("?" * len(part))
            for (size,) in db.execute(f"DELETE FROM outbox WHERE seq IN ({marks}) RETURNING size", part).fetchall():
                gone += 1
                self._depth -= 1
                self._bytes -= int(size)
        return gone if count_as_dropped else 0

    def _enforce_bounds(self, db: sqlite3.Connection) -> int:
        dropped = 0
        # Age: rows are created in seq order, so the oldest are at the front.
        now = self.clock.time()
        if now - self._last_age_check > 60.0 or self._bytes > self.max_bytes:
            self._last_age_check = now
            cutoff = now - self.max_age_s
            while True:
                # The oldest 500 rows, those of them older than the cutoff: filtered by SQLite, not
                # as 500 Python tuples a minute (the outbox of a day without a broker holds thousands).
                oldest = "SELECT seq, created FROM outbox ORDER BY seq LIMIT 500"
                rows = db.execute(f"SELECT seq FROM ({oldest}) WHERE created < ? ORDER BY seq", (cutoff,))
                old = [s for (s,) in rows]
                if not old:
                    break
                dropped += self._delete(db, old, count_as_dropped=True)
        # Bytes: periodic rows oldest first, then records oldest first.
        for klass in MessageClass:
            while self._bytes > self.max_bytes:
                excess = self._bytes - self.max_bytes
                victims: list[int] = []
                freed = 0
                cur = db.execute("SELECT seq, size FROM outbox WHERE klass = ? ORDER BY seq LIMIT 1000", (int(klass),))
                for seq, size in cur:
                    victims.append(seq)
                    freed += size
                    if freed >= excess:
                        break
                if not victims:
                    break
                dropped += self._delete(db, victims, count_as_dropped=True)
        if dropped:
            log.warning("outbox over its bounds: dropped %d message(s)", dropped)
        return dropped

    def _refresh_totals(self, db: sqlite3.Connection) -> None:
        depth, size = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox").fetchone()
        self._depth, self._bytes = int(depth), int(size)
        row = db.execute("SELECT created FROM outbox ORDER BY seq LIMIT 1").fetchone()
        self._oldest_created = None if row is None else float(row[0])


def open_path(state_dir: Path) -> Path:
    """Where the outbox lives inside the state directory."""
    return state_dir / "outbox.sqlite3"


def describe(stats: OutboxStats) -> dict[str, Any]:
    """Stats as the health message fields."""
    return {
        "outbox_depth": stats.depth,
        "outbox_bytes": stats.bytes,
        "outbox_oldest_age_s": None if stats.oldest_age_s is None else round(stats.oldest_age_s, 1),
        "dropped": stats.dropped,
    }
