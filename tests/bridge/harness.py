"""Shared harness for bridge tests: simulated nodes on a memory line in virtual time, and a node
process behind a real pty for the serial path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from firmware_bridge import BridgeLink
from simulator.clock import run_virtual
from simulator.nodes import SimNode
from simulator.nodes_line import LineFaults, SimLine

ROOT = Path(__file__).resolve().parents[2]
Scenario = Callable[[BridgeLink, SimLine], Awaitable[None]]


def on_line(
    scenario: Scenario,
    nodes: list[SimNode],
    *,
    faults: LineFaults | None = None,
    baud: int = 115200,
    trace: bool = False,
    **link_kw: Any,
) -> None:
    """Run ``scenario(link, line)`` on a fresh virtual-time loop with ``nodes`` on a memory line."""

    async def main() -> None:
        line = SimLine(nodes, faults=faults, seed=7, trace=trace)
        async with line.on_memory_line(baud) as memory, BridgeLink(memory.master, baud=baud, **link_kw) as link:
            await scenario(link, line)

    run_virtual(main())


class NodeProcess:
    """``python -m simulator.nodes_process`` on the master side of a fresh pty pair.

    ``path`` is the slave tty the gateway opens. The test keeps a slave descriptor open for the
    process's whole life, so the node never reads end-of-file between two gateways.
    """

    def __init__(self, *nodes: str, args: tuple[str, ...] = ()) -> None:
        master, self._slave = os.openpty()
        self.path = os.ttyname(self._slave)
        argv = [sys.executable, "-m", "simulator.nodes_process", "--fd", str(master)]
        for spec in nodes:
            argv += ["--node", spec]
        self.proc = subprocess.Popen(
            [*argv, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, pass_fds=(master,), cwd=ROOT
        )
        os.close(master)
        assert self._read() == {"ready": True}

    def _read(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"the node process ended (exit {self.proc.poll()})"
        return json.loads(line)

    def ask(self, *words: object) -> Any:
        """Send one command, return its JSON answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(" ".join(map(str, words)) + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        assert "error" not in answer, answer
        return answer

    def state(self, node: int) -> Any:
        return self.ask("state", node)

    def wait_for(self, what: str, check: Callable[[], object], wall_s: float = 20.0) -> None:
        deadline = time.monotonic() + wall_s
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()
        os.close(self._slave)

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
