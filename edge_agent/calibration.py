"""Calibration records: per-sensor corrections, their history, and the checks that guard them.

A reading leaves its driver *raw*; the daemon passes it through :meth:`CalibrationStore.apply`
(``corrected = gain * raw + offset``) before fusion. Technicians change coefficients through the
control socket; the daemon applies them live and publishes each change as an event.

Kinds of calibration, by method (each part kind declares which quantity takes which, and the
plausible reference range: :class:`drivers.kinds.Calibration`):

- ``lux`` (BH1750): *gain* from one reference lux-meter reading; a second point taken at a
  clearly different light level within :data:`TWO_POINT_WINDOW_S` makes it *two-point*
  (gain and offset through both points);
- ``temperature`` / ``humidity`` (SHT3x / SHT4x): *offset* (their gain is factory-trimmed);
- ``co2`` (SCD41): the correction lives in the sensor (forced recalibration, FRC); the store
  only records it, after :func:`check_frc` has passed;
- *tare-scale* (load cells): a reference of 0 on the empty platform is an *offset* (tare); a known
  mass sets the *scale* and keeps the tared zero (:meth:`CalibrationStore.calibrate_scale`).

Every change keeps a history entry: wall time and whether the clock was synchronised, the OS
user, old and new coefficients, the reference, and the raw value at the time. ``undo`` restores
the coefficients from before the most recent change that is not yet undone.

The file is a TinyDB document store written atomically (:class:`AtomicJSONStorage`): a power
cut or a SIGKILL mid-write leaves the previous or the new file, never half of one.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from tinydb import Query, TinyDB

from drivers.errors import EdgeError
from drivers.kinds import part_kinds
from edge_agent.storage import AtomicJSONStorage

#: Plausible reference values (what a technician's instrument can honestly show indoors), as each
#: part kind declares them for the quantities it lets a technician calibrate (drivers.kinds).
REFERENCE_RANGES: dict[str, tuple[float, float, str]] = {
    c.quantity: (c.reference[0], c.reference[1], c.unit) for k in part_kinds().values() for c in k.calibrations
}
#: SCD41 forced recalibration: reference range the procedure is meant for (SCD4x DS v1.3 §3.8.1).
FRC_RANGE = (400.0, 2000.0)
#: The SCD41 must have measured periodically this long (in stable air) before an FRC.
FRC_MIN_RUNNING_S = 180.0
#: A second light reference within this time (and at a different level) makes a two-point fit.
TWO_POINT_WINDOW_S = 3600.0
#: A gain outside this band means the meter and the sensor do not see the same light.
GAIN_LIMITS = (0.2, 5.0)
#: Largest offset a healthy part needs; more means a draught, a heat source, or the wrong sensor.
OFFSET_LIMITS = {"temperature": 10.0, "humidity": 25.0}
#: Two light points must differ at least this much (relative) for the fit to mean anything.
MIN_TWO_POINT_SPREAD = 0.25


class CalibrationError(EdgeError, ValueError):
    """A calibration that would make things worse; the message says why and what to do."""


class WallClock(Protocol):
    """Wall time and whether it is trustworthy (``edge_agent.clock.SystemClock`` fits)."""

    def time(self) -> float: ...

    @property
    def synced(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Correction:
    """``corrected = gain * raw + offset``."""

    gain: float = 1.0
    offset: float = 0.0

    def apply(self, raw: float) -> float:
        return self.gain * raw + self.offset

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


IDENTITY = Correction()


def check_reference(quantity: str, reference: float) -> None:
    """Refuse a reference outside the physical range for its quantity."""
    if quantity not in REFERENCE_RANGES:
        raise CalibrationError(f"cannot calibrate {quantity!r}; one of: {', '.join(REFERENCE_RANGES)}")
    low, high, unit = REFERENCE_RANGES[quantity]
    if not math.isfinite(reference) or not low <= reference <= high:
        raise CalibrationError(
            f"reference {reference:g} {unit} is outside the plausible {quantity} range {low:g}..{high:g} {unit}; "
            "check the instrument's reading and unit"
        )


def check_frc_reference(reference: float) -> None:
    """An FRC reference must be plausible CO2 and inside 400..2000 ppm."""
    check_reference("co2", reference)
    low, high = FRC_RANGE
    if not low <= reference <= high:
        raise CalibrationError(
            f"reference {reference:g} ppm is outside {low:g}..{high:g} ppm, the range forced recalibration is "
            "specified for; use outdoor air (~420 ppm) or a reference instrument in that range"
        )


def check_frc(reference: float, measuring_for_s: float | None) -> None:
    """SCD41 FRC preconditions: reference in 400..2000 ppm, periodic measurement for >= 3 minutes."""
    check_frc_reference(reference)
    if measuring_for_s is None or measuring_for_s < FRC_MIN_RUNNING_S:
        ran = "not running" if measuring_for_s is None else f"running for {measuring_for_s:.0f} s"
        raise CalibrationError(
            f"the SCD41 must measure periodically for {FRC_MIN_RUNNING_S:.0f} s in stable air before a forced "
            f"recalibration (it is {ran}); wait and retry"
        )


class CalibrationStore:
    """One TinyDB document per sensor: ``{"sensor", "coefficients": {q: {gain, offset}}, "points", "history"}``."""

    def __init__(self, path: str | os.PathLike[str], clock: WallClock | None = None) -> None:
        if clock is None:
            from edge_agent.clock import SystemClock

            clock = SystemClock()
        self.clock = clock
        self.db = TinyDB(path, storage=AtomicJSONStorage)
        self._cache: dict[str, dict[str, Correction]] = {}

    def close(self) -> None:
        self.db.close()

    # ---- reading ------------------------------------------------------------------------------

    def coefficients(self, sensor_id: str) -> dict[str, Correction]:
        """Current corrections per quantity (missing quantity = identity). Cached: apply() is hot."""
        if sensor_id not in self._cache:
            doc = self._doc(sensor_id)
            self._cache[sensor_id] = {q: Correction(**c) for q, c in doc.get("coefficients", {}).items()}
        return dict(self._cache[sensor_id])

    def apply(self, sensor_id: str, quantity: str, raw: float) -> float:
        """The corrected value of ``raw``."""
        return self.coefficients(sensor_id).get(quantity, IDENTITY).apply(raw)

    def history(self, sensor_id: str) -> list[dict[str, Any]]:
        """Every change to this sensor, oldest first."""
        return list(self._doc(sensor_id).get("history", []))

    # ---- changing -----------------------------------------------------------------------------

    def calibrate_gain(self, sensor_id: str, quantity: str, reference: float, raw: float, user: str) -> dict[str, Any]:
        """Single-point gain (offset 0): starts a new light session with this point."""
        check_reference(quantity, reference)
        gain = _gain(reference, raw)
        points = [[raw, reference]]
        return self._change(sensor_id, quantity, Correction(gain, 0.0), "gain", user, reference, raw, points=points)

    def add_point(self, sensor_id: str, quantity: str, reference: float, raw: float, user: str) -> dict[str, Any]:
        """Add a reference point: two-point fit with the session's previous point, else a fresh gain.

        The previous point counts if it was taken within TWO_POINT_WINDOW_S and at a clearly
        different level; a point at nearly the same level replaces it (a re-measured gain).
        """
        check_reference(quantity, reference)
        doc = self._doc(sensor_id)
        session = doc.get("points", {}).get(quantity)
        now = self.clock.time()
        if session and now - session["at"] <= TWO_POINT_WINDOW_S:
            (raw0, ref0) = session["points"][-1]
            spread = abs(raw - raw0) / max(abs(raw), abs(raw0), 1e-9)
            if spread >= MIN_TWO_POINT_SPREAD:
                gain = (reference - ref0) / (raw - raw0)
                if not GAIN_LIMITS[0] <= gain <= GAIN_LIMITS[1]:
                    raise CalibrationError(
                        f"two-point gain {gain:.3g} (from {raw0:g}->{ref0:g} and {raw:g}->{reference:g}) is outside "
                        f"{GAIN_LIMITS[0]:g}..{GAIN_LIMITS[1]:g}; keep the meter next to the sensor and retry"
                    )
                offset = reference - gain * raw
                fit = Correction(gain, offset)
                points = [[raw0, ref0], [raw, reference]]
                return self._change(sensor_id, quantity, fit, "two-point", user, reference, raw, points=points)
        return self.calibrate_gain(sensor_id, quantity, reference, raw, user)

    def calibrate_offset(
        self, sensor_id: str, quantity: str, reference: float, raw: float, user: str
    ) -> dict[str, Any]:
        """Offset so that this raw value reads as the reference (the gain is kept)."""
        check_reference(quantity, reference)
        old = self.coefficients(sensor_id).get(quantity, IDENTITY)
        offset = reference - old.gain * raw
        limit = OFFSET_LIMITS.get(quantity, math.inf)
        if abs(offset) > limit:
            raise CalibrationError(
                f"an offset of {offset:+.2f} is beyond ±{limit:g} for {quantity}; the sensor is likely near a heat "
                "source, in a draught, or faulty: check it before calibrating"
            )
        return self._change(sensor_id, quantity, Correction(old.gain, offset), "offset", user, reference, raw)

    def calibrate_scale(
        self, sensor_id: str, quantity: str, reference: float, raw: float, user: str
    ) -> dict[str, Any]:
        """Scale (gain) from a known reference, keeping the zero found by the last tare (a load cell's span).

        The tare left ``offset = -zero * gain``: the raw value that reads 0 is ``zero``. The new gain
        makes ``raw`` read ``reference`` and keeps that raw zero.
        """
        check_reference(quantity, reference)
        old = self.coefficients(sensor_id).get(quantity, IDENTITY)
        zero = -old.offset / old.gain
        span = raw - zero
        if not math.isfinite(span) or abs(span) < 1e-9 or reference / span <= 0:
            raise CalibrationError(
                f"{sensor_id}: the reading ({raw:g}) is not above the tared zero ({zero:g}); put the known "
                "mass on the platform, or tare it empty first (reference 0)"
            )
        gain = reference / span
        if not GAIN_LIMITS[0] <= gain <= GAIN_LIMITS[1]:
            # A mass not on the platform (or not alone on it) reads a few grams of noise: without this
            # bound that noise became the scale, and every later reading was hundreds of times too big.
            raise CalibrationError(
                f"{sensor_id}: {reference:g} g reads {span:g} g above the tared zero, a scale of {gain:.3g} "
                f"(outside {GAIN_LIMITS[0]:g}..{GAIN_LIMITS[1]:g}); put the known mass alone on the cleared "
                "platform and retry"
            )
        return self._change(sensor_id, quantity, Correction(gain, -zero * gain), "scale", user, reference, raw)

    def record(
        self,
        sensor_id: str,
        quantity: str,
        action: str,
        user: str,
        *,
        old: dict[str, Any],
        new: dict[str, Any],
        reference: float | None = None,
        raw: float | None = None,
    ) -> dict[str, Any]:
        """History only, for changes that live elsewhere (SCD41 FRC, thermal background, anchor position)."""
        entry = self._entry(quantity, action, user, old, new, reference, raw)
        doc = self._doc(sensor_id)
        doc.setdefault("history", []).append(entry)
        self._save(sensor_id, doc)
        return entry

    def undo(self, sensor_id: str, quantity: str, user: str) -> dict[str, Any]:
        """Go back to the state before the latest change to ``quantity`` not yet undone.

        Coefficients are restored here. For changes recorded with :meth:`record` (anchor position,
        thermal background) the returned entry's ``new`` is the earlier state for the daemon to
        re-apply. An SCD41 FRC lives in the sensor and cannot be undone.
        """
        doc = self._doc(sensor_id)
        history = doc.get("history", [])
        for entry in reversed(history):
            if entry["quantity"] == quantity and entry["action"] != "undo" and not entry.get("undone"):
                break
        else:
            raise CalibrationError(f"{sensor_id}: no {quantity} calibration to undo")
        coefficient_change = entry["action"] in ("gain", "two-point", "offset", "scale")
        if entry["action"] == "frc" or not (coefficient_change or entry["old"]):
            raise CalibrationError(
                f"{sensor_id}: the last {quantity} change ({entry['action']}) is held by the device with no earlier "
                "state on record; repeat that procedure against a known reference instead"
            )
        entry["undone"] = True
        if coefficient_change:
            current = self.coefficients(sensor_id).get(quantity, IDENTITY).as_dict()
            restored = Correction(**entry["old"]).as_dict()
            doc.setdefault("coefficients", {})[quantity] = restored
            doc.get("points", {}).pop(quantity, None)
        else:
            current, restored = entry["new"], entry["old"]
        undo_entry = self._entry(quantity, "undo", user, current, restored, None, None)
        history.append(undo_entry)
        self._save(sensor_id, doc)
        return undo_entry

    # ---- internals ----------------------------------------------------------------------------

    def _change(
        self,
        sensor_id: str,
        quantity: str,
        new: Correction,
        action: str,
        user: str,
        reference: float,
        raw: float,
        *,
        points: list[list[float]] | None = None,
    ) -> dict[str, Any]:
        doc = self._doc(sensor_id)
        old = self.coefficients(sensor_id).get(quantity, IDENTITY)
        entry = self._entry(quantity, action, user, old.as_dict(), new.as_dict(), reference, raw)
        doc.setdefault("coefficients", {})[quantity] = new.as_dict()
        if points is not None:
            doc.setdefault("points", {})[quantity] = {"at": entry["at"], "points": points}
        doc.setdefault("history", []).append(entry)
        self._save(sensor_id, doc)
        return entry

    def _entry(
        self,
        quantity: str,
        action: str,
        user: str,
        old: dict[str, Any],
        new: dict[str, Any],
        reference: float | None,
        raw: float | None,
    ) -> dict[str, Any]:
        return {
            "at": self.clock.time(),
            "synced": bool(self.clock.synced),
            "user": user,
            "quantity": quantity,
            "action": action,
            "old": old,
            "new": new,
            "reference": reference,
            "raw": raw,
            "undone": False,
        }

    def prune_history(self, before: float) -> int:
        """Delete history entries written before wall time ``before`` (they name technicians); the
        coefficients stay. Returns how many went."""
        gone = 0
        for found in self.db.all():
            doc = dict(found)
            history = doc.get("history", [])
            kept = [e for e in history if float(e.get("at", 0.0)) >= before]
            if len(kept) != len(history):
                gone += len(history) - len(kept)
                doc["history"] = kept
                self._save(str(doc["sensor"]), doc)
        return gone

    def oldest_entry(self) -> float | None:
        """Wall time of the oldest history entry, if any."""
        times = [float(e.get("at", 0.0)) for d in self.db.all() for e in d.get("history", [])]
        return min(times, default=None)

    def _doc(self, sensor_id: str) -> dict[str, Any]:
        found = self.db.get(Query().sensor == sensor_id)
        return dict(found) if found is not None else {"sensor": sensor_id}

    def _save(self, sensor_id: str, doc: dict[str, Any]) -> None:
        self.db.upsert(doc, Query().sensor == sensor_id)
        self._cache.pop(sensor_id, None)


def _gain(reference: float, raw: float) -> float:
    if raw <= 0.5 or reference <= 0.5:
        raise CalibrationError(
            f"a gain needs light: the sensor reads {raw:g} lx and the meter {reference:g} lx; switch the lights on"
        )
    gain = reference / raw
    if not GAIN_LIMITS[0] <= gain <= GAIN_LIMITS[1]:
        raise CalibrationError(
            f"gain {gain:.3g} (meter {reference:g} lx / sensor {raw:g} lx) is outside {GAIN_LIMITS[0]:g}.."
            f"{GAIN_LIMITS[1]:g}; hold the meter next to the sensor, facing the same way, and retry"
        )
    return gain
