"""People under one AMG8833 thermopile: adaptive background, warm blobs, blob -> seat.

Pure computation: frames (8 x 8, deg C) and monotonic times in, evidence out. See docs/sensing.md.

Why each rule exists:

- **Background per pixel** follows the empty room with a time constant (``bg_tau_s``, 5 min: a
  2 C/h drift lags by 0.17 C), so sun creeping over a desk or the room warming up is not a person.
  Pixels under an accepted person (dilated by one pixel, as a body's warm halo spills over) are *frozen*: a
  patron who sits still for an hour must not fade into the background. Frozen pixels still take
  the room-wide drift (the mean background change of the free pixels), so HVAC warming is followed
  everywhere. Sanity limit: a blob frozen for longer than ``hold_max_s`` (4 h, longer than any
  stay) is released to a slow update, so a warm object wrongly taken for a person fades eventually.
- **Settling**: for ``settle_s`` (15 min) after a pixel was last under a person or what they left,
  its background follows the room's drift and may fall, but does not rise on its own. The warmth
  left there is cooling (a coat, a chair seat); learnt while it cools, it would raise the
  background where the next patron sits, and hide their coat when they step out.
- **Colder than background** by ``cold_c`` (a person present at start-up was learnt, then left)
  is followed fast (``cold_tau_s``): the model heals itself instead of reporting a hole for ever.
- **Hysteresis**: a blob starts at ``on_c`` above background and keeps pixels down to ``hold_c``;
  a person already tracked stays while the peak is above ``keep_peak_c``.
- **Size from geometry**: a blob's desk-plane area (sum of its pixel footprints, which grow towards
  the edge of the view) must fit a seated person (``max_area_m2``); larger warm patches (sun on a
  table, a radiator) are rejected. A tracked person merged with warmth beside them (their own coat
  warming on the chair back) keeps their last frame's pixels rather than being rejected whole.
- **Contrast**: a person's head and torso are 2-8 C above a 20-24 C background; a laptop is only
  1-2 C warmer (below ``on_c``); a peak above ``max_peak_c`` is a hot object (kettle, lamp).
- **Cup rule (temperature over time)**: a one-pixel blob is only a *candidate*. It becomes a person
  after ``point_confirm_s`` if its smoothed contrast has not fallen; a cup cools (its contrast drops
  by ``cooling_fraction`` and ``cooling_min_c`` from its maximum) and is then marked an object and
  left to the background. Blobs of two or more pixels count at once.
- **Residue (what a person leaves behind)**: when a tracked person's blob loses more than half of
  its heat (summed contrast) from one frame to the next, or more than a third of it together with
  30 % of its peak, the person has stood up (a seated person's head holds its contrast within
  10 % from frame to frame; a warm laptop, coat and chair seat together can keep half a person's
  heat, but not their head's peak); whatever warm
  thing remains where they sat (a laptop left open on the desk, +1-4 C on its pixel) is no longer
  the person. It is judged like a cup, whatever its size: if it cools it is *residue* (belongings
  were left: the seat machine reads this as a break, not a departure); if it holds its contrast for
  ``residue_confirm_s`` it is the person after all (leaning back), but only if it is as warm as a
  person's head can be (``residue_person_c``): a coat or a laptop that cools slowly is never
  that warm on its pixel. Without this rule a laptop left on a desk would be taken for its owner
  for ten minutes. A residue is followed with the person's hysteresis (pixels down to ``hold_c``
  touching it) and the background is frozen under it, so a coat cooling from +3 C over a quarter
  of an hour is neither lost below ``on_c`` nor learnt into the background within minutes.
  Whether the residue means belongings is the seat machine's call (it must outlast the chair
  seat's own warmth, which follows every stand-up); the detector reports it while it lasts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from drivers.errors import SensingError, SensorImplausibleError
from edge_agent.config import Seat, Sensor
from edge_agent.sensing.geometry import GRID, PixelMap, SeatPoint, pixel_map

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

FRAME_MIN_C, FRAME_MAX_C = -20.0, 100.0  # AMG8833 measuring range (high-gain mode is 0..80 C)


@dataclass(frozen=True, slots=True)
class ThermalParams:
    """Detection and background parameters; the defaults suit a 2.6 m mount over desks."""

    on_c: float = 2.0
    hold_c: float = 1.0
    keep_peak_c: float = 1.5
    max_peak_c: float = 12.0
    max_area_m2: float = 1.0
    bg_tau_s: float = 300.0
    cold_c: float = 0.5
    cold_tau_s: float = 20.0
    slow_tau_s: float = 3 * 3600.0
    hold_max_s: float = 4 * 3600.0
    max_dt_s: float = 60.0
    point_confirm_s: float = 180.0
    point_ema_tau_s: float = 10.0
    cooling_fraction: float = 0.1
    cooling_min_c: float = 0.4
    seat_radius_m: float = 1.0
    collapse_fraction: float = 0.5
    head_gone_heat_fraction: float = 0.65
    head_gone_peak_fraction: float = 0.7
    residue_confirm_s: float = 150.0
    residue_person_c: float = 4.0
    settle_s: float = 900.0


@dataclass(frozen=True, slots=True)
class Blob:
    """One connected warm region, and what was decided about it."""

    pixels: tuple[tuple[int, int], ...]
    area_m2: float
    peak_c: float  # highest contrast above background
    x: float  # contrast-weighted centroid on the floor, metres
    y: float
    person: bool
    reason: str  # "person", "candidate", "cooling object", "residue", "too large", "too hot", "weak"
    seat: str | None = None
    heat_c: float = 0.0  # summed contrast over the blob's pixels


@dataclass(slots=True)
class _Residue:
    """A warm thing left where a person sat, followed until it cools (residue) or proves a person."""

    seat: str | None
    pixels: frozenset[tuple[int, int]]
    track: _PointTrack
    heat_c: float  # summed contrast in the latest frame (it cools)


@dataclass(frozen=True, slots=True)
class ThermalEvidence:
    """What one frame says: presence per covered seat, accepted people, and every blob seen."""

    t: float
    presence: dict[str, bool]
    people: int
    blobs: tuple[Blob, ...]
    # seats where a person just left something warm behind -> its summed contrast (C x pixels)
    residue: Mapping[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class _PointTrack:
    """A one-pixel candidate followed over time (the cup rule)."""

    first_t: float
    ema: float
    peak_ema: float
    last_t: float
    verdict: str = "candidate"  # candidate | person | cooling object


def check_frame(frame: npt.ArrayLike, sensor: str) -> FloatArray:
    """An (8, 8) array of finite temperatures in range, or SensorImplausibleError."""
    arr = np.asarray(frame, dtype=np.float64)
    if arr.shape != (GRID, GRID):
        raise SensorImplausibleError(f"{sensor}: frame shape {arr.shape}, expected (8, 8)", device=sensor)
    low, high = np.minimum.reduce(arr, None), np.maximum.reduce(arr, None)  # NaN and infinities fail too
    if not (low >= FRAME_MIN_C and high <= FRAME_MAX_C):
        raise SensorImplausibleError(f"{sensor}: frame values outside {FRAME_MIN_C}..{FRAME_MAX_C} C", device=sensor)
    return arr


Pixels = tuple[tuple[int, int], ...]


def _components(mask: BoolArray) -> tuple[Pixels, ...]:
    """8-connected components of a small boolean grid (at most 64 pixels: a plain flood fill).

    Components come in the row-major order of their first pixel, each sorted. The fill runs on a
    set of Python pairs: indexing the numpy grid pixel by pixel cost more than the whole frame's
    arithmetic. Each distinct grid's components are kept (up to :data:`_COMPONENTS_KEPT`): the
    warm pixels of a frame are mostly those of the frame before, the same people at the same seats.
    """
    key = (mask.shape, mask.tobytes())
    found = _COMPONENTS.get(key)
    if found is None:
        if len(_COMPONENTS) >= _COMPONENTS_KEPT:
            _COMPONENTS.clear()
        found = _COMPONENTS[key] = tuple(tuple(comp) for comp in _fill(mask))
    return found


def _fill(mask: BoolArray) -> list[list[tuple[int, int]]]:
    rows, cols = np.nonzero(mask)
    todo = list(zip(rows.tolist(), cols.tolist(), strict=True))  # row-major, as nonzero gives them
    left = set(todo)
    out: list[list[tuple[int, int]]] = []
    for start in todo:
        if start not in left:
            continue
        left.discard(start)
        stack = [start]
        comp: list[tuple[int, int]] = []
        while stack:
            r, c = pixel = stack.pop()
            comp.append(pixel)
            for near in ((r - 1, c - 1), (r - 1, c), (r - 1, c + 1), (r, c - 1), (r, c + 1),
                         (r + 1, c - 1), (r + 1, c), (r + 1, c + 1)):
                if near in left:
                    left.discard(near)
                    stack.append(near)
        out.append(sorted(comp))
    return out


_Index = tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]


def _index(pixels: Sequence[tuple[int, int]]) -> _Index:
    """Row and column index arrays of a pixel list, for fancy indexing of an 8 x 8 grid."""
    return np.array([r for r, _ in pixels], dtype=np.intp), np.array([c for _, c in pixels], dtype=np.intp)


@dataclass(frozen=True, slots=True)
class _Piece:
    """What the geometry says of one pixel set under one thermopile: its index arrays, its pixels'
    floor positions and its desk-plane area. Kept per detector (:meth:`ThermalSeatDetector._piece`):
    a seated person warms the same pixels frame after frame."""

    index: _Index
    x: FloatArray
    y: FloatArray
    area_m2: float


def _dilate(mask: BoolArray) -> BoolArray:
    """3 x 3 dilation without scipy: separable, one pixel up/down, then one pixel left/right.

    The result is read-only and may be shared: a frame's masks are mostly those of the frames
    before (the same people at the same seats), so each distinct mask is dilated once and kept
    (up to :data:`_DILATED_KEPT` of them), two dilations a frame of every thermopile.
    """
    return _dilated(mask)[0]


def _dilated(mask: BoolArray) -> tuple[BoolArray, frozenset[tuple[int, int]]]:
    """:func:`_dilate`'s result and the set of its pixels, kept together: whether a blob touches
    the last frame's people is a set test on the pixels it already holds as pairs."""
    key = (mask.shape, mask.tobytes())
    found = _DILATED.get(key)
    if found is not None:
        return found
    if not mask.any():
        out = np.zeros_like(mask)
    else:
        rows = mask.copy()
        rows[1:] |= mask[:-1]
        rows[:-1] |= mask[1:]
        out = rows.copy()
        out[:, 1:] |= rows[:, :-1]
        out[:, :-1] |= rows[:, 1:]
    out.flags.writeable = False
    rows_at, cols_at = np.nonzero(out)
    found = out, frozenset(zip(rows_at.tolist(), cols_at.tolist(), strict=True))
    if len(_DILATED) >= _DILATED_KEPT:
        _DILATED.clear()
    _DILATED[key] = found
    return found


