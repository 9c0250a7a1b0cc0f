"""Our side of the peer benchmark (bench_peers.py): sensor messages through the durable outbox upstream.

``python -m benchmarks.peer_edge --sensors PORT --upstream PORT --state-dir DIR [--batch-s S]``
subscribes to ``sensors/+/reading`` on the sensors' broker (QoS 1) and hands the readings to the
gateway's own publish path: :meth:`edge_agent.sync.uplink.Uplink.publish_event`, which writes a
message to the SQLite outbox (WAL) and sends it upstream at QoS 1, deleting it after the PUBACK.
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
import json
import signal
import sys
import time
from pathlib import Path

import aiomqtt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_mqtt import WINDOW, Clock, config  # noqa: E402
from edge_agent.sync.loadgen import NullTarget  # noqa: E402
from edge_agent.sync.outbox import Outbox  # noqa: E402
from edge_agent.sync.uplink import Uplink  # noqa: E402

MAX_BATCH = 100  # readings in one message at most (ThingsBoard's gateway reads 100 records at a time)


async def receive_only(args: argparse.Namespace) -> None:
    """The receiving half alone: subscribe, decode each reading, forward nothing. After ``N``
    readings print this process's CPU per reading and the rate: the floor under any gateway
    built on aiomqtt, whatever it does with the readings."""
    async with aiomqtt.Client("127.0.0.1", args.sensors, protocol=aiomqtt.ProtocolVersion.V5,
                              identifier="edge-agent-receiver") as sensors:
        await sensors.subscribe("sensors/+/reading", qos=1)
        print(json.dumps({"ready": True}), flush=True)
        count, cpu0, wall0 = 0, 0.0, 0.0
        async for message in sensors.messages:
            if count == 0:
                cpu0, wall0 = time.process_time(), time.perf_counter()
            json.loads(bytes(message.payload))  # type: ignore[arg-type]
            str(message.topic).split("/")[1]
            count += 1
            if count == args.receive_only:
                break
        n = count - 1  # timed from the first reading's arrival
        print(json.dumps({"cpu_us_per_msg": 1e6 * (time.process_time() - cpu0) / n,
                          "throughput_msg_s": n / (time.perf_counter() - wall0)}), flush=True)


async def main(args: argparse.Namespace) -> None:
    state = Path(args.state_dir)
    state.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (before anything runs)
    cfg = config(args.upstream, state, replay=1e9)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with (
        Outbox(state / "outbox.sqlite3", max_bytes=1 << 30) as outbox,
        Uplink(cfg, outbox, Clock(), NullTarget(), version="bench", config_hash="bench", window=WINDOW) as up,
        aiomqtt.Client("127.0.0.1", args.sensors, protocol=aiomqtt.ProtocolVersion.V5,
                       identifier="edge-agent-peer") as sensors,
    ):
        await asyncio.wait_for(up.connected.wait(), 30)
        await sensors.subscribe("sensors/+/reading", qos=1)
        print(json.dumps({"ready": True}), flush=True)

        async def forward() -> None:
            async for message in sensors.messages:
                reading = json.loads(bytes(message.payload))  # type: ignore[arg-type]
                up.publish_event("reading", {"source": str(message.topic).split("/")[1], **reading})

        batches: dict[str, list[dict[str, object]]] = {}

        def send(source: str) -> None:
            up.publish_event("readings", {"source": source, "readings": batches.pop(source)})

        async def forward_batched() -> None:
            async for message in sensors.messages:
                source = str(message.topic).split("/")[1]
                batch = batches.setdefault(source, [])
                batch.append(json.loads(bytes(message.payload)))  # type: ignore[arg-type]
                if len(batch) >= MAX_BATCH:
                    send(source)

        async def flush_every_period() -> None:
            while True:
                await asyncio.sleep(args.batch_s)
                for source in list(batches):
                    send(source)

        tasks = [asyncio.create_task(forward_batched()), asyncio.create_task(flush_every_period())] if args.batch_s \
            else [asyncio.create_task(forward())]
        await stop.wait()
        for task in tasks:
            task.cancel()

if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m benchmarks.peer_edge", description=__doc__.splitlines()[0])
    ap.add_argument("--sensors", type=int, required=True)
    ap.add_argument("--upstream", type=int, default=0)
    ap.add_argument("--state-dir", default="")
    ap.add_argument("--batch-s", type=float, default=0.0,
                    help="gather each sensor's readings this long into one message (0: one message a reading)")
    ap.add_argument("--receive-only", type=int, default=0, metavar="N",
                    help="only receive N readings and print the CPU they took (no upstream)")
    parsed = ap.parse_args()
    asyncio.run(receive_only(parsed) if parsed.receive_only else main(parsed))
