"""Synthetic upstream load through the real Outbox and Uplink, for kill tests and benchmarks.

``python -m edge_agent.sync.loadgen --config floor.toml --state-dir DIR --rate 200 --committed-log F``
publishes zone summaries and events at ``--rate`` messages per second. After every outbox commit it
appends ``msg_id topic`` lines for the messages that commit made durable to ``--committed-log``
(with plain ``write`` calls, so a SIGKILL cannot lose a line already written): a test kills the
process at random moments, restarts it, and checks that a subscriber saw every logged message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from edge_agent.clock import SystemClock
from edge_agent.config import load_config
from edge_agent.sync.outbox import Outbox, open_path
from edge_agent.sync.uplink import Uplink
from rules.state import Measure, Quality, ZoneView


class NullTarget:
    """Accepts every command and does nothing (the loadgen has no floor to act on)."""

    async def _ok(self, *args: Any) -> dict[str, Any]:
        return {"accepted": True}

    set_override = clear_override = release_seat_by_command = consent_set = consent_withdraw = _ok
    preferences_set = set_calendar = _ok
    reload_rules = reload_config = republish_state = _ok

    async def update_model(self, data: bytes, sha256: str) -> dict[str, Any]:
        return {"bytes": len(data)}


def synthetic_zone(zone: str, n: int) -> ZoneView:
    people = float(n % 20)
    good = Quality.GOOD
    return ZoneView(
        id=zone,
        people=Measure(people, good),
        seats_total=20,
        free=20 - int(people),
        occupied=int(people),
        away=0,
        ghost=0,
        unknown=0,
        lux=Measure(400.0 + n % 50, good),
        temperature=Measure(21.0, good),
        humidity=Measure(40.0, good),
        co2=Measure(600.0 + n % 200, good),
        occupancy_healthy=True,
    )


async def produce(args: argparse.Namespace) -> None:
    cfg = load_config(args.config)
    state_dir = Path(args.state_dir) if args.state_dir else cfg.storage.state_dir
    log_fd = os.open(args.committed_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if args.committed_log else -1
    produced: list[tuple[int, str, str]] = []  # (seq, msg_id, topic) not yet logged as committed

    async with Outbox(open_path(state_dir), max_bytes=cfg.storage.outbox_max_bytes) as outbox:

        def on_commit(high: int, _: dict[str, bytes]) -> None:
            done = [p for p in produced if p[0] <= high]
            if done and log_fd >= 0:
                os.write(log_fd, "".join(f"{m} {t}\n" for _, m, t in done).encode())
            produced[:] = [p for p in produced if p[0] > high]

        outbox.add_listener(on_commit)
        zones = [z.id for z in cfg.zones]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        async with Uplink(cfg, outbox, SystemClock(), NullTarget(), version="loadgen", config_hash="0") as uplink:
            print("ready", flush=True)
            n, started = 0, loop.time()
            while not stop.is_set() and (args.count is None or n < args.count):
                if args.rate <= 0:
                    break
                if n % 5 == 4:
                    seq = uplink.publish_event("synthetic", {"n": n})
                    topic = uplink.topics.event("synthetic")
                else:
                    zone = zones[n % len(zones)]
                    seq = uplink.publish_zone_summary(synthetic_zone(zone, n), force=True) or 0
                    topic = uplink.topics.zone_summary(zone)
                produced.append((seq, outbox.msg_id(cfg.site.gateway, seq), topic))
                n += 1
                ahead = started + n / args.rate - loop.time()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            await outbox.flush()
            if args.exit_when_drained:
                while not stop.is_set() and (outbox.stats().depth > 0 or not uplink.connected.is_set()):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.1)
            else:
                await stop.wait()
    if log_fd >= 0:
        os.close(log_fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_agent.sync.loadgen", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--state-dir", default=None)
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second (0: produce nothing)")
    parser.add_argument("--count", type=int, default=None, help="stop producing after this many")
    parser.add_argument("--committed-log", default=None)
    parser.add_argument("--exit-when-drained", action="store_true", help="exit once the outbox is empty")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="loadgen %(levelname)s %(name)s: %(message)s")
    asyncio.run(produce(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
