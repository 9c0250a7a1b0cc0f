"""A floor's worth of bridge traffic: many nodes, line noise, polls and commands, with an audit.

Shared by the acceptance test (``tests/bridge/test_soak.py``) and ``benchmarks/bench_bridge.py``.
Each node is polled at 1 Hz; each gets a random lamp, indicator or dimmer command every 2-5 s
with a 1 s deadline. After every command, and four times a second for every channel, the audit
compares what the simulated node holds with the last command the gateway saw confirmed (or a
later one that failed: a node may have acted on a command whose confirmation was lost).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from firmware_bridge import BridgeLink
from firmware_bridge.messages import OutputFunction

from .nodes import SimNode
from .nodes_line import LineFaults, SimLine


@dataclass
class SoakResult:
    commands: int = 0
    confirmed_in_time: int = 0
    failed: int = 0
    wrong: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    utilisation: float = 0.0
    polls_ok: int = 0
    line_errors: int = 0


def _target(node: SimNode, channel: int, function: int) -> int:
    if function == OutputFunction.INDICATOR:
        return node.indicators[channel]
    ramps = node.levels if function == OutputFunction.LEVEL else node.lamps
    return round(ramps[channel].target)


async def soak(
    *, nodes: int = 24, seconds: float = 600.0, baud: int = 115200, byte_error_rate: float = 0.01, seed: int = 1
) -> SoakResult:
    """Poll ``nodes`` at 1 Hz and send a random lamp/indicator/dimmer command every 2-5 s per node."""
    rng = random.Random(seed)
    sims = [SimNode(a, "dimmer" if a > nodes - 4 else "desk-cluster") for a in range(1, nodes + 1)]
    line = SimLine(sims, faults=LineFaults(byte_error_rate=byte_error_rate), seed=seed)
    result = SoakResult()
    confirmed: dict[tuple[int, int, int], int] = {}
    in_flight: set[tuple[int, int, int]] = set()
    unconfirmed: dict[tuple[int, int, int], set[int]] = {}
    loop = asyncio.get_running_loop()

    def check(node: SimNode, key: tuple[int, int, int], when: str) -> None:
        if key in in_flight or key not in confirmed:
            return
        held = _target(node, key[1], key[2])
        if held != confirmed[key] and held not in unconfirmed.get(key, set()):
            result.wrong.append(
                f"{when}: node {key[0]} ch {key[1]} fn {key[2]} holds {held}, confirmed {confirmed[key]}"
            )

    async def commander(node: SimNode) -> None:
        fns = [OutputFunction.LEVEL] if node.kind == 2 else [OutputFunction.LAMP, OutputFunction.INDICATOR]
        while True:
            await asyncio.sleep(rng.uniform(2.0, 5.0))
            channel, fn = rng.randrange(4), rng.choice(fns)
            value = rng.randrange(5) if fn == OutputFunction.INDICATOR else rng.randrange(0, 1001, 50)
            key = (node.address, channel, int(fn))
            in_flight.add(key)
            t0 = loop.time()
            result.commands += 1
            try:
                state = await link.set_output(node.address, channel, fn, value, 500, deadline_s=1.0)
            except Exception:
                result.failed += 1
                unconfirmed.setdefault(key, set()).add(value)
            else:
                dt = loop.time() - t0
                result.latencies.append(dt)
                result.confirmed_in_time += dt <= 1.0 and state.target == value
                confirmed[key] = value
                unconfirmed.pop(key, None)
            finally:
                in_flight.discard(key)
            check(node, key, f"t={loop.time():.3f}")

    async def auditor() -> None:
        while True:
            await asyncio.sleep(0.25)
            for node in sims:
                for key in [k for k in confirmed if k[0] == node.address]:
                    check(node, key, f"audit t={loop.time():.3f}")

    async with line.on_memory_line(baud) as memory, BridgeLink(memory.master, baud=baud) as link:
        for node in sims:
            link.watch(node.address, 1.0)
        start, busy0 = loop.time(), memory.busy_s
        tasks = [loop.create_task(commander(n)) for n in sims] + [loop.create_task(auditor())]
        try:
            await asyncio.sleep(seconds)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        result.utilisation = (memory.busy_s - busy0) / (loop.time() - start)
        result.polls_ok = sum(r.requests - r.timeouts for r in link.registry.nodes.values())
        result.line_errors = link.stats.rx_errors
    return result
