"""Simulated GPIO: gpiozero's own MockFactory, with PWM-capable pins.

gpiozero's mock pins have behaviour and a timestamped record (``pin.states``), so the simulator
uses them as they are. ``MockPWMPin`` is required because ``PWMLED`` on a plain ``MockPin``
raises ``PinPWMUnsupported``. The revision defaults to a Pi 4 B (``c03111``).
"""

from __future__ import annotations

from typing import Any


def make_pin_factory(revision: str = "c03111") -> Any:
    """A fresh MockFactory whose pins all support PWM (pass it as ``pin_factory=``)."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    return MockFactory(revision=revision, pin_class=MockPWMPin)
