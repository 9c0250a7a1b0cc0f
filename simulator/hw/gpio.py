"""Simulated GPIO: gpiozero's own MockFactory, with PWM-capable pins, and lines parts drive.

gpiozero's mock pins have behaviour and a timestamped record (``pin.states``), so the simulator
uses them as they are. ``MockPWMPin`` is required because ``PWMLED`` on a plain ``MockPin``
raises ``PinPWMUnsupported``. The revision defaults to a Pi 4 B (``c03111``).

:class:`DrivenPin` is a line a simulated part drives with a push-pull output (a PIR module's OUT,
an HX711's DOUT): the host's pull resistor does not move it, as on the real wire, where a mock
pin would jump to the pull's level when a driver opens the line.
"""

from __future__ import annotations

from typing import Any

from gpiozero.pins.mock import MockFactory, MockPWMPin


def make_pin_factory(revision: str = "c03111") -> Any:
    """A fresh MockFactory whose pins all support PWM (pass it as ``pin_factory=``)."""
    return MockFactory(revision=revision, pin_class=MockPWMPin)


class DrivenPin(MockPWMPin):  # type: ignore[misc]
    """A GPIO line held by a part's output: setting the host's pull keeps the level the part drives."""

    def _set_pull(self, value: str) -> None:
        level: float = self.state
        super()._set_pull(value)
        self._state = level  # no edge: the part's output stronger than the pull resistor


def driven_pin(factory: Any, number: int) -> Any:
    """The factory's pin ``number`` as a line a part drives (create it before any device opens it)."""
    return factory.pin(number, pin_class=DrivenPin)