_DILATED: dict[tuple[tuple[int, ...], bytes], tuple[BoolArray, frozenset[tuple[int, int]]]] = {}
_DILATED_KEPT = 4096
_COMPONENTS: dict[tuple[tuple[int, ...], bytes], tuple[Pixels, ...]] = {}
_COMPONENTS_KEPT = 4096
_PIECES_KEPT = 1024  # per thermopile: a few pixel sets per person and seat, and the noise's lone pixels


def _near(pixels: set[tuple[int, int]], other: Sequence[tuple[int, int]]) -> bool:
    """Whether two pixel sets touch (8-connected) or overlap."""
    return not _halo(other).isdisjoint(pixels)


def _halo(pixels: Sequence[tuple[int, int]]) -> frozenset[tuple[int, int]]:
    """The pixels and their eight neighbours: a pixel set touches ``pixels`` when it meets this.

    Kept for each pixel tuple asked (up to :data:`_HALOS_KEPT`): the people of a frame are mostly
    those of the frames before, at the same pixels."""
    key = tuple(pixels)
    halo = _HALOS.get(key)
    if halo is None:
        if len(_HALOS) >= _HALOS_KEPT:
            _HALOS.clear()
        halo = _HALOS[key] = frozenset().union(*[_NEIGHBOURHOOD.get(px) or _neighbourhood(*px) for px in key])
    return halo


