"""GPIO outputs implementing :class:`drivers.ports.Output`: a dimmable light channel and HVAC requests.

All take a gpiozero pin factory (the simulator passes a ``MockFactory`` with ``MockPWMPin``) and
the injected clock for ramps. ``read_back`` returns what the pin actually holds, read from the
pin rather than remembered, so the arbiter's confirmation step sees a stuck or reset pin.

- :class:`PwmLight`: a LED driver's PWM dimming input; ramps in steps of ``step_s``. A newer
  ``set`` supersedes a ramp still running.
- :class:`HvacRelay`: a volt-free contact to the BMS: on when the request reaches ``threshold``.
- :class:`HvacAnalogOutput`: a 0-10 V request made from PWM through an RC low-pass and a x3.03
  amplifier (3.3 V full scale -> 10 V); ``value`` 0..1 is the duty, scaled by
  ``full_scale_duty`` when the amplifier saturates before 100 %.
- :class:`HvacSetpointOutput`: the same circuit carrying a temperature setpoint to a BMS input that
  reads 0-10 V as ``low_c``-``high_c`` (0-40 C by default); ``value`` is in degrees C.
"""

from __future__ import annotations

import math
from typing import Any

from drivers.ports import Clock


def _check_level(value: float, what: str) -> float:
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ValueError(f"{what}: level {value} outside 0..1")
    return value


class PwmLight:
    """One dimmable light channel on a PWM-capable GPIO pin."""

    def __init__(
        self, pin: int, pin_factory: Any, clock: Clock, *, name: str = "", frequency: int = 1000, step_s: float = 0.02
    ) -> None:
        from gpiozero import PWMLED

        self.name = name or f"light@gpio{pin}"
        self.clock = clock
        self.step_s = step_s
        self._led = PWMLED(pin, frequency=frequency, pin_factory=pin_factory)
        self._generation = 0

    async def set(self, value: float, ramp_s: float = 0.0) -> None:
        target = _check_level(value, self.name)
        self._generation += 1
        mine = self._generation
        start = float(self._led.value)
        steps = max(1, math.ceil(ramp_s / self.step_s)) if ramp_s > 0 else 1
        for k in range(1, steps + 1):
            if self._generation != mine:
                return  # superseded by a newer command
            self._led.value = start + (target - start) * k / steps
            if k < steps:
                await self.clock.sleep(ramp_s / steps)

    async def read_back(self) -> float | None:
        state = self._led.pin.state
        return float(state)

    def close(self) -> None:
        self._led.close()


class HvacRelay:
    """An on/off HVAC request: the relay closes when the requested level reaches ``threshold``."""

    def __init__(self, pin: int, pin_factory: Any, *, name: str = "", threshold: float = 0.5) -> None:
        from gpiozero import DigitalOutputDevice

        self.name = name or f"hvac-relay@gpio{pin}"
        self.threshold = threshold
        self._relay = DigitalOutputDevice(pin, pin_factory=pin_factory)

    async def set(self, value: float, ramp_s: float = 0.0) -> None:
        level = _check_level(value, self.name)
        if level >= self.threshold:
            self._relay.on()
        else:
            self._relay.off()

    async def read_back(self) -> float | None:
        return 1.0 if self._relay.pin.state else 0.0

    def close(self) -> None:
        self._relay.close()


class HvacAnalogOutput:
    """A 0-10 V HVAC request from filtered PWM; ``volts`` is the expected output voltage."""

    def __init__(
        self,
        pin: int,
        pin_factory: Any,
        clock: Clock,
        *,
        name: str = "",
        full_scale_duty: float = 1.0,
        frequency: int = 1000,
    ) -> None:
        from gpiozero import PWMOutputDevice

        if not 0.1 <= full_scale_duty <= 1.0:
            raise ValueError(f"full_scale_duty {full_scale_duty}: use 0.1..1.0")
        self.name = name or f"hvac-0-10v@gpio{pin}"
        self.clock = clock
        self.full_scale_duty = full_scale_duty
        self._pwm = PWMOutputDevice(pin, frequency=frequency, pin_factory=pin_factory)

    async def set(self, value: float, ramp_s: float = 0.0) -> None:
        level = _check_level(value, self.name)
        if ramp_s > 0:  # HVAC controllers dislike steps; a few intermediate values suffice
            start = await self.read_back() or 0.0
            for k in range(1, 5):
                self._pwm.value = (start + (level - start) * k / 5) * self.full_scale_duty
                await self.clock.sleep(ramp_s / 5)
        self._pwm.value = level * self.full_scale_duty

    async def read_back(self) -> float | None:
        return float(self._pwm.pin.state) / self.full_scale_duty

    @property
    def volts(self) -> float:
        return 10.0 * float(self._pwm.pin.state) / self.full_scale_duty

    def close(self) -> None:
        self._pwm.close()


class HvacSetpointOutput:
    """A heating or cooling setpoint, degrees C, on a BMS's 0-10 V input (0 V = ``low_c``, 10 V = ``high_c``)."""

    def __init__(self, pin: int, pin_factory: Any, clock: Clock, *, name: str = "", low_c: float = 0.0,
                 high_c: float = 40.0, full_scale_duty: float = 1.0) -> None:
        if not high_c > low_c:
            raise ValueError(f"setpoint scale {low_c}..{high_c} C: high_c must exceed low_c")
        self.name = name or f"hvac-setpoint@gpio{pin}"
        self.low_c, self.high_c = low_c, high_c
        self._volts = HvacAnalogOutput(pin, pin_factory, clock, name=self.name, full_scale_duty=full_scale_duty)

    async def set(self, value: float, ramp_s: float = 0.0) -> None:
        if not self.low_c <= value <= self.high_c or math.isnan(value):
            raise ValueError(f"{self.name}: setpoint {value} C outside the input's {self.low_c:g}..{self.high_c:g} C")
        await self._volts.set((value - self.low_c) / (self.high_c - self.low_c), ramp_s)

    async def read_back(self) -> float | None:
        level = await self._volts.read_back()
        return None if level is None else self.low_c + level * (self.high_c - self.low_c)

    def close(self) -> None:
        self._volts.close()
