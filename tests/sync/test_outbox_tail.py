"""The outbox's committed tail answers the live stream's reads exactly as SQLite would.

Random runs of puts (some in reverse seq order), acknowledgements, commits, drops under the byte
bound and by age, and retention sweeps; after each step the tail's answer to a read is compared with the
database's own (a read with ``before`` set always queries SQLite).
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from edge_agent.sync.outbox import MessageClass, Outbox, Row
from edge_agent.sync.outbox_tail import CommittedTail

NEVER = 1e9  # no commit but the test's own: a timer's commit between the two reads would differ


class AgingClock:
    """Real time, but the wall clock moves on when the test says, so rows age past ``max_age_s``."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time() + self.ahead

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@pytest.mark.parametrize("seed", range(6))
async def test_the_tail_reads_what_the_database_holds(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    answered_by_tail = compared = 0
    clock = AgingClock()
    async with Outbox(tmp_path / "outbox.sqlite3", max_bytes=rng.choice([6_000, 40_000, 10**9]),
                      max_age_s=rng.choice([600.0, 10**9]), clock=clock,
                      flush_interval_s=NEVER, flush_max=10**9, ack_flush_interval_s=NEVER) as ob:
        ob._tail.size = rng.choice([5, 50, 2000])
        for _ in range(300):
            op = rng.random()
            if op < 0.45:
                seqs = [ob.next_seq() for _ in range(rng.randint(1, 8))]
                if rng.random() < 0.1:
                    seqs.reverse()  # a producer that took its numbers before another's
                for seq in seqs:
                    klass = rng.choice(list(MessageClass))
                    ob.put(seq, f"t/{seq % 7}", bytes(rng.randint(50, 400)), klass,
                           correlation=b"c" if rng.random() < 0.1 else None)
            elif op < 0.65:
                live = await ob.read(0, before=2**62, limit=10**6)
                for row in rng.sample(live, min(len(live), rng.randint(0, 6))):
                    ob.ack(row.seq)
            elif op < 0.95:
                await ob.flush()
            else:  # committed first, so that the sweep itself finds the rows that have aged
                await ob.flush()
                clock.ahead += rng.uniform(0.0, 400.0)
                await ob.sweep(results_before=0.0, clear_retained=lambda _topic: False)
            high = ob.committed_high
            for after in {0, ob._tail.floor, max(0, high - rng.randint(0, 12)), high}:
                limit = rng.choice([1, 3, 20, 200])
                from_tail = ob._tail.covers(after)
                answered_by_tail += from_tail
                compared += 1
                assert await ob.read(after, limit=limit) == await ob.read(after, before=2**62, limit=limit), (
                    seed, after, limit, from_tail)
    assert answered_by_tail >= compared // 4, (answered_by_tail, compared)  # the tail was what was tested


def test_rows_out_of_seq_order_or_past_the_size_raise_the_floor() -> None:
    def row(seq: int) -> Row:
        return Row(seq, "t", b"p", MessageClass.RECORD)

    tail = CommittedTail(floor=10, size=3)
    tail.committed([row(11), row(12)], set(), 12)
    assert tail.covers(10) and [r.seq for r in tail.rows(10, 10, set())] == [11, 12]
    tail.committed([row(13), row(14)], {11}, 14)  # 11 acknowledged and deleted; 4 rows would be one too many
    assert [r.seq for r in tail.rows(10, 10, set())] == [12, 13, 14] and tail.covers(10)
    tail.committed([row(15)], set(), 15)
    assert tail.floor == 12 and not tail.covers(11) and [r.seq for r in tail.rows(12, 10, {14})] == [13, 15]
    tail.committed([row(17), row(16)], set(), 17)  # out of order: emptied, the database answers up to 17
    assert len(tail) == 0 and tail.floor == 17 and not tail.covers(16) and tail.covers(17)


async def test_rows_the_retention_sweep_drops_are_not_read_from_the_tail(tmp_path: Path) -> None:
    clock = AgingClock()
    async with Outbox(tmp_path / "outbox.sqlite3", max_age_s=600.0, clock=clock, flush_interval_s=NEVER,
                      flush_max=10**9, ack_flush_interval_s=NEVER) as ob:
        for _ in range(5):
            ob.put(ob.next_seq(), "t", b"reading", MessageClass.RECORD)
        await ob.flush()
        assert ob._tail.covers(0) and len(await ob.read(0)) == 5  # from the tail
        clock.ahead += 601.0
        swept = await ob.sweep(results_before=0.0, clear_retained=lambda _topic: False)
        assert swept["messages"] == 5
        assert await ob.read(0) == [] == await ob.read(0, before=2**62)
