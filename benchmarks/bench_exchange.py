"""What one exchange on the RS-485 line costs the gateway's process, over a real tty.

The gateway side (:class:`~firmware_bridge.link.BridgeLink` on a
:class:`~firmware_bridge.transport.SerialTransport`) opens the slave side of a pty, as it opens a
USB RS-485 adapter; eight simulated nodes (:class:`simulator.nodes_line.SimLine`) answer on the
master side from a second process, so their decoding and encoding are not counted. Two loads:

- back to back: one STATUS after another, as fast as the nodes answer (the request queue never
  waits, so every exchange runs the sender's whole path at once);
- paced: 100 STATUS requests a second, spread over the eight nodes' pollers, the shape of a
  gateway's polling (the line idles between exchanges, so the idle-line path counts too).

Beside the link, in the same run and on the same tty and nodes, the bare library call: the same
paced load through asyncio alone (the tty's readable callback, one future and one timeout per
request, the codec's frame reader and the STATUS parser), with none of the link's queue,
priorities, retries or book-keeping. The link's paced CPU over the bare one is the ratio to judge
across machines. Last, the machine's own cost of waking an idle event loop for one timer: each
paced request costs at least two such wake-ups (its poller's timer and its reply), so on a machine
whose wake-ups are dear (a virtual machine's timer interrupts) they set the floor.

Figures are the process's CPU time (user + system, ``time.process_time``) per answered request,
so the machine's load changes them less than wall-clock figures; requests per second back to back is
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
    return time.process_time()  # the scheduler's own count, not tick samples: per-request figures are small


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
    finally:
        await link.aclose()
    figures.update(await bare_paced(path))
    figures["link_to_bare_paced_cpu"] = figures["paced_cpu_per_request_us"] / figures["bare_paced_cpu_per_request_us"]
    figures["loop_wake_cpu_us"] = await loop_wake_cpu_us()
    return figures


async def bare_paced(path: str) -> dict[str, float]:
    """The paced load through asyncio alone: what any gateway written on it pays per exchange."""
    from firmware_bridge.codec import FrameReader, encode_fields
    from firmware_bridge.messages import MsgType, NodeStatus

    loop = asyncio.get_running_loop()
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    reader = FrameReader()
    waiting: dict[int, asyncio.Future[bytes]] = {}

    def readable() -> None:
        for frame in reader.feed(os.read(fd, 4096)):
            if isinstance(frame, Exception):
                continue
            future = waiting.pop(frame.seq, None)
            if future is not None and not future.done():
                future.set_result(frame.payload)

    line = asyncio.Lock()  # half duplex: one exchange at a time
    seq = 0
    answered = 0

    async def status(node: int) -> None:
        nonlocal seq, answered
        async with line:
            seq = (seq + 1) & 0xFF
            future = waiting[seq] = loop.create_future()
            os.write(fd, encode_fields(1, node, 0, seq, MsgType.STATUS, 0, b""))
            try:
                async with asyncio.timeout(0.05):
                    NodeStatus.parse(await future)
                answered += 1
            except TimeoutError:
                waiting.pop(seq, None)

    async def poller(node: int) -> None:
        due = loop.time() + node * 0.001
        end = loop.time() + PACED_S
        while due < end:
            await asyncio.sleep(max(0.0, due - loop.time()))
            await status(node)
            due += NODES / PACED_RATE

    loop.add_reader(fd, readable)
    try:
        wall0, cpu0 = time.perf_counter(), _cpu()
        await asyncio.gather(*(poller(node) for node in range(1, NODES + 1)))
        wall1, cpu1 = time.perf_counter(), _cpu()
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return {"bare_paced_cpu_per_request_us": 1e6 * (cpu1 - cpu0) / max(1, answered),
            "bare_paced_cpu_pct_at_100_per_s": 100 * (cpu1 - cpu0) / (wall1 - wall0)}


async def loop_wake_cpu_us(wakes: int = 300) -> float:
    """CPU of one wake-up of an idle event loop for its one timer (10 ms apart): the machine's price."""
    cpu0 = _cpu()
    for _ in range(wakes):
        await asyncio.sleep(0.01)
    return 1e6 * (_cpu() - cpu0) / wakes


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
             "timeouts": "timeouts", "bare_paced_cpu_per_request_us": "us",
             "bare_paced_cpu_pct_at_100_per_s": "% of one core", "link_to_bare_paced_cpu": "ratio",
             "loop_wake_cpu_us": "us"}
    return [(key, value, units[key]) for key, value in figures.items()]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(int(sys.argv[2]))
    else:
        for name, value, unit in run():
            print(f"{name:40s} {value:10.2f} {unit}")
