"""MQTT uplink benchmarks: outbox overhead, backlog replay rate, SD-card writes at steady state.

``run()`` returns (name, value, unit) rows; it starts its own mosquitto on a free loopback port.

* ``publish_ratio_outbox_vs_bare``: messages/s through Outbox + Uplink (commit, publish QoS 1, PUBACK,
  delete) divided by messages/s of a bare aiomqtt QoS 1 publish loop with the same window: the
  median over ``ROUNDS`` pairs run back to back (bare, then outbox), so both sides of a pair see
  the same load on a shared machine; ``publish_cpu_ratio_outbox_vs_bare`` is the same for this
  process's CPU per message (the SQLite thread included), steadier under load than wall time.
* ``publish_ratio_outbox_vs_bare_paho`` (and its CPU ratio): the same against a loop one level
  down, paho's publish on aiomqtt's connection with the PUBACKs taken from aiomqtt's callback, run
  third in each round. The stream publishes that way, so this ratio is the outbox's own cost
  (the row's commit, read and delete, the message's model and JSON), the client's left out.
* ``replay_rate_100k``: messages/s replaying a 100 000-message backlog with the rate limit lifted.
* ``sd_bytes_per_hour``: bytes the outbox writes per hour of a 120-seat floor (6 zone summaries and a
  health message a minute, forecasts every 5 min, a seat change every 5 s, 10 events an hour), run
  120x faster with every timer (commit batching included) scaled by the same factor, measured as the
  process's write(2) bytes (``wchar``) and block-layer bytes (``write_bytes``) from /proc/self/io.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiomqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent.config import SiteConfig, parse_config
from edge_agent.sync.loadgen import NullTarget, synthetic_zone
from edge_agent.sync.outbox import MessageClass, Outbox
from edge_agent.sync.stream import pending_publishes
from edge_agent.sync.uplink import Uplink
from rules.state import SeatStatus, SeatView
from tests.mosquitto import Mosquitto

N_THROUGHPUT = 5000
ROUNDS = 7
N_BACKLOG = 100_000
WINDOW = 100


class Clock:
    synced = True

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


def config(port: int, state: Path, replay: float = 1e9) -> SiteConfig:
    square = [[0, 0], [10, 0], [10, 10]]
    return parse_config(
        {
            "site": {"id": "bench", "floor": "1", "gateway": "gw"},
            "storage": {"state_dir": str(state), "outbox_max_bytes": 1 << 30},
            "broker": {"host": "127.0.0.1", "port": port},
            "mqtt": {"replay_rate_per_s": replay},
            "zones": [{"id": f"z{i}", "polygon": square} for i in range(6)],
        }
    )


async def bare_rate(port: int) -> float:
    payload = json.dumps({"seq": 1, "data": "x" * 300}).encode()
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5, max_inflight_messages=20) as c:
        c.pending_calls_threshold = 10 * WINDOW
        window = asyncio.Semaphore(WINDOW)  # the same sliding window the uplink keeps

        async def one(j: int) -> None:
            try:
                await c.publish(f"bench/{j % 6}", payload, qos=1)
            finally:
                window.release()

        started = time.perf_counter()
        tasks = []
        for j in range(N_THROUGHPUT):
            await window.acquire()
            tasks.append(asyncio.create_task(one(j)))
        await asyncio.gather(*tasks)
        return N_THROUGHPUT / (time.perf_counter() - started)


class _Acked:
    """Stands in aiomqtt's pending-publish table: its on_publish calls ``set()`` on the PUBACK."""

    __slots__ = ("on_ack",)

    def __init__(self, on_ack: Callable[[], None]) -> None:
        self.on_ack = on_ack

    def set(self) -> None:
        self.on_ack()


async def bare_paho_rate(port: int) -> float:
    """The same loop one level down: paho's publish on aiomqtt's connection, each PUBACK taken from
    aiomqtt's on_publish callback, no task, event or timer per message (how the stream publishes)."""
    payload = json.dumps({"seq": 1, "data": "x" * 300}).encode()
    loop = asyncio.get_running_loop()
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5, max_inflight_messages=20) as c:
        table = pending_publishes(c)
        assert table is not None, "this aiomqtt has no pending-publish table"
        outstanding = 0
        room: asyncio.Future[None] | None = None

        def acked() -> None:
            nonlocal outstanding
            outstanding -= 1
            if room is not None and not room.done():
                room.set_result(None)

        started = time.perf_counter()
        for j in range(N_THROUGHPUT):
            while outstanding >= WINDOW:
                room = loop.create_future()
                await room
            info = c._client.publish(f"bench/{j % 6}", payload, 1)
            table[info.mid] = _Acked(acked)
            outstanding += 1
        while outstanding:
            room = loop.create_future()
            await room
        return N_THROUGHPUT / (time.perf_counter() - started)


