"""The SQLite outbox on real files: durability, sequence numbers, bounds and drop accounting."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from edge_agent.sync.outbox import MessageClass, Outbox
from edge_agent.sync.uplink import Uplink
from tests.sync.conftest import RecordingTarget, WallClock, site_config, zone_view


async def _put_and_ack_the_first(ob: Outbox, count: int) -> list[int]:
    """``count`` rows put and committed, then the first acknowledged and committed: their sequence numbers."""
    seqs = [ob.next_seq() for _ in range(count)]
    for s in seqs:
        ob.put(s, "t", b"{}", MessageClass.PERIODIC)
    await ob.flush()
    ob.ack(seqs[0])
    await ob.flush()
    return seqs


async def test_rows_survive_a_reopen_and_sequence_keeps_rising(tmp_path: Path) -> None:
    db = tmp_path / "outbox.sqlite3"
    async with Outbox(db) as ob:
        seqs = await _put_and_ack_the_first(ob, 5)
        epoch = ob.epoch
    async with Outbox(db) as ob:
        assert ob.epoch == epoch
        assert [r.seq for r in await ob.read(0)] == seqs[1:]
        assert ob.next_seq() == seqs[-1] + 1
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_sequence_of_a_durable_seq_is_never_reused(tmp_path: Path) -> None:
    db = tmp_path / "outbox.sqlite3"
    async with Outbox(db) as ob:
        birth = await ob.durable_seq()
    async with Outbox(db) as ob:
        assert ob.next_seq() > birth


async def test_a_cut_counts_only_what_was_produced_before_it(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.sqlite3") as ob:
        before = [ob.next_seq() for _ in range(3)]
        for seq in before:
            ob.put(seq, "t", b"{}", MessageClass.PERIODIC)
        ob.ack(before[0])
        ob.cut()
        after = ob.next_seq()
        ob.put(after, "t", b"{}", MessageClass.PERIODIC)
        for seq in (*before[1:], after):
            ob.ack(seq)
        assert (ob.rows_put, ob.rows_acked) == (4, 4)
        assert (ob.rows_put_by_cut, ob.rows_acked_by_cut) == (3, 3)  # the late row is not the day's


async def test_uncommitted_rows_are_not_readable_and_commit_batches(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.sqlite3", flush_interval_s=30.0, flush_max=1000) as ob:
        for _ in range(10):
            ob.put(ob.next_seq(), "t", b"{}", MessageClass.PERIODIC)
        assert await ob.read(0) == []  # batched: nothing committed yet
        assert ob.committed_high == 0
        await ob.flush()
        assert len(await ob.read(0)) == 10
        assert ob.committed_high == 10


async def test_urgent_rows_commit_promptly(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.sqlite3", flush_interval_s=30.0, urgent_delay_s=0.01) as ob:
        ob.put(ob.next_seq(), "t", b"{}", MessageClass.RECORD, urgent=True)
        assert await ob.wait_committed(0, 5.0)


async def test_byte_bound_drops_oldest_summaries_keeps_events_and_counts(tmp_path: Path) -> None:
    db = tmp_path / "o.sqlite3"
    payload = b"x" * 1000
    async with Outbox(db, max_bytes=64 * 1024) as ob:
        kinds = {}
        for i in range(200):
            seq = ob.next_seq()
            klass = MessageClass.RECORD if i % 10 == 0 else MessageClass.PERIODIC
            kinds[seq] = klass
            ob.put(seq, "t", payload, klass)
            if i % 20 == 19:
                await ob.flush()
        await ob.flush()
        kept = [r.seq for r in await ob.read(0, limit=1000)]
        stats = ob.stats()
    assert stats.bytes <= 64 * 1024
    assert stats.dropped == 200 - len(kept)
    assert all(kinds[s] is MessageClass.RECORD for s in range(1, 201) if s % 10 == 1)  # sanity of the setup
    assert {s for s in kinds if kinds[s] is MessageClass.RECORD} <= set(kept), "an event was dropped"
    periodic_kept = [s for s in kept if kinds[s] is MessageClass.PERIODIC]
    assert periodic_kept == sorted(periodic_kept)
    assert min(periodic_kept) > max(s for s in kinds if kinds[s] is MessageClass.PERIODIC and s not in kept)
    async with Outbox(db, max_bytes=64 * 1024) as ob:
        assert ob.stats().dropped == stats.dropped  # persisted


async def test_events_go_only_when_no_summary_is_left(tmp_path: Path) -> None:
    async with Outbox(tmp_path / "o.sqlite3", max_bytes=64 * 1024) as ob:
        for _ in range(100):
            ob.put(ob.next_seq(), "e", b"e" * 1000, MessageClass.RECORD)
        await ob.flush()
        kept = [r.seq for r in await ob.read(0, limit=1000)]
    assert kept == list(range(100 - len(kept) + 1, 101))  # the oldest events went, in order


async def _aged_then_reopened(db: Path, rows: int, aged: str) -> tuple[list[int], int]:
    """Put ``rows`` rows, make those matching ``aged`` (an SQL condition) two hours old, reopen the
    outbox with a one-hour bound and put one more: the sequence numbers left and the count dropped."""
    async with Outbox(db, max_age_s=3600) as ob:
        for _ in range(rows):
            ob.put(ob.next_seq(), "t", b"{}", MessageClass.RECORD)
        await ob.flush()
    with sqlite3.connect(db) as con:
        con.execute(f"UPDATE outbox SET created = created - 7200 WHERE {aged}")
    async with Outbox(db, max_age_s=3600) as ob:
        ob.put(ob.next_seq(), "t", b"{}", MessageClass.RECORD)
        await ob.flush()
        return [r.seq for r in await ob.read(0, limit=1000)], ob.stats().dropped


async def test_age_bound_drops_old_rows(tmp_path: Path) -> None:
    seqs, dropped = await _aged_then_reopened(tmp_path / "o.sqlite3", 3, "seq < 3")
    assert seqs == [3, 4] and dropped == 2


async def test_age_bound_looks_at_the_oldest_rows_by_sequence_only(tmp_path: Path) -> None:
    """Rows are aged from the front of the queue, 500 at a time: an old row behind 500 newer ones
    (a clock set back, then forward) stays until the rows before it have gone."""
    seqs, dropped = await _aged_then_reopened(tmp_path / "o.sqlite3", 520, "seq IN (2, 510)")
    assert 2 not in seqs and 510 in seqs and len(seqs) == 520 and dropped == 1


async def test_health_reports_outbox_depth_and_drops(tmp_path: Path) -> None:
    cfg = site_config(tmp_path, 1)
    async with Outbox(tmp_path / "o.sqlite3", max_bytes=64 * 1024) as ob:
        up = Uplink(cfg, ob, WallClock(), RecordingTarget(), version="t", config_hash="h")
        for i in range(400):
            up.publish_zone_summary(zone_view("z1", i % 20), force=True)
        await ob.flush()
        seq = up.publish_health(sensors_healthy=5, sensors_unhealthy=1)
        await ob.flush()
        rows = await ob.read(seq - 1)
    health = json.loads(rows[0].payload)
    assert health["dropped"] > 0
    assert health["outbox_depth"] == 400 - health["dropped"]
    assert health["sensors_unhealthy"] == 1 and health["clock_synced"] is True


async def test_an_inline_outbox_keeps_the_same_file_without_a_thread(tmp_path: Path) -> None:
    """The simulated floor's outbox (``inline``): the same rows, sequence and power-cut rule on the
    same file, written from the loop's own thread."""
    import threading

    db = tmp_path / "outbox.sqlite3"
    async with Outbox(db, inline=True) as ob:
        seqs = await _put_and_ack_the_first(ob, 4)
        assert not [t for t in threading.enumerate() if t.name.startswith("outbox-db")]
    ob = Outbox(db, inline=True)
    await ob.__aenter__()
    assert [r.seq for r in await ob.read(0)] == seqs[1:]
    late = ob.next_seq()
    ob.put(late, "t", b"{}", MessageClass.PERIODIC)
    ob.abandon()  # a power cut: the uncommitted row is lost, the committed ones stay
    await ob.__aexit__(None, None, None)
    async with Outbox(db) as threaded:  # a gateway's outbox reads what the inline one wrote
        assert [r.seq for r in await threaded.read(0)] == seqs[1:]
        assert threaded.next_seq() == late  # never committed, so its number is free again
