"""A desk's load: what the empty desk weighs, and whether something stands on it now.

The desk node reports the mass on a desk's platform (firmware_bridge/PROTOCOL.md, block 1),
corrected by the desk's tare and scale (edge-agent calibrate weight). Belongings are a *step*
above the empty desk: a laptop (1.2-2.5 kg), a bag (1-6 kg), books (0.3-2 kg), a cup (0.25 kg
and more). :class:`DeskWeight` keeps the empty level (``baseline``) and says whether the load
above it is belongings (``on``) and since when.

Why learn the empty level instead of trusting the tare: a load cell drifts with temperature and
creeps under a constant load (a few grams an hour; HARDWARE.md section 10), a desk may never
have been tared, and staff may release a seat without taking what stands on it. So:

- while the seat is free and the load is within ``step_g`` of the empty level, the level
  follows it slowly (time constant ``follow_tau_s``): drift and creep are tracked, a bag is not;
- a load more than ``step_g`` *below* the empty level means something counted as empty was taken
  away: the empty level drops to it at once;
- :meth:`rezero` makes the load now the empty level (a seat released by staff: what is left
  there is no claim).

The first reading is taken as the empty desk (start the gateway, like the thermopiles, with the
desks clear, or tare them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Smallest load that counts as belongings (a cup of coffee is 250 g and more).
STEP_G = 150.0


@dataclass(slots=True)
class DeskWeight:
    """One desk's load (see module docstring)."""

    step_g: float = STEP_G
    follow_tau_s: float = 1800.0
    baseline: float | None = None
    grams: float | None = None  # latest corrected reading
    t: float | None = None  # when it was taken
    on: bool = False  # belongings on the desk at the latest reading
    on_since: float | None = None  # when the current step began (the first reading showing it)

    def observe(self, grams: float, t: float, *, empty_expected: bool) -> None:
        """A corrected reading at ``t``. ``empty_expected``: the seat is free and nobody is at it,
        so a load near the empty level is the empty level drifting."""
        if not math.isfinite(grams):
            return
        if self.baseline is None:
            self.baseline = grams
        elif grams < self.baseline - self.step_g:
            self.baseline = grams  # something counted as the empty desk was taken away
        elif empty_expected and abs(grams - self.baseline) < self.step_g and self.t is not None and t > self.t:
            self.baseline += (grams - self.baseline) * (1.0 - math.exp(-(t - self.t) / self.follow_tau_s))
        on = grams - self.baseline >= self.step_g
        if on and not self.on:
            self.on_since = t
        elif not on:
            self.on_since = None
        self.on, self.grams, self.t = on, grams, t

    @property
    def load_g(self) -> float | None:
        """Grams above the empty desk at the latest reading."""
        if self.grams is None or self.baseline is None:
            return None
        return self.grams - self.baseline

    def rezero(self) -> None:
        """What stands on the desk now is the empty level (a release by staff)."""
        if self.grams is not None:
            self.baseline = self.grams
        self.on, self.on_since = False, None
