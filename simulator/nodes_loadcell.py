"""A desk node's load-cell platforms and its button, as the node's firmware sees them.

Each desk of a desk-cluster node may stand on a four-cell half-bridge platform read by an HX711
(HARDWARE.md section 10). The node's MCU clocks its HX711 at the part's own rate and answers
sensor block 1 (firmware_bridge/PROTOCOL.md, 5.3) with the mean of its latest conversions in
grams at the board's nominal scale; the gateway holds each desk's tare and scale.

The analog side is modelled as the part would make it, without clocking 25 pulses per
conversion (a simulated day has millions of conversions): counts are
``zero + (dead load + mass + creep) * counts_per_gram + drift + noise``, clamped to the 24-bit
range, where

- the *dead load* is the desktop itself (15-25 kg: the reason a fresh platform needs a tare);
- ``counts_per_gram`` differs from the board's nominal figure by a few per cent (the reason it
  needs a scale);
- *creep*: under a new load the cell keeps giving way, a fraction of the step over some minutes;
- *drift*: the zero wanders with temperature, a random walk of a few grams an hour;
- *noise*: Gaussian, per conversion, averaged over the conversions the firmware keeps.

The magnitudes of creep and drift are not verified against a datasheet (HARDWARE.md, "Not
verified"); they are plausible for a desk platform and small against any belonging.

The button: a press shorter than :data:`HOLD_S` is one BUTTON event when released; held
:data:`HOLD_S` or longer it is one BUTTON_HOLD event at that mark (BUTTON to a gateway of an
earlier revision). The world says when a press starts and how long it lasts; the event is
queued when it would happen on the node.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

#: Board constant of the desk node's firmware: counts per gram it divides by (a 4 x 50 kg platform
#: at 1 mV/V, 5 V excitation, gain 128: about 10.5 counts per gram).
NOMINAL_COUNTS_PER_GRAM = 10.0
FULL_SCALE = (-0x800000, 0x7FFFFF)
SETTLING_CONVERSIONS = 4
AVERAGED = 8  # conversions the firmware averages into one report
HOLD_S = 3.0  # a press held this long is a hold (staff: release a ghost seat)
#: LOAD_STEP (PROTOCOL.md 5.7, revision 4): a channel's reported mass, settled, this far from its reference.
STEP_EVENT_G = 100.0
SETTLE_S = 1.0  # the reported mass stays within SETTLE_BAND_G this long: settled
SETTLE_BAND_G = 20.0
BUTTON_GAP_S = 0.01  # after a press ends, its event; the next press starts after this


class LoadCellState:
    """Block 1's per-channel state codes (PROTOCOL.md, 5.3)."""

    OK = 0
    SETTLING = 1
    OVERLOAD = 2
    NO_DATA = 3
    NOT_FITTED = 4


@dataclass
class DeskPlatform:
    """One desk's platform, HX711 and what stands on it (see module docstring)."""

    seed: int
    rate: int = 10
    mass_g: float = 0.0  # what the world put on the desk
    dead_load_g: float = 0.0
    zero_counts: float = 0.0
    counts_per_gram: float = NOMINAL_COUNTS_PER_GRAM
    noise_counts: float = 25.0
    drift_g_per_sqrt_h: float = 3.0  # random walk of the zero
    creep_fraction: float = 0.0005  # of a load step, reached with time constant creep_tau_s
    creep_tau_s: float = 900.0
    absent: bool = False  # test control: DOUT never goes low (no part, or no power)
    powered_at: float = 0.0
    _rng: random.Random = field(init=False, repr=False)
    _drift_g: float = field(default=0.0, init=False)
    _drift_t: float | None = field(default=None, init=False)
    _creep_from: float = field(default=0.0, init=False)  # creep already reached at the last step
    _step_g: float = field(default=0.0, init=False)
    _step_t: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        rng = self._rng
        self.dead_load_g = rng.uniform(15_000.0, 25_000.0)
        self.zero_counts = rng.uniform(-40_000.0, 40_000.0)
        self.counts_per_gram = NOMINAL_COUNTS_PER_GRAM * rng.uniform(0.96, 1.04)

    # -- the scene ----------------------------------------------------------------------------
    def set_mass(self, grams: float, now: float) -> None:
        """What stands on the desk now; the cell starts creeping under the change."""
        if grams == self.mass_g:
            return
        self._creep_from = self._creep(now)
        self._step_g = grams - self.mass_g
        self._step_t = now
        self.mass_g = grams

    def _creep(self, now: float) -> float:
        """Grams of creep now: the last step's share on top of what earlier steps had reached."""
        elapsed = max(0.0, now - self._step_t)
        return self._creep_from * math.exp(-elapsed / self.creep_tau_s) + self._step_g * self.creep_fraction * (
            1.0 - math.exp(-elapsed / self.creep_tau_s))

    def _drift(self, now: float) -> float:
        if self._drift_t is None:
            self._drift_t = now
        hours = max(0.0, now - self._drift_t) / 3600.0
        if hours > 0:
            self._drift_g += self._rng.gauss(0.0, self.drift_g_per_sqrt_h * math.sqrt(hours))
            self._drift_t = now
        return self._drift_g

    # -- what the firmware reports --------------------------------------------------------------
    def healthy(self, now: float) -> bool:
        """The channel reports state OK (a part that answers, settled since its reset, in range)."""
        if self.absent or now < self.powered_at + SETTLING_CONVERSIONS / self.rate:
            return False
        low, high = FULL_SCALE
        return low < self._mean_counts(now) < high

    def level_g(self, now: float) -> float:
        """The reported mass once settled, without the conversion noise (grams at the nominal scale).

        What the firmware compares for LOAD_STEP: its reports within SETTLE_BAND_G of each other,
        the noise (about 1 g on a mean of 8) is far inside that. Reads the zero's drift as it stands
        and draws nothing, so tracking a step leaves the platform's own readings as they were.
        """
        return self._mean_counts(now) / NOMINAL_COUNTS_PER_GRAM

    def settles_after(self) -> float:
        """Seconds from a change of load to the firmware calling the new level settled: the mean of
        AVERAGED conversions reaches it, then holds within the band for SETTLE_S."""
        return AVERAGED / self.rate + SETTLE_S

    def _mean_counts(self, now: float) -> float:
        load = self.dead_load_g + self.mass_g + self._creep(now) + self._drift_g
        return self.zero_counts + load * self.counts_per_gram

    def report(self, now: float) -> tuple[int, int]:
        """(grams at the nominal scale, state) as block 1 carries them."""
        if self.absent:
            return 0, LoadCellState.NO_DATA
        if now < self.powered_at + SETTLING_CONVERSIONS / self.rate:
            return 0, LoadCellState.SETTLING
        load = self.dead_load_g + self.mass_g + self._creep(now) + self._drift(now)
        mean = self.zero_counts + load * self.counts_per_gram
        counts = mean + self._rng.gauss(0.0, self.noise_counts / math.sqrt(AVERAGED))
        low, high = FULL_SCALE
        if counts <= low or counts >= high:
            return 0, LoadCellState.OVERLOAD
        return round(counts / NOMINAL_COUNTS_PER_GRAM), LoadCellState.OK


@dataclass(order=True)
class PendingPress:
    """A press the world started: its event is due at ``due`` (release, or the hold mark)."""

    due: float
    channel: int = field(compare=False)
    held: bool = field(compare=False)
