"""A simulated node's outputs: dimmer channels, desk lamps, seat indicators and desk heights.

What SET_OUTPUT and GET_OUTPUT reach (PROTOCOL.md, section 5.5), as state with ramps: a level
or lamp moves linearly over ``ramp_ms``, a desk at its motor's speed. Checks follow the
protocol's order (capability, channel, value), so a refused command changes nothing; channel
255 (revision 2) applies one command to every channel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from firmware_bridge.messages import ALL_CHANNELS, Capability, NackCode, OutputFunction, OutputState, SetOutput

from .nodes_ota import Refusal

NEEDS: dict[OutputFunction, Capability] = {
    OutputFunction.LEVEL: Capability.DIMMER,
    OutputFunction.DESK_MOVE: Capability.DESK_HEIGHT,
    OutputFunction.DESK_STOP: Capability.DESK_HEIGHT,
    OutputFunction.DESK_PRESET: Capability.DESK_HEIGHT,
    OutputFunction.LAMP: Capability.DESK_LAMP,
    OutputFunction.INDICATOR: Capability.SEAT_INDICATOR,
}
DESK_MIN_MM, DESK_MAX_MM, DESK_SPEED_MM_S = 620, 1270, 30.0
DESK_PRESETS = (720, 1100, 750, 1200)

class Ramp:
    """A value moving linearly from ``start`` to ``target`` over [t0, t0 + duration]."""

    def __init__(self, value: float = 0.0) -> None:
        self.start = self.target = value
        self.t0 = 0.0
        self.duration = 0.0

    def at(self, t: float) -> float:
        if self.duration <= 0 or t >= self.t0 + self.duration:
            return self.target
        return self.start + (self.target - self.start) * max(0.0, t - self.t0) / self.duration

    def go(self, target: float, t: float, duration: float) -> None:
        self.start, self.target, self.t0, self.duration = self.at(t), target, t, max(0.0, duration)


@dataclass(slots=True)
class DeskState:
    height_mm: float
    target_mm: int
    moving: bool
    lamp: float  # 0..1
    indicator: int  # drivers.ports.IndicatorColour code


class NodeOutputs:
    """The output half of a :class:`simulator.nodes.SimNode` (a mixin: the node owns the state)."""

    capabilities: Capability
    channels: int
    revision: int
    clock: Callable[[], float]
    levels: list[Ramp]
    lamps: list[Ramp]
    indicators: list[int]
    heights: list[Ramp]
    applied: list[tuple[float, int, int, int]]

    def local_change(self, channel: int, function: int, value: int) -> None:
        """Someone changed an output at the node itself (a lamp's own knob): the gateway is not told."""
        self._apply(SetOutput(channel, function, value), self.clock())

    def dimmer_level(self, channel: int, t: float | None = None) -> float:
        return self.levels[channel].at(self.clock() if t is None else t) / 1000

    def desk_field(self, channel: int, field: str) -> float | int:
        """One field of :meth:`desk` now, without working out the rest (the world reads the lamps
        and indicators of every desk every few seconds)."""
        if field == "lamp":
            return self.lamps[channel].at(self.clock()) / 1000
        if field == "indicator":
            return self.indicators[channel]
        value: float | int = getattr(self.desk(channel), field)
        return value

    def desk(self, channel: int, t: float | None = None) -> DeskState:
        now = self.clock() if t is None else t
        h = self.heights[channel]
        height = h.at(now)
        return DeskState(
            height, round(h.target), height != h.target, self.lamps[channel].at(now) / 1000, self.indicators[channel]
        )

    def _check_output(self, channel: int, function: int, *, everywhere: bool = False) -> None:
        """Capability first (a function this node does not have, whether defined or not), then channel."""
        needs = NEEDS.get(function)  # type: ignore[call-overload]
        if needs is None or not self.capabilities & needs:
            raise Refusal(NackCode.UNSUPPORTED, function)
        if everywhere and channel == ALL_CHANNELS and self.revision >= 2:
            return
        if channel >= self.channels:
            raise Refusal(NackCode.NO_SUCH_CHANNEL, channel)

    @staticmethod
    def _check_value(cmd: SetOutput) -> None:
        fn, v = cmd.function, cmd.value
        bad = (
            (fn in (OutputFunction.LEVEL, OutputFunction.LAMP) and v > 1000)
            or (fn == OutputFunction.INDICATOR and v > 4)
            or (fn == OutputFunction.DESK_PRESET and v >= len(DESK_PRESETS))
            or (fn == OutputFunction.DESK_MOVE and not DESK_MIN_MM <= v <= DESK_MAX_MM)
        )
        if bad:
            raise Refusal(NackCode.BAD_VALUE)

    def _apply(self, cmd: SetOutput, now: float) -> None:
        fn, v, ramp = OutputFunction(cmd.function), cmd.value, cmd.ramp_ms / 1000
        for ch in range(self.channels) if cmd.channel == ALL_CHANNELS else (cmd.channel,):
            if fn in (OutputFunction.LEVEL, OutputFunction.LAMP):
                (self.levels if fn == OutputFunction.LEVEL else self.lamps)[ch].go(v, now, ramp)
            elif fn == OutputFunction.INDICATOR:
                self.indicators[ch] = v
            else:
                h = self.heights[ch]
                target = DESK_PRESETS[v] if fn == OutputFunction.DESK_PRESET else v
                if fn == OutputFunction.DESK_STOP:
                    target = round(h.at(now))
                h.go(target, now, abs(target - h.at(now)) / DESK_SPEED_MM_S)
            self.applied.append((now, ch, fn, v))

    def _output_state(self, channel: int, function: int, now: float) -> OutputState:
        fn = OutputFunction(function)
        if channel == ALL_CHANNELS:  # the command's value; moving if any channel moves
            states = [self._output_state(ch, fn, now) for ch in range(self.channels)]
            first = states[0]
            return OutputState(ALL_CHANNELS, fn, first.value, first.target, max(s.flags for s in states))
        if fn == OutputFunction.INDICATOR:
            return OutputState(channel, fn, self.indicators[channel], self.indicators[channel], 0)
        ramp = {OutputFunction.LEVEL: self.levels, OutputFunction.LAMP: self.lamps}.get(fn, self.heights)[channel]
        value = ramp.at(now)
        return OutputState(channel, fn, round(value), round(ramp.target), int(value != ramp.target))