_HALOS: dict[tuple[tuple[int, int], ...], frozenset[tuple[int, int]]] = {}
_HALOS_KEPT = 4096


def _neighbourhood(r: int, c: int) -> frozenset[tuple[int, int]]:
    return frozenset((r + dr, c + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1))


_NEIGHBOURHOOD = {(r, c): _neighbourhood(r, c) for r in range(GRID) for c in range(GRID)}


def _alpha(dt: float, tau: float) -> float:
    return 1.0 - math.exp(-dt / tau)


def assign_to_seats(
    blobs: Sequence[tuple[float, float]], seats: Sequence[SeatPoint], radius_m: float
) -> dict[int, str]:
    """Greedy one-to-one matching of blob centroids to seats by distance, within ``radius_m``.

    A person straddling two seats is one blob, so it takes exactly one seat (the closer); two
    blobs never share a seat either. Closest pairs are matched first.
    """
    pairs = sorted(
        (math.hypot(bx - s.x, by - s.y), i, s.id)
        for i, (bx, by) in enumerate(blobs)
        for s in seats
        if math.hypot(bx - s.x, by - s.y) <= radius_m
    )
    taken_blobs: set[int] = set()
    taken_seats: set[str] = set()
    out: dict[int, str] = {}
    for _, i, seat in pairs:
        if i in taken_blobs or seat in taken_seats:
            continue
        out[i] = seat
        taken_blobs.add(i)
        taken_seats.add(seat)
    return out