async def drained(outbox: Outbox, high: int, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while outbox.stats().depth > 0 or outbox.committed_high < high:
        if time.monotonic() > deadline:
            raise RuntimeError(f"outbox not drained within {within_s}s: {outbox.stats()}")
        await asyncio.sleep(0.01)


async def outbox_rate(port: int, state: Path) -> float:
    cfg = config(port, state / "tp")
    (state / "tp").mkdir(parents=True, exist_ok=True)
    async with (
        Outbox(state / "tp" / "outbox.sqlite3") as ob,
        Uplink(cfg, ob, Clock(), NullTarget(), version="b", config_hash="b", window=WINDOW) as up,
    ):
        await asyncio.wait_for(up.connected.wait(), 10)
        started = time.perf_counter()
        high = 0
        for i in range(N_THROUGHPUT):
            high = up.publish_event("bench", {"n": i, "data": "x" * 250})
            if i % WINDOW == 0:
                await asyncio.sleep(0)
        await drained(ob, high, 120)
        return N_THROUGHPUT / (time.perf_counter() - started)


async def replay_rate(port: int, state: Path) -> float:
    db = state / "replay" / "outbox.sqlite3"
    async with Outbox(db, max_bytes=1 << 30, flush_max=10_000) as ob:
        for _ in range(N_BACKLOG):
            seq = ob.next_seq()
            body = {"schema_version": 1, "seq": seq, "msg_id": f"gw:x:{seq}", "ts": "", "clock_synced": True,
                    "backfill": False, "zone": "z1", "data": "x" * 250}  # fmt: skip
            ob.put(seq, "library/v1/bench/gw/zone/z1/summary", json.dumps(body).encode(), MessageClass.PERIODIC)
        await ob.flush()
    async with Outbox(db, max_bytes=1 << 30) as ob:
        cfg = config(port, state / "replay")
        started = time.perf_counter()
        async with Uplink(cfg, ob, Clock(), NullTarget(), version="b", config_hash="b", window=WINDOW):
            await drained(ob, 0, 600)
        return N_BACKLOG / (time.perf_counter() - started)


def io_counters() -> dict[str, int]:
    lines = Path("/proc/self/io").read_text().splitlines()
    return {k: int(v) for k, v in (line.split(": ") for line in lines)}


async def sd_bytes_per_hour(state: Path, speedup: float = 120.0) -> tuple[float, float, int]:
    """Outbox-only (acks simulated right after each commit, as a connected uplink would)."""
    db = state / "sd" / "outbox.sqlite3"
    async with Outbox(db, flush_interval_s=1.0 / speedup, ack_flush_interval_s=30.0 / speedup) as ob:
        cfg = config(1, state / "sd")
        up = Uplink(cfg, ob, Clock(), NullTarget(), version="b", config_hash="b")
        cursor = 0
        messages = 0

        async def ack_all() -> None:
            nonlocal cursor
            for row in await ob.read(cursor, limit=1000):
                ob.ack(row.seq)
                cursor = row.seq

        await ob.flush()
        before = io_counters()
        tick = 1.0 / speedup
        started = time.monotonic()
        for second in range(3600):
            if second % 60 == 0:
                for z in range(6):
                    up.publish_zone_summary(synthetic_zone(f"z{z}", second), force=True)
                up.publish_health(sensors_healthy=60, sensors_unhealthy=0)
                messages += 7
            if second % 300 == 0:
                for z in range(6):
                    up.publish_forecast(f"z{z}", {15: (5.0, 3.0, 8.0), 60: (7.0, 4.0, 11.0)})
                messages += 6
            if second % 5 == 0:
                up.publish_seat_state(SeatView(f"s{second % 120}", "z1", SeatStatus.OCCUPIED, since=time.monotonic()))
                messages += 1
            if second % 360 == 0:
                up.publish_event("fault", {"sensor": "amg-3", "reason": "stuck"})
                messages += 1
            await ack_all()
            ahead = started + (second + 1) * tick - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
        await ack_all()
        await ob.flush()
        after = io_counters()
    size = sum(p.stat().st_size for p in db.parent.glob("outbox.sqlite3*"))
    return float(after["wchar"] - before["wchar"]), float(after["write_bytes"] - before["write_bytes"]), size


def run() -> list[tuple[str, float, str]]:
    async def main() -> list[tuple[str, float, str]]:
        with tempfile.TemporaryDirectory() as tmp:
            state = Path(tmp)
            wchar, block, size = await sd_bytes_per_hour(state)
            with Mosquitto(state / "broker") as broker:
                pairs = []
                for i in range(ROUNDS):
                    c0 = time.process_time()
                    bare = await bare_rate(broker.port)
                    c1 = time.process_time()
                    boxed = await outbox_rate(broker.port, state / f"round-{i}")
                    c2 = time.process_time()
                    paho = await bare_paho_rate(broker.port)
                    c3 = time.process_time()
                    pairs.append((bare, boxed, (c2 - c1) / (c1 - c0), paho, (c2 - c1) / (c3 - c2)))
                replay = await replay_rate(broker.port, state)
            bare = statistics.median(p[0] for p in pairs)
            boxed = statistics.median(p[1] for p in pairs)
            return [
                ("publish_bare_aiomqtt_qos1", round(bare, 1), "msg/s"),
                ("publish_through_outbox_qos1", round(boxed, 1), "msg/s"),
                ("publish_ratio_outbox_vs_bare", round(statistics.median(p[1] / p[0] for p in pairs), 3), "ratio"),
                ("publish_cpu_ratio_outbox_vs_bare", round(statistics.median(p[2] for p in pairs), 3), "ratio"),
                ("publish_bare_paho_qos1", round(statistics.median(p[3] for p in pairs), 1), "msg/s"),
                ("publish_ratio_outbox_vs_bare_paho", round(statistics.median(p[1] / p[3] for p in pairs), 3), "ratio"),
                ("publish_cpu_ratio_outbox_vs_bare_paho", round(statistics.median(p[4] for p in pairs), 3), "ratio"),
                ("replay_rate_100k", round(replay, 1), "msg/s"),
                ("sd_bytes_per_hour_wchar", round(wchar), "B/h"),
                ("sd_bytes_per_hour_block", round(block), "B/h"),
                ("outbox_files_after_hour", float(size), "B"),
            ]

    return asyncio.run(main())


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:34s} {value:>14,.3f} {unit}")
