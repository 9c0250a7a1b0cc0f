"""SimLine: an RS-485 line of simulated nodes, with faults, served on any bridge transport.

The line sits on the slave side of a transport: the far end of a
:class:`firmware_bridge.transport.MemoryLine` (virtual time, no I/O) or the master side of a pty
pair wrapped in :class:`firmware_bridge.transport.SerialTransport` (the real serial path; see
:mod:`simulator.nodes_process` for a node process driven through a real serial device). Every
node hears every frame, as on a real multi-drop bus; the addressed node answers after its
turnaround and processing time, and the transport charges 10 bit times per byte.

Faults are configured per line (:class:`LineFaults`):

- byte faults: bit flips and dropped bytes in both directions, at random;
- frame faults, at random or scripted (:class:`FrameFault`): a whole request or reply dropped,
  damaged (one bit flipped, so its CRC fails), duplicated (heard twice) or delayed;
- late answers (after the gateway has given up), and, by adding two nodes with one address,
  collisions whose bytes mix into garbage. ``node.reboot()`` makes a node go silent and come back
  with a new boot id.

With ``trace=True`` the line keeps every request it heard with its arrival time, so tests can
check what the gateway sent and when.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Literal

from drivers.errors import FrameError
from firmware_bridge.codec import BROADCAST, MAX_ENCODED, Frame, decode_frame
from firmware_bridge.link import TURNAROUND_S
from firmware_bridge.messages import MsgType
from firmware_bridge.transport import MemoryEndpoint, MemoryLine, Transport

from .nodes import SimNode

Direction = Literal["request", "reply"]
_DECODED_KEPT = 1 << 16  # requests kept decoded (a few megabytes); all are forgotten when it is reached
Action = Literal["drop", "damage", "duplicate", "delay"]
ACTIONS: tuple[Action, ...] = ("drop", "damage", "duplicate", "delay")


@dataclass(slots=True)
class FrameFault:
    """A scripted fault: the next ``count`` matching frames going ``direction`` suffer ``action``.

    A reply is matched by the request it answers (its node, type and sequence number). ``skip``
    lets that many matching frames pass first. Spec form (for a node process's command line):
    ``reply:drop:type=SET_OUTPUT:node=5:skip=1:count=2:delay=0.05``.
    """

    direction: Direction
    action: Action
    node: int | None = None
    type: int | None = None
    skip: int = 0
    count: int = 1
    delay_s: float = 0.05

    def hits(self, request: Frame) -> bool:
        """True when this fault applies to (the reply to) ``request``; consumes one use."""
        if self.count <= 0 or (self.node is not None and request.dst != self.node):
            return False
        if self.type is not None and request.type != self.type:
            return False
        if self.skip > 0:
            self.skip -= 1
            return False
        self.count -= 1
        return True

    @classmethod
    def parse(cls, spec: str) -> FrameFault:
        parts = spec.split(":")
        if len(parts) < 2 or parts[0] not in ("request", "reply") or parts[1] not in ACTIONS:
            raise ValueError(f"fault {spec!r}: write direction:action[:key=value...], e.g. reply:drop:type=SET_OUTPUT")
        fault = cls(parts[0], parts[1])  # type: ignore[arg-type]
        for item in parts[2:]:
            key, _, value = item.partition("=")
            if key == "type":
                fault.type = MsgType[value] if not value.isdigit() else int(value)
            elif key in ("node", "skip", "count"):
                setattr(fault, key, int(value))
            elif key == "delay":
                fault.delay_s = float(value)
            else:
                raise ValueError(f"fault {spec!r}: unknown key {key!r} (node, type, skip, count, delay)")
        return fault


@dataclass(slots=True)
class LineFaults:
    byte_error_rate: float = 0.0  # per byte: one random bit flipped
    drop_rate: float = 0.0  # per byte: lost
    late_rate: float = 0.0  # per reply: sent ``late_s`` after it was due
    late_s: float = 0.05
    frame_drop_rate: float = 0.0  # per frame, each direction: lost whole
    frame_damage_rate: float = 0.0  # per frame: one bit flipped
    frame_duplicate_rate: float = 0.0  # per frame: heard twice
    frame_delay_rate: float = 0.0  # per frame: held back ``late_s``
    script: list[FrameFault] = field(default_factory=list)

    @property
    def bytes_hit(self) -> bool:
        return bool(self.byte_error_rate or self.drop_rate)


@dataclass(slots=True)
class LineRecord:
    frames_in: int = 0
    replies: int = 0
    collisions: int = 0
    corrupted_bytes: int = 0
    dropped_bytes: int = 0
    late: int = 0
    frame_faults: dict[str, int] = field(default_factory=dict)  # "reply:drop" -> count


class SimLine:
    """Several SimNodes on one line (see module docstring)."""

    def __init__(
        self, nodes: Iterable[SimNode] = (), *, faults: LineFaults | None = None, seed: int = 0, trace: bool = False
    ) -> None:
        self.nodes: list[SimNode] = list(nodes)
        self.faults = faults or LineFaults()
        self.record = LineRecord()
        self.trace: list[tuple[float, Frame]] | None = [] if trace else None
        self._rng = random.Random(seed)
        self._replying: set[asyncio.Task[None]] = set()
        self._by_address: tuple[list[SimNode], dict[int, list[SimNode]]] = ([], {})
        # Requests decoded, by their bytes: a gateway's requests repeat exactly (a node's STATUS poll
        # comes back with the same sequence number every 256 requests to it), and a frame is frozen.
        self._decoded: dict[bytes, Frame] = {}

    def add(self, node: SimNode) -> SimNode:
        self.nodes.append(node)
        return node

    def node(self, address: int) -> SimNode:
        return next(n for n in self.nodes if n.address == address)

    def damage(self, data: bytes) -> bytes:
        """Apply the configured byte faults to bytes crossing the line."""
        f = self.faults
        if not f.bytes_hit:
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

        def heard(chunk: bytes) -> None:
            if (not buf and chunk.find(0) == len(chunk) - 1 > 0 and len(chunk) <= MAX_ENCODED + 1
                    and not self.faults.bytes_hit):
                self._heard(chunk[:-1], transport, loop.time())  # one whole frame, as a master writes it
                return
            data = self.damage(chunk)
            start = 0
            while (end := data.find(0, start)) >= 0:
                buf.extend(data[start:end])
                start = end + 1
                if buf and len(buf) <= MAX_ENCODED:
                    self._heard(bytes(buf), transport, loop.time())
                buf.clear()
            buf.extend(data[start:])
            if len(buf) > MAX_ENCODED:
                buf.clear()

        try:
            if isinstance(transport, MemoryEndpoint):
                # The nodes hear each chunk in the callback that delivers it, at the same virtual
                # time as a reading task would, without a task woken per request.
                await transport.listen(heard)
            while True:
                heard(await transport.read())
        finally:
            for t in list(self._replying):
                t.cancel()
            await asyncio.gather(*self._replying, return_exceptions=True)
            await transport.aclose()

    # ---- frame faults ----------------------------------------------------------------------
    def _fault(self, direction: Direction, request: Frame | None) -> tuple[Action, float] | None:
        """The fault (and its delay) hitting this frame: a scripted one first, else a random one."""
        f = self.faults
        if request is None or not (f.script or f.frame_drop_rate or f.frame_damage_rate or f.frame_duplicate_rate
                                   or f.frame_delay_rate):
            return None  # a line without frame faults (a simulated day's): nothing to draw or match
        hit = next((s for s in f.script if s.direction == direction and s.hits(request)), None)
        fault = (hit.action, hit.delay_s) if hit is not None else None
        rates = (f.frame_drop_rate, f.frame_damage_rate, f.frame_duplicate_rate, f.frame_delay_rate)
        if fault is None and any(rates):
            r = self._rng.random()
            for rate, what in zip(rates, ACTIONS, strict=True):
                if r < rate:
                    fault = (what, f.late_s)
                    break
                r -= rate
        if fault is not None:
            key = f"{direction}:{fault[0]}"
            self.record.frame_faults[key] = self.record.frame_faults.get(key, 0) + 1
        return fault

    def _flip(self, data: bytes) -> bytes:
        """One bit flipped inside the frame (never the delimiter), so the receiver's CRC check fails."""
        out = bytearray(data)
        i = self._rng.randrange(max(1, len(out) - 1))
        out[i] ^= 1 << self._rng.randrange(8)
        return bytes(out)

    # ---- requests and replies --------------------------------------------------------------
    def _heard(self, block: bytes, transport: Transport, now: float) -> None:
        frame, listeners = self._listeners(block)
        if frame is not None and self.trace is not None:
            self.trace.append((now, frame))
        action, delay = self._fault("request", frame) or (None, 0.0)
        if action == "drop":
            return
        if action == "damage":
            block = self._flip(block)
            frame, listeners = None, self.nodes
        if action == "delay":
            loop = asyncio.get_running_loop()
            loop.call_later(delay, self._frame, block, frame, listeners, transport, now + delay)
            return
        self._frame(block, frame, listeners, transport, now)
        if action == "duplicate":  # heard twice, back to back: the second copy draws the cached reply
            self._frame(block, frame, listeners, transport, now)

    def _frame(
        self, block: bytes, frame: Frame | None, listeners: list[SimNode], transport: Transport, now: float
    ) -> None:
        record = self.record
        record.frames_in += 1
        replies: list[tuple[float, bytes]] = []
        for n in listeners:
            out = n.receive(block, now, decoded=frame)
            if out is not None:
                replies.append((n.reply_delay_s, out))
        if not replies:
            return
        if len(replies) == 1:  # one node answers (nearly every frame)
            delay, reply = replies[0]
            delay = TURNAROUND_S + delay
        else:  # two drivers on the bus at once: the receiver sees neither frame
            delay = TURNAROUND_S + max(d for d, _ in replies)
            record.collisions += 1
            reply = _collide([r for _, r in replies])
        faults = self.faults
        if faults.late_rate and self._rng.random() < faults.late_rate:
            record.late += 1
            delay += faults.late_s
        action, extra = self._fault("reply", frame) or (None, 0.0)
        if action == "drop":
            return
        if action == "damage":
            reply = self._flip(reply)
        elif action == "delay":
            delay += extra
        record.replies += 1
        self._send_later(transport, delay, reply)
        if action == "duplicate":
            self._send_later(transport, delay, reply)

    def _send_later(self, transport: Transport, delay: float, reply: bytes) -> None:
        if isinstance(transport, MemoryEndpoint) and not self.faults.bytes_hit:
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
        frame = self._decoded.get(block)
        if frame is None:
            try:
                frame = decode_frame(block)
            except FrameError:
                return None, self.nodes
            if len(self._decoded) >= _DECODED_KEPT:
                self._decoded.clear()
            self._decoded[block] = frame
        if frame.dst == BROADCAST:
            return frame, self.nodes
        # Nodes by address, rebuilt when the list of nodes changes (tests add and replace nodes):
        # the index keeps a copy of the list it was built from, and two lists of nodes are equal
        # only when they hold the same nodes in the same order (a node equals only itself).
        if self._by_address[0] != self.nodes:
            index: dict[int, list[SimNode]] = {}
            for n in self.nodes:
                index.setdefault(n.address, []).append(n)
            self._by_address = (list(self.nodes), index)
        return frame, list(self._by_address[1].get(frame.dst, ()))

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
