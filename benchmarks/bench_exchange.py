"""What one exchange on the RS-485 line costs the gateway's process, over a real tty.

The gateway side (:class:`~firmware_bridge.link.BridgeLink` on a
:class:`~firmware_bridge.transport.SerialTransport`) opens the slave side of a pty, as it opens a
USB RS-485 adapter; eight simulated nodes (:class:`simulator.nodes_line.SimLine`) answer on the
master side from a second process, so their decoding and encoding are not counted. Two loads:

- back to back: one STATUS after another, as fast as the nodes answer (the request queue never
  waits, so every exchange runs the sender's whole path at once);
- paced: 100 STATUS requests a second, spread over the eight nodes' pollers, the shape of a
  gateway's polling (the line idles between exchanges, so the idle-line path counts too).

Figures are the process's CPU time (user + system, ``os.times``) per answered request, so the
machine's load changes them less than wall-clock figures; requests per second back to back is
wall clock. The reply margin is widened to 50 ms so that a loaded machine's scheduling delays
do not turn into timeouts and retries: this measures the cost of an answered exchange, not the
line's timing (``bench_bridge.py`` does that under virtual time).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import tty
from pathlib import Path

from drivers.errors import BridgeError

NODES = 8
BACK_TO_BACK = 3000
PACED_RATE = 100.0
PACED_S = 15.0
ROOT = Path(__file__).resolve().parent.parent


def serve(fd: int) -> None:
    """The nodes' side: answer on the pty's master until the gateway side goes away."""
    from firmware_bridge.transport import SerialTransport
    from simulator.nodes import SimNode
    from simulator.nodes_line import SimLine

    async def main() -> None:
        line = SimLine([SimNode(address) for address in range(1, NODES + 1)], seed=1)
        await line.serve(SerialTransport.from_fd(fd, "pty-master"))

    with contextlib.suppress(BridgeError, KeyboardInterrupt):
        asyncio.run(main())


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


async def measure(path: str) -> dict[str, float]:
    from firmware_bridge.link import BridgeLink
    from firmware_bridge.transport import SerialTransport

    link = BridgeLink(SerialTransport(path), reply_margin_s=0.05)
    link.start()
    try:
        for node in range(1, NODES + 1):
            for _ in range(40):  # the nodes' process may still be starting
                try:
                    await link.hello(node)
                    break
                except BridgeError:
                    await asyncio.sleep(0.25)
        answered = 0
        wall0, cpu0 = time.perf_counter(), _cpu()
        for i in range(BACK_TO_BACK):
            with contextlib.suppress(BridgeError):
                await link.status(1 + i % NODES)
                answered += 1
        wall1, cpu1 = time.perf_counter(), _cpu()
        figures = {"back_to_back_requests_per_s": answered / (wall1 - wall0),
                   "back_to_back_cpu_per_request_us": 1e6 * (cpu1 - cpu0) / max(1, answered)}

        paced = 0

        async def poller(node: int) -> None:
            nonlocal paced
            loop = asyncio.get_running_loop()
            due = loop.time() + node * 0.001
            end = loop.time() + PACED_S
            while due < end:
                await asyncio.sleep(max(0.0, due - loop.time()))
                with contextlib.suppress(BridgeError):
                    await link.status(node)
                    paced += 1
                due += NODES / PACED_RATE

        wall0, cpu0 = time.perf_counter(), _cpu()
        await asyncio.gather(*(poller(node) for node in range(1, NODES + 1)))
        wall1, cpu1 = time.perf_counter(), _cpu()
        figures["paced_cpu_per_request_us"] = 1e6 * (cpu1 - cpu0) / max(1, paced)
        figures["paced_cpu_pct_at_100_per_s"] = 100 * (cpu1 - cpu0) / (wall1 - wall0)
        figures["timeouts"] = float(link.stats.timeouts)
        return figures
    finally:
        await link.aclose()


def run() -> list[tuple[str, float, str]]:
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    nodes = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_exchange", "--serve", str(master)],
                             pass_fds=[master], cwd=ROOT, env=env)
    os.close(master)
    try:
        figures = asyncio.run(measure(path))
    finally:
        nodes.terminate()
        try:
            nodes.wait(10)
        except subprocess.TimeoutExpired:
            nodes.kill()
            nodes.wait(5)
        os.close(slave)
    units = {"back_to_back_requests_per_s": "requests/s", "back_to_back_cpu_per_request_us": "us",
             "paced_cpu_per_request_us": "us", "paced_cpu_pct_at_100_per_s": "% of one core",
             "timeouts": "timeouts"}
    return [(key, value, units[key]) for key, value in figures.items()]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(int(sys.argv[2]))
    else:
        for name, value, unit in run():
            print(f"{name:40s} {value:10.1f} {unit}")
