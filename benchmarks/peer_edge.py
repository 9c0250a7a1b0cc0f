"""Our side of the peer benchmark (bench_peers.py): sensor messages through the durable outbox upstream.

``python -m benchmarks.peer_edge --sensors PORT --upstream PORT --state-dir DIR [--batch-s S]``
subscribes to ``sensors/+/reading`` on the sensors' broker (QoS 1, on paho's network thread, as
ThingsBoard's connector does) and hands the readings to the gateway's own publish path:
:meth:`edge_agent.sync.uplink.Uplink.publish_event`, which writes a message to the SQLite outbox
(WAL) and sends it upstream at QoS 1, deleting it after the PUBACK.
This is the job the ThingsBoard IoT Gateway's MQTT connector does; the daemon's own readings come
from its drivers instead, so this small adapter stands in for them.

Without ``--batch-s`` every reading is one ``event/reading`` message (``data``: ``source`` and the
reading's fields). With it, the readings of each sensor are gathered for that period (at most
``MAX_BATCH``) and sent as one ``event/readings`` message, ``data``: ``source`` and ``readings``
(the readings in arrival order), as ThingsBoard packs several readings into one telemetry
message. Both are events of the documented envelope and schema (docs/mqtt.md: new kinds may
appear, ``data`` is free-form); each message is durable in the outbox before it is sent. Prints
``{"ready": true}`` once both connections are up.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_mqtt import WINDOW, Clock, config  # noqa: E402
from edge_agent.sync.loadgen import NullTarget  # noqa: E402
from edge_agent.sync.outbox import Outbox  # noqa: E402
from edge_agent.sync.uplink import Uplink  # noqa: E402

MAX_BATCH = 100  # readings in one message at most (ThingsBoard's gateway reads 100 records at a time)
DRAIN_S = 0.01  # readings received on paho's thread reach the loop at most this late, in one hand-off
RECEIVE_BOUND_S = 300.0  # the receive-only run gives up (and says how far it got) after this


async def receive_only(args: argparse.Namespace) -> None:
    """The receiving half alone: the same :class:`SensorFeed`, each reading decoded, nothing
    forwarded. After ``N`` readings print this process's CPU per reading and the rate: the floor
    under our side, and what the harness delivers to a gateway that does nothing else."""
    done = asyncio.Event()
    count, cpu0, wall0 = 0, 0.0, 0.0

    def decode(topic: str, payload: bytes) -> None:
        nonlocal count, cpu0, wall0
        if count == 0:
            cpu0, wall0 = time.process_time(), time.perf_counter()
        json.loads(payload)
        topic.split("/")[1]
        count += 1
        if count == args.receive_only:
            done.set()

    feed = SensorFeed(args.sensors, asyncio.get_running_loop(), decode, args.drain_s)
    try:
        if not await asyncio.to_thread(feed.subscribed.wait, 30):
            raise RuntimeError("no subscription on the sensors' broker within 30 s")
        print(json.dumps({"ready": True}), flush=True)
        try:
            await asyncio.wait_for(done.wait(), RECEIVE_BOUND_S)
        except TimeoutError:
            raise SystemExit(f"receive-only: {count} of {args.receive_only} readings "
                             f"within {RECEIVE_BOUND_S:g} s") from None
        n = count - 1  # timed from the first reading's arrival
        print(json.dumps({"cpu_us_per_msg": 1e6 * (time.process_time() - cpu0) / n,
                          "throughput_msg_s": n / (time.perf_counter() - wall0)}), flush=True)
    finally:
        feed.close()


class SensorFeed:
    """The sensors' readings received on paho's own network thread, as ThingsBoard's MQTT connector
    receives them, and handed to the event loop in bulk: the first reading after a hand-off
    schedules the next one ``drain_s`` later, and the loop takes whatever arrived by then in one
    pass. Handed over as each arrived, the loop (which kept up) was woken for almost every reading:
    90-114 us of CPU a reading received, against 63-78 us every 10 ms; through aiomqtt it was
    134-142 us (docs/benchmarks.md)."""

    def __init__(self, port: int, loop: asyncio.AbstractEventLoop, handle: Callable[[str, bytes], None],
                 drain_s: float = DRAIN_S) -> None:
        import paho.mqtt.client as mqtt

        self.loop = loop
        self.handle = handle
        self.drain_s = drain_s
        self.arrived: collections.deque[tuple[str, bytes]] = collections.deque()
        self.scheduled = False
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="edge-agent-peer",
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *_: c.subscribe("sensors/+/reading", 1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._arrived
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _arrived(self, _client: Any, _userdata: Any, message: Any) -> None:  # paho's thread
        self.arrived.append((message.topic, message.payload))
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon_threadsafe(self._drain_soon)

    def _drain_soon(self) -> None:  # the loop: let ``drain_s`` of readings gather, one wake-up for all
        if self.drain_s > 0:
            self.loop.call_later(self.drain_s, self._drain)
        else:
            self._drain()

    def _drain(self) -> None:  # the loop: cleared first, so a reading arriving now schedules another drain
        self.scheduled = False
        while self.arrived:
            topic, payload = self.arrived.popleft()
            self.handle(topic, payload)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def main(args: argparse.Namespace) -> None:
    state = Path(args.state_dir)
    state.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (before anything runs)
    cfg = config(args.upstream, state, replay=1e9)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with (
        Outbox(state / "outbox.sqlite3", max_bytes=1 << 30) as outbox,
        Uplink(cfg, outbox, Clock(), NullTarget(), version="bench", config_hash="bench", window=WINDOW) as up,
    ):
        await asyncio.wait_for(up.connected.wait(), 30)
        batches: dict[str, list[Any]] = {}

        def one(topic: str, payload: bytes) -> None:
            up.publish_event("reading", {"source": topic.split("/")[1], **json.loads(payload)})

        def send(source: str) -> None:
            up.publish_event("readings", {"source": source, "readings": batches.pop(source)})

        def gather(topic: str, payload: bytes) -> None:
            source = topic.split("/")[1]
            batch = batches.setdefault(source, [])
            batch.append(json.loads(payload))
            if len(batch) >= MAX_BATCH:
                send(source)

        async def flush_every_period() -> None:
            while True:
                await asyncio.sleep(args.batch_s)
                for source in list(batches):
                    send(source)

        feed = SensorFeed(args.sensors, loop, gather if args.batch_s else one, args.drain_s)
        flusher = asyncio.create_task(flush_every_period()) if args.batch_s else None
        try:
            if not await asyncio.to_thread(feed.subscribed.wait, 30):
                raise RuntimeError("no subscription on the sensors' broker within 30 s")
            print(json.dumps({"ready": True}), flush=True)
            await stop.wait()
        finally:
            feed.close()
            if flusher is not None:
                flusher.cancel()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m benchmarks.peer_edge", description=__doc__.splitlines()[0])
    ap.add_argument("--sensors", type=int, required=True)
    ap.add_argument("--upstream", type=int, default=0)
    ap.add_argument("--state-dir", default="")
    ap.add_argument("--batch-s", type=float, default=0.0,
                    help="gather each sensor's readings this long into one message (0: one message a reading)")
    ap.add_argument("--drain-s", type=float, default=DRAIN_S,
                    help="hand the readings to the loop at most this late, in one go (0: as soon as one arrives)")
    ap.add_argument("--receive-only", type=int, default=0, metavar="N",
                    help="only receive N readings and print the CPU they took (no upstream)")
    parsed = ap.parse_args()
    asyncio.run(receive_only(parsed) if parsed.receive_only else main(parsed))
