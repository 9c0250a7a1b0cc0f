"""SimLine: an RS-485 line of simulated nodes, with faults, served on any bridge transport.

The line sits on the slave side of a transport: the far end of a
:class:`firmware_bridge.transport.MemoryLine` (virtual time, no I/O) or the slave side of a pty
pair opened with :class:`firmware_bridge.transport.SerialTransport` (the real serial path). Every
node hears every frame, as on a real multi-drop bus; the addressed node answers after its
turnaround and processing time, and the transport charges 10 bit times per byte.

Faults are configured per line (:class:`LineFaults`): bit flips and dropped bytes in both
directions, late answers (after the gateway has given up), and, by adding two nodes with one
address, collisions whose bytes mix into garbage. ``node.reboot()`` makes a node go silent and
come back with a new boot id.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from drivers.errors import FrameError
from firmware_bridge.codec import BROADCAST, MAX_ENCODED, Frame, decode_frame
from firmware_bridge.link import TURNAROUND_S
from firmware_bridge.transport import MemoryEndpoint, MemoryLine, Transport

from .nodes import SimNode


@dataclass(slots=True)
class LineFaults:
    byte_error_rate: float = 0.0  # per byte: one random bit flipped
    drop_rate: float = 0.0  # per byte: lost
    late_rate: float = 0.0  # per reply: sent ``late_s`` after it was due
    late_s: float = 0.05


@dataclass(slots=True)
class LineRecord:
    frames_in: int = 0
    replies: int = 0
    collisions: int = 0
    corrupted_bytes: int = 0
    dropped_bytes: int = 0
    late: int = 0


class SimLine:
    """Several SimNodes on one line (see module docstring)."""

    def __init__(self, nodes: Iterable[SimNode] = (), *, faults: LineFaults | None = None, seed: int = 0) -> None:
        self.nodes: list[SimNode] = list(nodes)
        self.faults = faults or LineFaults()
        self.record = LineRecord()
        self._rng = random.Random(seed)
        self._replying: set[asyncio.Task[None]] = set()

    def add(self, node: SimNode) -> SimNode:
        self.nodes.append(node)
        return node

    def node(self, address: int) -> SimNode:
        return next(n for n in self.nodes if n.address == address)

    def damage(self, data: bytes) -> bytes:
        """Apply the configured byte faults to bytes crossing the line."""
        f = self.faults
        if not f.byte_error_rate and not f.drop_rate:
            return data
        out = bytearray()
        rnd = self._rng.random
        for b in data:
            r = rnd()
            if r < f.drop_rate:
                self.record.dropped_bytes += 1
                continue
            if r < f.drop_rate + f.byte_error_rate:
                b ^= 1 << self._rng.randrange(8)
                self.record.corrupted_bytes += 1
            out.append(b)
        return bytes(out)

    async def serve(self, transport: Transport) -> None:
        """Answer frames on ``transport`` until cancelled (then close it)."""
        loop = asyncio.get_running_loop()
        for n in self.nodes:
            n.use_clock(loop.time)
        buf = bytearray()
        try:
            while True:
                data = self.damage(await transport.read())
                start = 0
                while (end := data.find(0, start)) >= 0:
                    buf += data[start:end]
                    start = end + 1
                    if buf and len(buf) <= MAX_ENCODED:
                        self._frame(bytes(buf), transport, loop.time())
                    buf.clear()
                buf += data[start:]
                if len(buf) > MAX_ENCODED:
                    buf.clear()
        finally:
            for t in list(self._replying):
                t.cancel()
            await asyncio.gather(*self._replying, return_exceptions=True)
            await transport.aclose()

    def _frame(self, block: bytes, transport: Transport, now: float) -> None:
        self.record.frames_in += 1
        replies: list[tuple[float, bytes]] = []
        frame, listeners = self._listeners(block)
        for n in listeners:
            out = n.receive(block, now, decoded=frame)
            if out is not None:
                replies.append((n.reply_delay_s, out))
        if not replies:
            return
        delay = TURNAROUND_S + max(d for d, _ in replies)
        reply = replies[0][1]
        if len(replies) > 1:  # two drivers on the bus at once: the receiver sees neither frame
            self.record.collisions += 1
            reply = _collide([r for _, r in replies])
        if self.faults.late_rate and self._rng.random() < self.faults.late_rate:
            self.record.late += 1
            delay += self.faults.late_s
        self.record.replies += 1
        if isinstance(transport, MemoryEndpoint) and not self.faults.byte_error_rate and not self.faults.drop_rate:
            transport.send_later(delay, reply)  # same timing on one timer; no bytes to damage
            return
        task = asyncio.get_running_loop().create_task(self._send(transport, delay, reply))
        self._replying.add(task)
        task.add_done_callback(self._replying.discard)

    def _listeners(self, block: bytes) -> tuple[Frame | None, list[SimNode]]:
        """Nodes that act on this block: every node's firmware reads every frame, but only the
        addressed ones (or all, for broadcasts and damaged frames) do anything with it, so the
        line hands an intact frame only to those -- the same outcome, without 36 decodes. The
        decoded frame goes along, so the node does not decode it again."""
        try:
            frame = decode_frame(block)
        except FrameError:
            return None, self.nodes
        if frame.dst == BROADCAST:
            return frame, self.nodes
        return frame, [n for n in self.nodes if n.address == frame.dst]

    async def _send(self, transport: Transport, delay: float, reply: bytes) -> None:
        await asyncio.sleep(delay)
        await transport.write(self.damage(reply))

    @contextlib.asynccontextmanager
    async def on_memory_line(self, baud: int = 115200) -> AsyncIterator[MemoryLine]:
        """Serve this line on the slave end of a new MemoryLine; yields the line (use ``.master``)."""
        line = MemoryLine(baud)
        task = asyncio.get_running_loop().create_task(self.serve(line.slave))
        try:
            yield line
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _collide(frames: list[bytes]) -> bytes:
    """Bytes two RS-485 drivers produce together: the dominant (0) bits win, frames end at the longest."""
    n = max(len(f) for f in frames)
    out = bytearray(b"\xff" * n)
    for f in frames:
        for i, b in enumerate(f):
            out[i] &= b
    return bytes(out)
