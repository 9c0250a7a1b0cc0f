"""Ports onto a node: its I2C bus (drivers.ports.AsyncI2CBus) and its outputs (drivers.ports.Output).

These let the rest of the gateway treat a node's hardware like local hardware: a thermopile
driver runs unchanged against :class:`BridgeI2CBus`, and the arbiter drives a
:class:`DimmerChannel` exactly like a PWM pin. A ``set`` returns only once the node has
confirmed the new state; ``read_back`` asks the node what the output holds now, and
``reported`` is the node's newest answer without asking again (None while unknown, e.g. right
after the node rebooted).
"""

from __future__ import annotations

import asyncio

from drivers.errors import BridgeError, BusError, BusTimeoutError, NackError, NodeTimeoutError

from .link import BridgeLink
from .messages import I2CStatus, OutputFunction, OutputState


class BridgeI2CBus:
    """A node's local I2C bus, tunnelled: one ``I2C`` request per ``transfer``."""

    def __init__(self, link: BridgeLink, node: int) -> None:
        self.link = link
        self.node = node
        self.name = f"node{node}"

    async def transfer(self, address: int, write: bytes, read_len: int) -> bytes:
        try:
            status, data = await self.link.i2c(self.node, address, write, read_len)
        except NodeTimeoutError as exc:
            raise BusTimeoutError(
                f"{self.name}@0x{address:02x}: node did not answer", bus=self.name, address=address
            ) from exc
        if status == I2CStatus.OK:
            return data
        if status in (I2CStatus.ADDRESS_NACK, I2CStatus.DATA_NACK):
            what = "address" if status == I2CStatus.ADDRESS_NACK else "data"
            raise NackError(f"{self.name}@0x{address:02x}: no acknowledge ({what})", bus=self.name, address=address)
        raise BusError(f"{self.name}@0x{address:02x}: bus error on the node", bus=self.name, address=address)


def _collect_error(task: asyncio.Future[bytes]) -> None:
    """Mark a finished shared read's error as seen; whoever still awaits it gets it through the shield."""
    if not task.cancelled():
        task.exception()


class BridgeSensorBlocks:
    """A node's sensor blocks (drivers.ports.SensorBlockPort): one READ_SENSOR per block and moment.

    The four desks of a desk node read the same block: a read of it within ``max_age_s`` (or one
    on its way) answers them all, so a node's load cells cost one request per poll, not four.
    """

    def __init__(self, link: BridgeLink, node: int) -> None:
        self.link = link
        self.node = node
        self.name = f"node{node}"
        self._latest: dict[int, tuple[float, bytes]] = {}
        self._reading: dict[int, asyncio.Task[bytes]] = {}

    async def read_block(self, block: int, *, max_age_s: float = 0.0) -> bytes:
        latest = self._latest.get(block)
        if latest is not None and self.link.clock.monotonic() - latest[0] <= max_age_s:
            return latest[1]
        task = self._reading.get(block)
        if task is None or task.done():
            task = self._reading[block] = asyncio.ensure_future(self._read(block))
            # The read is shielded so that one caller's cancellation (a reload stopping a poller) does not
            # cut it short for the others; if every caller has gone when it fails (the link closed by that
            # reload), its error is nobody's to raise: collect it here, or asyncio logs it as lost.
            task.add_done_callback(_collect_error)
        return await asyncio.shield(task)

    async def _read(self, block: int) -> bytes:
        try:
            data = await self.link.read_sensor(self.node, block)
        except NodeTimeoutError as exc:
            raise BusTimeoutError(f"{self.name}: sensor block {block}: node did not answer", bus=self.name) from exc
        except BridgeError as exc:  # a refusal (no such block) or a damaged reply
            raise BusError(f"{self.name}: sensor block {block}: {exc}", bus=self.name) from exc
        self._latest[block] = (self.link.clock.monotonic(), data)
        return data


class NodeOutput:
    """One function of one channel on a node; subclasses fix the function and the unit conversion."""

    function: OutputFunction

    def __init__(self, link: BridgeLink, node: int, channel: int) -> None:
        self.link = link
        self.node = node
        self.channel = channel
        self.last_confirmed: OutputState | None = None

    def _encode(self, value: float) -> int:
        return round(value)

    def _decode(self, raw: int) -> float:
        return float(raw)

    async def set(self, value: float, ramp_s: float = 0.0) -> None:
        ramp_ms = max(0, min(0xFFFF, round(ramp_s * 1000)))
        self.last_confirmed = await self.link.set_output(
            self.node, self.channel, self.function, self._encode(value), ramp_ms
        )

    async def read_back(self) -> float | None:
        state = await self.link.get_output(self.node, self.channel, self.function)
        return self._decode(state.value)

    @property
    def answered(self) -> float | None:
        """What the node said the output holds in its answer to the last ``set`` (None: no answer yet).

        The node answers SET_OUTPUT with what the output holds once it has applied the command
        (PROTOCOL.md 5.5): the arbiter takes that answer as the read-back of a command without a
        ramp instead of asking GET_OUTPUT in the same moment (one exchange on the line, not two).
        """
        state = self.last_confirmed
        return None if state is None else self._decode(state.value)

    @property
    def reported(self) -> float | None:
        """What the node last said this output holds (from a confirmation or a read-back)."""
        state = self.link.reported(self.node, self.channel, self.function)
        return None if state is None else self._decode(state.value)

    @property
    def healthy(self) -> bool:
        """The node answers and holds what the gateway owns on it (not offline, not restoring)."""
        rec = self.link.registry.nodes.get(self.node)
        return rec is not None and rec.health == "ok"


class _Level(NodeOutput):
    def _encode(self, value: float) -> int:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"level {value} outside 0..1")
        return round(value * 1000)

    def _decode(self, raw: int) -> float:
        return raw / 1000


class DimmerChannel(_Level):
    """A luminaire channel on a dimmer node: 0..1 with a ramp."""

    function = OutputFunction.LEVEL


class DeskLamp(_Level):
    """The task lamp of a desk on a desk-cluster node: 0..1 with a ramp."""

    function = OutputFunction.LAMP


class SeatIndicator(NodeOutput):
    """The seat indicator of a desk: values are drivers.ports.IndicatorColour codes."""

    function = OutputFunction.INDICATOR

    def _encode(self, value: float) -> int:
        code = round(value)
        if not 0 <= code <= 4:
            raise ValueError(f"indicator colour {value} is not an IndicatorColour code (0..4)")
        return code


class DeskHeight(NodeOutput):
    """Desk height in mm; ``set`` starts the move (read_back reports progress), ``stop`` halts it."""

    function = OutputFunction.DESK_MOVE

    def _encode(self, value: float) -> int:
        mm = round(value)
        if not 0 <= mm <= 0xFFFF:
            raise ValueError(f"desk height {value} mm out of range")
        return mm

    async def stop(self) -> None:
        self.last_confirmed = await self.link.set_output(self.node, self.channel, OutputFunction.DESK_STOP, 0)

    async def preset(self, number: int) -> None:
        self.last_confirmed = await self.link.set_output(self.node, self.channel, OutputFunction.DESK_PRESET, number)
