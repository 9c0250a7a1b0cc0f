"""The detector's shortcuts give what the plain computation gives, bit for bit, over random scenes.

The shortcuts (edge_agent.sensing.thermal): a frame with nothing ``hold_c`` above the background
skips the labelling (``_nothing_warm``); components, halos, dilations and each pixel set's
geometry are kept between frames; whether a blob is seeded or continues a person is a set test;
a pixel's background rate is picked from the two time constants' rates; the free pixels' step and
drift are taken from one selection. ``_Reference`` below is the detector as it was computed
before them (index arrays and boolean masks every frame), kept here as the yardstick.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest

from edge_agent.config import SiteConfig
from edge_agent.sensing.thermal import (
    GRID,
    Blob,
    BoolArray,
    FloatArray,
    ThermalEvidence,
    ThermalSeatDetector,
    _alpha,
    _components,
    _dilate,
    _fill,
    _index,
    _Residue,
    assign_to_seats,
)

SENSOR = "thermal-z1-quiet-1"


class _Full(ThermalSeatDetector):
    """The detector without the empty-frame shortcut."""

    skip_empty = False


class _Reference(ThermalSeatDetector):
    """The labelling and background update as computed before the shortcuts."""

    skip_empty = False

    def _detect(
        self, diff: FloatArray, grow: BoolArray, t: float, dt: float
    ) -> tuple[tuple[Blob, ...], BoolArray, BoolArray]:
        p = self.params
        was_person = _dilate(self._person_mask)
        grow = diff >= p.hold_c
        seeds = (diff >= p.on_c) | (grow & was_person)
        for left_behind in self._residues:
            for r, c in left_behind.pixels:
                seeds[r, c] |= bool(grow[r, c])
        self._people_halos = None
        area_m2 = self.pixels.area_m2
        labelled = []
        residue_seat: dict[int, str | None] = {}
        live_residues: list[_Residue] = []
        pieces = []
        for comp in [list(c) for c in _fill(grow)]:
            idx = _index(comp)
            if not seeds[idx].any():
                continue
            area = float(area_m2[idx].sum())
            if area > p.max_area_m2:
                pieces += [(list(piece), None, 0.0) for piece in self._people_within(tuple(comp))]
            else:
                pieces.append((comp, idx, area))
        for comp, known_idx, area in pieces:
            if known_idx is None:
                idx = _index(comp)
                area = float(area_m2[idx].sum())
            else:
                idx = known_idx
            contrast = diff[idx]
            w = np.clip(contrast, 1e-6, None)
            peak = float(contrast.max())
            cx = float((self.pixels.x[idx] * w).sum() / w.sum())
            cy = float((self.pixels.y[idx] * w).sum() / w.sum())
            continuing = bool(was_person[idx].any())
            heat = float(np.clip(contrast, 0.0, None).sum())
            residue = self._residue_for(tuple(comp), heat, continuing, peak, t)
            if residue is not None:
                reason = self._residue_verdict(residue, peak, t, dt)
                if reason != "person":
                    live_residues.append(residue)
                    residue_seat[len(labelled)] = residue.seat
            else:
                reason = self._classify(tuple(comp), area, peak, continuing, t, dt)
            labelled.append((comp, idx, area, peak, cx, cy, heat, reason))
        self._residues = live_residues
        self._forget_points({c[0][0] for c in labelled if len(c[0]) == 1})
        accepted = [i for i, c in enumerate(labelled) if c[7] == "person"]
        seat_of = assign_to_seats([(labelled[i][4], labelled[i][5]) for i in accepted], self.seats, p.seat_radius_m)
        blobs = []
        person_mask = np.zeros((GRID, GRID), dtype=bool)
        hold_mask = np.zeros((GRID, GRID), dtype=bool)
        for i, (comp, idx, area, peak, cx, cy, heat, reason) in enumerate(labelled):
            seat = seat_of.get(accepted.index(i)) if i in accepted else residue_seat.get(i)
            blobs.append(Blob(tuple(comp), area, peak, cx, cy, reason == "person", reason, seat, heat))
            if reason == "person":
                person_mask[idx] = True
            elif reason == "candidate" or i in residue_seat:
                hold_mask[idx] = True
        return tuple(blobs), person_mask, person_mask | _dilate(person_mask) | hold_mask

    def _update_background(self, arr: FloatArray, diff: FloatArray, frozen: BoolArray, t: float, dt: float) -> None:
        p = self.params
        assert self.background is not None
        bg = self.background
        if t >= self._settle_end and not frozen.any():
            self._frozen_since.fill(np.nan)
            tau = np.where(diff < -p.cold_c, p.cold_tau_s, p.bg_tau_s)
            bg += (1.0 - np.exp(-dt / tau)) * diff
            return
        unfrozen = ~frozen
        newly = frozen & np.isnan(self._frozen_since)
        self._frozen_since[newly] = t
        self._frozen_since[unfrozen] = np.nan
        held_long = frozen & (t - np.nan_to_num(self._frozen_since, nan=t) >= p.hold_max_s)
        self._settling_until[frozen] = t + p.settle_s
        settling = unfrozen & (t < self._settling_until)
        self._settle_end = float(self._settling_until.max())
        free = unfrozen & ~settling
        tau = np.where(diff < -p.cold_c, p.cold_tau_s, p.bg_tau_s)
        step = (1.0 - np.exp(-dt / tau)) * diff
        before = bg.copy()
        bg[free] += step[free]
        drift = float((bg[free] - before[free]).mean()) if free.any() else 0.0
        bg[frozen] += drift
        bg[settling] += np.minimum(step[settling], 0.0) + drift
        if held_long.any():
            slow = _alpha(dt, p.slow_tau_s)
            bg[held_long] += slow * (arr[held_long] - bg[held_long])


def _scenes(rng: np.random.Generator, frames: int) -> Iterator[tuple[FloatArray, float]]:
    """A desk area's frames: people (blocks of 2-9 pixels) sitting down and leaving, lone warm
    pixels (cups, heads at the edge of the view) that cool or hold, what a person leaves where
    they sat, sun patches too large for a person, and runs of frames with nothing warm at all;
    frames 0 to 70 s apart (also 0 s, and the 60 s the detector's step is capped at)."""
    warm: list[list[float]] = []  # row, col, height, width, contrast, cooling factor per frame
    t = 0.0
    for _ in range(frames):
        roll = rng.random()
        if roll < 0.08:
            size = rng.choice([1, 1, 2, 3], p=[0.3, 0.2, 0.3, 0.2])
            warm.append([rng.integers(0, 8), rng.integers(0, 8), size, rng.choice([1, size]),
                         rng.uniform(0.5, 7.0), rng.choice([1.0, 0.97, 0.8])])
        elif roll < 0.1:
            warm.append([rng.integers(0, 4), rng.integers(0, 4), 5, 5, rng.uniform(1.5, 4.0), 1.0])
        elif roll < 0.16 and warm:
            warm.pop(int(rng.integers(0, len(warm))))
        elif roll < 0.2:
            warm.clear()
        elif roll < 0.26 and warm:  # someone stands up and leaves a laptop or a coat where they sat
            thing = warm[int(rng.integers(0, len(warm)))]
            thing[2:] = [1, 1, rng.uniform(1.2, 3.0), rng.choice([1.0, 0.99, 0.95])]
        frame = 22.0 + rng.normal(0.0, 0.1, (GRID, GRID))
        for thing in warm:
            r, c, h, w = (int(v) for v in thing[:4])
            frame[r:r + h, c:c + w] += thing[4]
            thing[4] *= thing[5]
        yield np.round(frame * 4.0) / 4.0, t
        t += float(rng.choice([2.0, 60.0, 0.0, rng.uniform(0.0, 70.0)], p=[0.5, 0.2, 0.05, 0.25]))


def _same(a: ThermalSeatDetector, b: ThermalSeatDetector, ea: ThermalEvidence, eb: ThermalEvidence) -> None:
    assert ea == eb
    assert a.blobs == b.blobs
    assert a.background is not None and b.background is not None
    assert a.background.tobytes() == b.background.tobytes()  # bit for bit
    assert np.array_equal(a._frozen_since, b._frozen_since, equal_nan=True)
    assert np.array_equal(a._settling_until, b._settling_until)
    assert np.array_equal(a._person_mask, b._person_mask)
    assert a._settle_end == b._settle_end
    assert a._points == b._points
    assert a._residues == b._residues


@pytest.mark.parametrize("seed", range(12))
def test_shortcuts_give_the_plain_detectors_results(floor_config: SiteConfig, seed: int) -> None:
    sensor = next(s for s in floor_config.sensors if s.id == SENSOR)
    fast = ThermalSeatDetector.for_sensor(sensor, floor_config.seats)
    full = _Full.for_sensor(sensor, floor_config.seats)
    plain = _Reference.for_sensor(sensor, floor_config.seats)
    seen = {"empty": 0, "empty ending a residue or a cup": 0, "empty while settling": 0, "people": 0,
            "residues": 0, "too large": 0}
    rng = np.random.default_rng(seed)
    for frame, t in _scenes(rng, 600):
        if fast.background is not None and not (frame - fast.background >= fast.params.hold_c).any():
            seen["empty"] += 1
            seen["empty ending a residue or a cup"] += bool(fast._residues or fast._points)
            seen["empty while settling"] += t < fast._settle_end
        ev = fast.update(frame, t)
        _same(fast, full, ev, full.update(frame, t))
        _same(fast, plain, ev, plain.update(frame, t))
        seen["people"] += ev.people > 0
        seen["residues"] += bool(fast._residues)
        seen["too large"] += any(b.reason == "too large" for b in ev.blobs)
    assert all(seen.values()), seen  # every path was taken


def test_a_frame_with_nothing_warm_takes_the_shortcut(floor_config: SiteConfig) -> None:
    sensor = next(s for s in floor_config.sensors if s.id == SENSOR)
    det = ThermalSeatDetector.for_sensor(sensor, floor_config.seats)
    rng = np.random.default_rng(1)
    calls: list[str] = []
    det._detect = lambda *a: calls.append("detect") or ThermalSeatDetector._detect(det, *a)  # type: ignore[method-assign]
    det.update(22.0 + rng.normal(0.0, 0.1, (GRID, GRID)), 0.0)
    det.update(22.0 + rng.normal(0.0, 0.1, (GRID, GRID)), 2.0)
    assert calls == []
    frame = 22.0 + rng.normal(0.0, 0.1, (GRID, GRID))
    frame[3:5, 3:5] += 4.0
    det.update(frame, 4.0)
    assert calls == ["detect"]


def test_kept_components_are_the_flood_fills() -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        mask = rng.random((GRID, GRID)) < rng.uniform(0.05, 0.6)
        fresh = tuple(tuple(c) for c in _fill(mask))
        assert _components(mask) == fresh
        assert _components(mask.copy()) == fresh  # the kept answer


def test_a_pixels_rate_is_the_per_pixel_formula_bit_for_bit(floor_config: SiteConfig) -> None:
    sensor = next(s for s in floor_config.sensors if s.id == SENSOR)
    det = ThermalSeatDetector.for_sensor(sensor, floor_config.seats)
    p = det.params
    rng = np.random.default_rng(3)
    for dt in [0.0, 2.0, 60.0, 1e-9, 59.996465, *rng.uniform(0.0, 60.0, 200), *(2.0 + rng.normal(0, 0.01, 100))]:
        diff = rng.normal(0.0, 1.5, (GRID, GRID))
        cold, warm = det._rate(float(dt))
        tau = np.where(diff < -p.cold_c, p.cold_tau_s, p.bg_tau_s)
        assert (np.where(diff < -p.cold_c, cold, warm) * diff).tobytes() == ((1.0 - np.exp(-dt / tau)) * diff).tobytes()
    assert not math.isnan(det._rates[0])
    det.params = replace(p, cold_tau_s=5.0, bg_tau_s=900.0)  # new parameters: rates worked out again
    cold, warm = det._rate(2.0)
    assert (cold, warm) == tuple(1.0 - np.exp(-2.0 / np.array([5.0, 900.0])))