@dataclass
class ThermalSeatDetector:
    """Background, blobs and per-seat presence for one mounted AMG8833."""

    sensor_id: str
    pixels: PixelMap
    seats: tuple[SeatPoint, ...]
    params: ThermalParams = field(default_factory=ThermalParams)
    background: FloatArray | None = None
    last_frame: FloatArray | None = None
    last_t: float | None = None
    blobs: tuple[Blob, ...] = ()
    _person_mask: BoolArray = field(default_factory=lambda: np.zeros((GRID, GRID), dtype=bool))
    _frozen_since: FloatArray = field(default_factory=lambda: np.full((GRID, GRID), np.nan))
    _settling_until: FloatArray = field(default_factory=lambda: np.full((GRID, GRID), -np.inf))
    _points: dict[tuple[int, int], _PointTrack] = field(default_factory=dict)
    _residues: list[_Residue] = field(default_factory=list)
    _settle_end: float = -math.inf  # the latest of _settling_until: from then on no pixel settles
    # The previous frame's people with their halos (see _halo), made when a blob first asks.
    _people_halos: list[tuple[Blob, frozenset[tuple[int, int]]]] | None = None
    _pieces: dict[Pixels, _Piece] = field(default_factory=dict)  # see _piece
    _rates: tuple[float, ThermalParams | None, tuple[np.float64, np.float64]] = (math.nan, None, (np.float64(0),) * 2)
    # A frame with nothing warm skips the labelling (_nothing_warm); tests turn it off to compare.
    skip_empty: ClassVar[bool] = True

    @classmethod
    def for_sensor(
        cls, sensor: Sensor, seats: Sequence[Seat], params: ThermalParams | None = None
    ) -> ThermalSeatDetector:
        """Build from config: the sensor's mount and the seats it is configured to cover."""
        if sensor.mount is None:
            raise SensingError(f"{sensor.id}: a thermopile needs a mount to map pixels to seats", sensor=sensor.id)
        covered = [SeatPoint(s.id, s.x, s.y) for s in seats if s.id in set(sensor.seats)]
        return cls(sensor.id, pixel_map(sensor.mount), tuple(covered), params or ThermalParams())

    @property
    def people(self) -> int:
        return sum(1 for b in self.blobs if b.person)

    def update(self, frame: npt.ArrayLike, t: float) -> ThermalEvidence:
        """Process one frame taken at monotonic time ``t``; returns presence per covered seat."""
        arr = check_frame(frame, self.sensor_id)
        if self.background is None or self.last_t is None:
            self.background = arr.copy()
            self.last_frame, self.last_t = arr, t
            self.blobs = ()
            return self._evidence(t)
        dt = min(max(t - self.last_t, 0.0), self.params.max_dt_s)
        diff = arr - self.background
        grow = diff >= self.params.hold_c
        if self.skip_empty and not grow.any():  # nothing warm in view: no blob to label or size
            blobs, person_mask, frozen = self._nothing_warm()
        else:
            blobs, person_mask, frozen = self._detect(diff, grow, t, dt)
        self._update_background(arr, diff, frozen, t, dt)
        self._person_mask = person_mask
        self.blobs = blobs
        self.last_frame, self.last_t = arr, t
        return self._evidence(t)

    def _evidence(self, t: float) -> ThermalEvidence:
        presence = {s.id: False for s in self.seats}
        for b in self.blobs:
            if b.person and b.seat is not None:
                presence[b.seat] = True
        residue: dict[str, float] = {}
        for b in self.blobs:
            if (b.seat is not None and not b.person and b.reason in ("residue", "candidate")
                    and not presence.get(b.seat, False)):
                residue[b.seat] = residue.get(b.seat, 0.0) + b.heat_c
        return ThermalEvidence(t=t, presence=presence, people=self.people, blobs=self.blobs, residue=residue)

    def _nothing_warm(self) -> tuple[tuple[Blob, ...], BoolArray, BoolArray]:
        """What :meth:`_detect` finds in a frame with no pixel ``hold_c`` above the background.

        No pixel can belong to a blob then, so there is none: no person, candidate or residue,
        every cup-rule track and residue ends, and nothing freezes the background. The same
        state as the full path leaves (``tests/sensing/test_thermal_fast_paths.py`` runs both over
        random frames); it saves the labelling on most frames of an empty desk area.
        """
        self._people_halos = None
        self._residues = []
        self._points.clear()
        return (), np.zeros((GRID, GRID), dtype=bool), np.zeros((GRID, GRID), dtype=bool)

    def _piece(self, pixels: Pixels) -> _Piece:
        """The index arrays, floor positions and area of a pixel set, worked out once and kept."""
        piece = self._pieces.get(pixels)
        if piece is None:
            idx = _index(pixels)
            if len(self._pieces) >= _PIECES_KEPT:
                self._pieces.clear()
            piece = self._pieces[pixels] = _Piece(idx, self.pixels.x[idx], self.pixels.y[idx],
                                               float(self.pixels.area_m2[idx].sum()))
        return piece

    def _detect(
        self, diff: FloatArray, grow: BoolArray, t: float, dt: float
    ) -> tuple[tuple[Blob, ...], BoolArray, BoolArray]:
        """The frame's blobs (``grow``: its pixels ``hold_c`` or more above the background), the
        mask of its people, and the mask the background is frozen under (the people dilated, the
        candidates and the residues followed)."""
        p = self.params
        near_person = _dilated(self._person_mask)[1]
        left = [residue.pixels for residue in self._residues]
        self._people_halos = None
        labelled: list[tuple[Pixels, _Index, float, float, float, float, float, str]] = []
        residue_seat: dict[int, str | None] = {}
        live_residues: list[_Residue] = []
        # Each piece with what its geometry gives, and the contrast of a whole component (known
        # from its seed test).
        pieces: list[tuple[Pixels, _Piece, FloatArray | None]] = []
        for comp in _components(grow):
            piece = self._piece(comp)
            contrast = None
            # A blob grows from a seed: a pixel on_c above the background, or one hold_c above it
            # (every pixel of comp is) where a person was last frame or a person left something.
            if near_person.isdisjoint(comp) and all(px.isdisjoint(comp) for px in left):
                contrast = diff[piece.index]
                if not np.maximum.reduce(contrast) >= p.on_c:  # contrast.max(), without its wrapper
                    continue
            if piece.area_m2 > p.max_area_m2:
                pieces += [(part, self._piece(part), None) for part in self._people_within(comp)]
            else:
                pieces.append((comp, piece, contrast))
        for comp, piece, known in pieces:
            idx, area = piece.index, piece.area_m2
            contrast = diff[idx] if known is None else known
            w = np.maximum(contrast, 1e-6)  # np.clip(contrast, 1e-6, None), without its wrapper
            peak = float(np.maximum.reduce(contrast))
            w_sum = np.add.reduce(w)  # w.sum() (the same reduction), as below
            cx = float(np.add.reduce(piece.x * w) / w_sum)
            cy = float(np.add.reduce(piece.y * w) / w_sum)
            continuing = not near_person.isdisjoint(comp)  # was_person[idx].any()
            heat = float(np.add.reduce(np.maximum(contrast, 0.0)))
            residue = self._residue_for(comp, heat, continuing, peak, t)
            if residue is not None:
                reason = self._residue_verdict(residue, peak, t, dt)
                if reason != "person":
                    live_residues.append(residue)
                    residue_seat[len(labelled)] = residue.seat
            else:
                reason = self._classify(comp, area, peak, continuing, t, dt)
            labelled.append((comp, idx, area, peak, cx, cy, heat, reason))
        self._residues = live_residues
        self._forget_points({c[0][0] for c in labelled if len(c[0]) == 1})
        accepted = [i for i, c in enumerate(labelled) if c[7] == "person"]
        seat_of = assign_to_seats([(labelled[i][4], labelled[i][5]) for i in accepted], self.seats, p.seat_radius_m)
        blobs: list[Blob] = []
        person_mask = np.zeros((GRID, GRID), dtype=bool)
        hold_mask = np.zeros((GRID, GRID), dtype=bool)
        for i, (comp, idx, area, peak, cx, cy, heat, reason) in enumerate(labelled):
            seat = seat_of.get(accepted.index(i)) if i in accepted else residue_seat.get(i)
            blobs.append(Blob(comp, area, peak, cx, cy, reason == "person", reason, seat, heat))
            followed = i in residue_seat  # a live residue (candidate or cooling): not background
            if reason == "person":
                person_mask[idx] = True
            elif reason == "candidate" or followed:
                hold_mask[idx] = True
        return tuple(blobs), person_mask, _dilate(person_mask) | hold_mask

    def _people_within(self, comp: Pixels) -> list[Pixels]:
        """The pixels of a too-large warm patch that were a person's in the previous frame, one
        list per person.

        A tracked person does not grow into a sun patch in one frame: warmth merging with them
        (their coat warming on the chair back, noise on a wide pixel at the edge of the view)
        must not make them vanish, nor let the background learn them. Two neighbours joined by
        such warmth are two people, each judged on their own size: taken together they are
        larger than one person can be, and both vanished at once until the warmth between them
        faded (with their seats shown away meanwhile). A patch with no person in it is left whole
        (and rejected).
        """
        inside = set(comp)
        people = [[px for px in b.pixels if px in inside] for b in self.blobs if b.person]
        return [tuple(sorted(x)) for x in people if x] or [comp]

    def _residue_for(
        self, comp: Pixels, heat: float, continuing: bool, peak: float, t: float
    ) -> _Residue | None:
        """The residue track this blob belongs to: an existing one, or a new one if a person just left."""
        p = self.params
        pixels = set(comp)
        for residue in self._residues:
            if pixels & residue.pixels:
                # Someone sat down at their things again (or at the next seat, touching them):
                # judged afresh. Against the residue as it is now, not as it was when it was warmest,
                # or a patron back at a desk of a warm laptop, coat and chair would pass for them.
                if heat >= 1.5 * residue.heat_c + p.on_c:
                    return None
                residue.pixels = frozenset(pixels | residue.pixels)
                residue.heat_c = heat
                return residue
        if not continuing or not p.hold_c <= peak <= p.max_peak_c:
            return None
        if self._people_halos is None:
            self._people_halos = [(b, _halo(b.pixels)) for b in self.blobs if b.person]
        before = [b for b, halo in self._people_halos if not halo.isdisjoint(pixels)]  # touching (_near)
        if not before:
            return None
        was_heat, was_peak = sum(b.heat_c for b in before), max(b.peak_c for b in before)
        head_gone = heat < p.head_gone_heat_fraction * was_heat and peak < p.head_gone_peak_fraction * was_peak
        if heat >= p.collapse_fraction * was_heat and not head_gone:
            return None
        seat = before[0].seat
        track = _PointTrack(first_t=t, ema=peak, peak_ema=peak, last_t=t)
        return _Residue(seat, frozenset(pixels), track, heat)

    def _residue_verdict(self, residue: _Residue, peak: float, t: float, dt: float) -> str:
        """The cup rule for what a person left behind: cooling -> residue; steady -> the person again."""
        p = self.params
        track = residue.track
        if t > track.last_t:
            track.ema += _alpha(dt, p.point_ema_tau_s) * (peak - track.ema)
            track.peak_ema = max(track.peak_ema, track.ema)
            track.last_t = t
        if track.verdict == "candidate":
            drop = track.peak_ema - track.ema
            if drop >= p.cooling_min_c and drop >= p.cooling_fraction * track.peak_ema:
                track.verdict = "residue"
            elif t - track.first_t >= p.residue_confirm_s and track.ema >= p.residue_person_c:
                track.verdict = "person"
        return track.verdict

    def _classify(
        self, comp: Pixels, area: float, peak: float, continuing: bool, t: float, dt: float
    ) -> str:
        p = self.params
        if peak > p.max_peak_c:
            return "too hot"
        if area > p.max_area_m2:
            return "too large"
        if peak < (p.keep_peak_c if continuing else p.on_c):
            return "weak"
        if len(comp) > 1 or continuing:
            return "person"
        return self._point_verdict(comp[0], peak, t, dt)

    def _point_verdict(self, pixel: tuple[int, int], peak: float, t: float, dt: float) -> str:
        """The cup rule: a lone warm pixel must hold its contrast for ``point_confirm_s``."""
        p = self.params
        track = self._points.get(pixel)
        if track is None:
            self._points[pixel] = _PointTrack(first_t=t, ema=peak, peak_ema=peak, last_t=t)
            return "candidate"
        track.ema += _alpha(dt, p.point_ema_tau_s) * (peak - track.ema)
        track.peak_ema = max(track.peak_ema, track.ema)
        track.last_t = t
        if track.verdict != "candidate":
            return track.verdict
        drop = track.peak_ema - track.ema
        if drop >= p.cooling_min_c and drop >= p.cooling_fraction * track.peak_ema:
            track.verdict = "cooling object"
        elif t - track.first_t >= p.point_confirm_s:
            track.verdict = "person"
        return track.verdict

    def _forget_points(self, live: set[tuple[int, int]]) -> None:
        """Drop cup-rule tracks whose pixel no longer holds a lone warm blob."""
        for pixel in [px for px in self._points if px not in live]:
            del self._points[pixel]

    def _rate(self, dt: float) -> tuple[np.float64, np.float64]:
        """``1 - exp(-dt / tau)`` for the two time constants a pixel follows (``cold_tau_s``,
        ``bg_tau_s``), kept for the last ``dt`` and parameters (frames come at a steady interval).

        Worked out elementwise on a two-element array, by the same numpy operations as on the
        frame's 64 pixels; a pixel's rate is then picked from it, not computed again.
        """
        last_dt, params, rates = self._rates
        p = self.params
        if dt != last_dt or p is not params:
            cold, warm = 1.0 - np.exp(-dt / np.array([p.cold_tau_s, p.bg_tau_s]))
            rates = cold, warm
            self._rates = dt, p, rates
        return rates

    def _update_background(self, arr: FloatArray, diff: FloatArray, frozen: BoolArray, t: float, dt: float) -> None:
        p = self.params
        assert self.background is not None
        bg = self.background
        cold, warm = self._rate(dt)
        step = np.where(diff < -p.cold_c, cold, warm) * diff  # a pixel colder than it was follows fast
        if t >= self._settle_end and not frozen.any():
            # Nobody in view, nor anything they left still settling (most frames of most sensors):
            # every pixel is free, so the whole background takes its step, and no drift is needed.
            self._frozen_since.fill(np.nan)
            bg += step
            return
        unfrozen = ~frozen
        since = self._frozen_since
        since[frozen & np.isnan(since)] = t
        since[unfrozen] = np.nan
        # A pixel not frozen has no onset (NaN), and NaN compares false: never held long.
        held_long = t - since >= p.hold_max_s
        self._settling_until[frozen] = t + p.settle_s
        settling = unfrozen & (t < self._settling_until)
        self._settle_end = float(self._settling_until.max())
        free = unfrozen & ~settling
        was = bg[free]
        now = was + step[free]
        bg[free] = now
        drift = float(np.add.reduce(now - was) / now.size) if now.size else 0.0  # (now - was).mean()
        bg[frozen] += drift  # the room warms or cools under a seated person too
        # Where a person or what they left just was, the warmth still there is cooling: the
        # background follows it down and the room's drift, never it up, or it would learn a
        # coat's warmth and hide the next patron's coat in it.
        bg[settling] += np.minimum(step[settling], 0.0) + drift
        if held_long.any():  # rarely: a warm thing frozen for hours
            slow = _alpha(dt, p.slow_tau_s)
            bg[held_long] += slow * (arr[held_long] - bg[held_long])

    def capture_background(self) -> None:
        """Take the last frame as the empty-room background (refused while people are in view)."""
        if self.last_frame is None:
            raise SensingError(f"{self.sensor_id}: no frame received yet; wait for the sensor", sensor=self.sensor_id)
        self.set_background(self.last_frame)

    def set_background(self, frame: npt.ArrayLike) -> None:
        """Install a known empty-room background (refused while people are in view)."""
        arr = check_frame(frame, self.sensor_id)
        busy = [b for b in self.blobs if b.person or b.reason == "candidate"]
        if busy:
            raise SensingError(
                f"{self.sensor_id}: {len(busy)} person(s) or warm spot(s) in view; capture the background when "
                "the area is empty",
                sensor=self.sensor_id,
            )
        self.background = arr.copy()
        self._frozen_since[:] = np.nan
        self._settling_until[:] = -np.inf
        self._settle_end = -math.inf
        self._person_mask[:] = False
        self._points.clear()
        self._residues.clear()
