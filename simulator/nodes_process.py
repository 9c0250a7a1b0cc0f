"""A node process: simulated nodes behind a real serial device, met by the gateway only on the line.

``python -m simulator.nodes_process --fd 7 --node 5:desk-cluster --node 101:dimmer:rev=1``
serves a :class:`~simulator.nodes_line.SimLine` on an open descriptor (the master side of a pty
pair; the gateway opens the slave, ``/dev/pts/N``, as its RS-485 adapter), in its own process,
on its own event loop, in real time. The gateway under test
(the library, ``edge-agent nodes ota`` or the daemon) shares no memory with it.

Node specs: ``ADDR:KIND[:rev=R][:hw=H][:trial=S][:amg8833=0xAA]`` (protocol revision, hardware
revision, trial deadline in seconds, a simulated thermopile on the node's local bus). Line
faults: ``--fault SPEC`` (scripted, :class:`~simulator.nodes_line.FrameFault`), ``--drop``,
``--damage``, ``--duplicate``, ``--delay`` (per-frame rates), ``--byte-errors``.

The test's window on the truth is stdin/stdout: one command per line in, one JSON line out.

=============================== ===========================================================
``state ADDR``                  boot id, firmware, slot (on trial or not), outputs, commands executed
``reboot ADDR [SILENT_S]``      the node resets (outputs to their power-on state)
``set ADDR CH FUNCTION VALUE``  a local change at the node (someone turned the lamp's knob)
``busy ADDR SECONDS``           the node answers BUSY for that long
``peek ADDR I2C REG N``         registers of a part on the node's bus, without moving its pointer
``fault SPEC``                  add a scripted frame fault
``record``                      the line's fault and traffic counters
``quit``                        stop serving
=============================== ===========================================================

It prints ``{"ready": true}`` once it serves the line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from typing import Any

import numpy as np

from firmware_bridge.messages import OutputFunction
from firmware_bridge.transport import SerialTransport

from .hw.amg8833 import SimAMG8833
from .hw.bus import SimI2CBus
from .nodes import SimNode
from .nodes_line import FrameFault, LineFaults, SimLine


def node_from_spec(spec: str, clock: Any) -> tuple[SimNode, SimAMG8833 | None]:
    """``5:desk-cluster:rev=2:hw=1:trial=3:amg8833=0x69`` -> the node (and its thermopile, if any)."""
    addr, kind, *options = spec.split(":")
    kw: dict[str, Any] = {}
    part: SimAMG8833 | None = None
    bus: SimI2CBus | None = None
    for option in options:
        key, _, value = option.partition("=")
        if key == "rev":
            kw["revision"] = int(value)
        elif key == "hw":
            kw["hw_revision"] = int(value)
        elif key == "trial":
            kw["trial_deadline_s"] = float(value)
        elif key == "amg8833":
            bus = SimI2CBus(f"node{addr}-local")
            part = SimAMG8833(clock, noise=0.0)
            part.set_frame(np.linspace(18, 34, 64).reshape(8, 8))
            bus.attach(int(value, 0), part)
        else:
            raise SystemExit(f"node spec {spec!r}: unknown option {key!r} (rev, hw, trial, amg8833)")
    return SimNode(int(addr), kind, i2c=bus, clock=clock, **kw), part


def node_state(node: SimNode) -> dict[str, Any]:
    now = node.clock()
    return {
        "address": node.address,
        "boot_id": node.boot_id,
        "firmware": ".".join(map(str, node.firmware)),
        "active_slot": node.active_slot,
        "ota_state": int(node.ota.state),
        "on_trial": node.flash.trial_from is not None,  # a new slot not yet confirmed by a HELLO
        "levels": [round(r.at(now)) for r in node.levels],
        "level_targets": [round(r.target) for r in node.levels],
        "lamps": [round(r.at(now)) for r in node.lamps],
        "lamp_targets": [round(r.target) for r in node.lamps],
        "indicators": list(node.indicators),
        "heights": [round(h.at(now)) for h in node.heights],
        "applied": [[round(t, 4), ch, fn, v] for t, ch, fn, v in node.applied],
        "duplicates": node.counters["dup"],
    }


class NodeProcess:
    """The line plus the command loop on stdin (see module docstring)."""

    def __init__(self, line: SimLine, parts: dict[int, SimAMG8833]) -> None:
        self.line = line
        self.parts = parts

    def command(self, words: list[str]) -> dict[str, Any]:
        op, args = words[0], words[1:]
        if op == "state":
            return node_state(self.line.node(int(args[0])))
        if op == "reboot":
            self.line.node(int(args[0])).reboot(silent_s=float(args[1]) if len(args) > 1 else 1.0)
            return {"ok": True}
        if op == "set":
            node, ch, fn, value = self.line.node(int(args[0])), int(args[1]), OutputFunction[args[2]], int(args[3])
            node.local_change(ch, fn, value)
            return {"ok": True}
        if op == "busy":
            node = self.line.node(int(args[0]))
            node.busy_until = node.clock() + float(args[1])
            return {"ok": True}
        if op == "peek":
            part = self.parts[int(args[0])]
            reg, n = int(args[2], 0), int(args[3])
            return {"data": bytes(part.regs[reg : reg + n]).hex(), "pointer": part.pointer}
        if op == "fault":
            self.line.faults.script.append(FrameFault.parse(args[0]))
            return {"ok": True}
        if op == "record":
            return asdict(self.line.record)
        raise ValueError(f"unknown command {op!r}")

    async def commands(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            words = line.decode().split()
            if not words:
                continue
            if words[0] == "quit":
                return
            try:
                answer = self.command(words)
            except (LookupError, ValueError, StopIteration) as exc:
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(answer), flush=True)


async def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m simulator.nodes_process", description=__doc__.splitlines()[0])
    ap.add_argument("--fd", type=int, required=True, help="an open descriptor of the line (a pty master)")
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--node", action="append", default=[], help="ADDR:KIND[:rev=R][:hw=H][:trial=S][:amg8833=A]")
    ap.add_argument("--fault", action="append", default=[], help="scripted frame fault, e.g. reply:drop:type=HELLO")
    for name in ("drop", "damage", "duplicate", "delay"):
        ap.add_argument(f"--{name}", type=float, default=0.0, help=f"per-frame {name} rate, each direction")
    ap.add_argument("--delay-s", type=float, default=0.05)
    ap.add_argument("--byte-errors", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    loop = asyncio.get_running_loop()
    built = [node_from_spec(spec, loop.time) for spec in args.node]
    faults = LineFaults(
        byte_error_rate=args.byte_errors,
        frame_drop_rate=args.drop,
        frame_damage_rate=args.damage,
        frame_duplicate_rate=args.duplicate,
        frame_delay_rate=args.delay,
        late_s=args.delay_s,
        script=[FrameFault.parse(s) for s in args.fault],
    )
    line = SimLine([n for n, _ in built], faults=faults, seed=args.seed)
    parts = {n.address: p for n, p in built if p is not None}
    serving = loop.create_task(line.serve(SerialTransport.from_fd(args.fd, "pty-master", args.baud)))
    print(json.dumps({"ready": True}), flush=True)
    try:
        await NodeProcess(line, parts).commands()
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
