"""Seat-demand forecasts at the edge: load and check an ONNX model, forecast every zone in one call.

Gateway code: imports numpy and onnxruntime only (onnxruntime lazily, when a model is loaded).

- :class:`Forecaster` wraps one checked model. Loading fails with :class:`ModelError` (one clear
  line) if the bytes are not a model, or the model's input, output, feature version, horizons or
  quantiles are not what this code computes, or a smoke inference does not give finite numbers.
- :class:`BaselineForecaster` serves when there is no usable model: same time last week, else
  same time yesterday, else the current count.
- :class:`ModelSlot` holds the active forecaster and replaces it atomically with
  :meth:`ModelSlot.try_swap`; a model that fails any check never replaces a working one.

Forecasts are for the grid time at or before ``now`` (15-minute grid) plus each horizon, as
``{zone: {horizon_min: (p10, p50, p90)}}`` in people.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from drivers.errors import ModelError
from models import DEFAULT_MODEL_PATH
from models.calendar import LibraryCalendar
from models.features import DAY_STEPS, FEATURE_VERSIONS, WEEK_STEPS, feature_names, feature_rows
from models.history import STEP_MIN, ZoneHistory

INPUT_NAME = "features"
OUTPUT_NAME = "forecast"
QUANTILES = (0.1, 0.5, 0.9)
log = logging.getLogger("models.inference")
Forecast = dict[str, dict[int, tuple[float, float, float]]]


class DemandForecaster(Protocol):
    """What the daemon calls, whether a model or the baseline is serving."""

    horizons: tuple[int, ...]

    def predict(
        self, histories: Mapping[str, ZoneHistory], now: datetime, calendar: LibraryCalendar | None = None
    ) -> Forecast: ...


@dataclass(frozen=True)
class ModelInfo:
    """What a model's metadata says, after checking it against this code."""

    sha256: str
    horizons: tuple[int, ...]
    zone_scale: dict[str, float]
    metadata: dict[str, str] = field(repr=False)

    @property
    def feature_version(self) -> str:
        """The feature set the model reads (checked on load: one of ``FEATURE_VERSIONS``)."""
        return self.metadata["feature_version"]

    @property
    def feature_count(self) -> int:
        return len(feature_names(self.feature_version))


def _scale_of(zone: str, history: ZoneHistory, known: Mapping[str, float]) -> float:
    """Capacity given by the daemon, else the model's scale for the zone, else the largest count kept."""
    if history.capacity:
        return float(history.capacity)
    if zone in known:
        return known[zone]
    return max([1.0, *(v for _, v in history.observations())])


def _check_metadata(meta: Mapping[str, str], source: str) -> tuple[tuple[int, ...], dict[str, float]]:
    version = meta.get("feature_version")
    if version not in FEATURE_VERSIONS:
        raise ModelError(f"{source}: feature version {version!r}, this gateway computes "
                         f"{' or '.join(repr(v) for v in FEATURE_VERSIONS)}")
    width = len(feature_names(version))
    if meta.get("feature_count") != str(width):
        raise ModelError(f"{source}: feature_count {meta.get('feature_count')!r}, expected {width} for {version}")
    if meta.get("step_min", str(STEP_MIN)) != str(STEP_MIN):
        raise ModelError(f"{source}: grid step {meta.get('step_min')!r} min, expected {STEP_MIN}")
    try:
        horizons = tuple(int(h) for h in meta.get("horizons_min", "").split(","))
        quantiles = tuple(float(q) for q in meta.get("quantiles", "").split(","))
        scales = {str(k): float(v) for k, v in json.loads(meta.get("zone_scale", "{}")).items()}
    except (ValueError, AttributeError, TypeError):
        raise ModelError(f"{source}: unreadable horizons_min, quantiles or zone_scale metadata") from None
    if not horizons or len(set(horizons)) != len(horizons) or any(h <= 0 or h % STEP_MIN for h in horizons):
        shown = meta.get("horizons_min")
        raise ModelError(f"{source}: horizons_min {shown!r} are not distinct multiples of {STEP_MIN}")
    if quantiles != QUANTILES:
        raise ModelError(f"{source}: quantiles {quantiles}, expected {QUANTILES}")
    if any(not (s > 0 and math.isfinite(s)) for s in scales.values()):
        raise ModelError(f"{source}: zone_scale values must be positive numbers")
    return horizons, scales


class Forecaster:
    """One loaded and checked model. ``predict`` is thread-safe (onnxruntime sessions are)."""

    def __init__(self, session: Any, info: ModelInfo) -> None:
        self._session = session
        self.info = info
        self.horizons = info.horizons

    @classmethod
    def from_path(cls, path: str | Path) -> Forecaster:
        """Load a model file; :class:`ModelError` if it is missing or fails any check."""
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise ModelError(f"{p}: cannot read the model ({exc.strerror or exc})") from None
        return cls.from_bytes(data, str(p))

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<model>") -> Forecaster:
        """Load, check and smoke-test a serialised model."""
        import onnxruntime as ort  # imported on first load: `edge-agent status` never pays for it

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # a forecast is tiny; threads would only steal the daemon's core
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting threads
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        opts.log_severity_level = 3
        try:
            session = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
            meta = dict(session.get_modelmeta().custom_metadata_map)
        except Exception as exc:  # onnxruntime raises its own unexported exception types
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{source}: not a loadable ONNX model (corrupted or truncated?): {first}") from exc
        horizons, scales = _check_metadata(meta, source)
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if [i.name for i in inputs] != [INPUT_NAME] or inputs[0].type != "tensor(float)":
            raise ModelError(f"{source}: expected one float input {INPUT_NAME!r}, found {[i.name for i in inputs]}")
        width = len(feature_names(meta["feature_version"]))
        if len(inputs[0].shape) != 2 or inputs[0].shape[1] != width:
            raise ModelError(f"{source}: input shape {inputs[0].shape}, expected [N, {width}]")
        if [o.name for o in outputs] != [OUTPUT_NAME]:
            raise ModelError(f"{source}: expected one output {OUTPUT_NAME!r}, found {[o.name for o in outputs]}")
        width = 3 * len(horizons)
        if len(outputs[0].shape) != 2 or outputs[0].shape[1] not in (width, None) or isinstance(
            outputs[0].shape[1], str
        ):
            raise ModelError(f"{source}: output shape {outputs[0].shape}, expected [N, {width}] for {horizons}")
        info = ModelInfo(hashlib.sha256(data).hexdigest(), horizons, scales, meta)
        model = cls(session, info)
        model._smoke(source)
        return model

    def _smoke(self, source: str) -> None:
        """Run synthetic rows (all missing, and all at half capacity) and insist on finite output."""
        probe = np.zeros((2, self.info.feature_count), dtype=np.float32)
        probe[1, :] = 0.5
        try:
            out = self.run(probe)
        except Exception as exc:
            raise ModelError(f"{source}: smoke inference failed: {exc}") from exc
        if out.shape != (2, 3 * len(self.horizons)) or not np.all(np.isfinite(out)):
            raise ModelError(f"{source}: smoke inference gave shape {out.shape} or non-finite values")

    def run(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Raw model output ``[N, 3H]`` (fractions of the zone scale) for a feature matrix."""
        out = self._session.run([OUTPUT_NAME], {INPUT_NAME: features})[0]
        return np.asarray(out, dtype=np.float32)

    def quantiles(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """``[N, H, 3]`` fractions (p10, p50, p90), non-negative and ordered.

        The three quantile ensembles are fitted apart and may cross; sorting restores the order.
        """
        out = self.run(features).reshape(features.shape[0], len(self.horizons), 3)
        return np.sort(np.maximum(out, 0.0), axis=2)

    def predict(
        self, histories: Mapping[str, ZoneHistory], now: datetime, calendar: LibraryCalendar | None = None
    ) -> Forecast:
        """Forecast every zone in one batched inference (blocking: call it from a thread)."""
        zones = list(histories)
        if not zones:
            return {}
        scales = [_scale_of(z, histories[z], self.info.zone_scale) for z in zones]
        out = self.quantiles(forecast_features(histories, zones, scales, now, calendar, self.info.feature_version))
        result: Forecast = {}
        for i, (zone, scale) in enumerate(zip(zones, scales, strict=True)):
            result[zone] = {
                h: (float(out[i, j, 0] * scale), float(out[i, j, 1] * scale), float(out[i, j, 2] * scale))
                for j, h in enumerate(self.horizons)
            }
        return result


def forecast_features(histories: Mapping[str, ZoneHistory], zones: list[str], scales: list[float], now: datetime,
                      calendar: LibraryCalendar | None, version: str) -> npt.NDArray[np.float32]:
    """One feature row per zone at the grid time at or before ``now``, in the model's ``version``.

    The rows come from each zone's :class:`ZoneHistory`, which the daemon fills from its durable
    history at start-up (:meth:`edge_agent.history.HistoryStore.warm`) and keeps current: the
    profiles of demand-v4's carried columns are those four weeks, and a zone without them yet gets
    the columns' cold-start fallback (the count now, flagged missing).
    """
    rows = []
    for zone, scale in zip(zones, scales, strict=True):
        grid = histories[zone].grid(now)
        rows.append(feature_rows(grid, [grid.values.size - 1], scale, calendar, version))
    return np.concatenate(rows)


class BaselineForecaster:
    """Serves when no model loads: same time last week, else yesterday, else the current count.

    The interval spans whichever of those three are known; with nothing known it is 0.
    """

    def __init__(self, horizons: tuple[int, ...] = (15, 30, 60)) -> None:
        self.horizons = horizons

    def predict(
        self, histories: Mapping[str, ZoneHistory], now: datetime, calendar: LibraryCalendar | None = None
    ) -> Forecast:
        result: Forecast = {}
        for zone, history in histories.items():
            values = history.grid(now).values
            k = values.size - 1
            result[zone] = {}
            for h in self.horizons:
                target = k + h // STEP_MIN
                seen = [values[i] for i in (target - WEEK_STEPS, target - DAY_STEPS, k) if 0 <= i <= k]
                known = [float(v) for v in seen if not math.isnan(v)]
                best = known[0] if known else 0.0
                result[zone][h] = (min(known, default=0.0), best, max(known, default=0.0))
        return result


@dataclass(frozen=True)
class SwapResult:
    """Outcome of :meth:`ModelSlot.try_swap`: ``ok`` and, if not, why; ``serving`` after the attempt."""

    ok: bool
    reason: str
    serving: str


class ModelSlot:
    """The active model, replaced atomically; falls back to the baseline when nothing loads.

    ``path`` is where the gateway keeps its model (e.g. ``/var/lib/edge-agent/model.onnx``);
    ``path.prev`` keeps the one before the last swap for rollback. ``load`` tries ``path``, then
    ``path.prev``, then ``shipped`` (the package's default model), then serves the baseline.

    ``isolated``: every check and forecast of a model runs in a short-lived child process
    (:mod:`models.worker`), so this process never imports onnxruntime (about 55 MiB with a model,
    kept for the process's life); :attr:`forecaster` is then None. A forecast whose child fails
    is the baseline's, with a warning.
    """

    def __init__(
        self, path: str | Path, shipped: str | Path | None = DEFAULT_MODEL_PATH, *, isolated: bool = False
    ) -> None:
        self.path = Path(path)
        self.previous_path = self.path.with_name(self.path.name + ".prev")
        self.shipped = Path(shipped) if shipped is not None else None
        self.baseline = BaselineForecaster()
        self.problems: list[str] = []
        self._active: Forecaster | None = None
        self.isolated = isolated
        self._elsewhere: tuple[Path, str] | None = None  # isolated: the checked model file and its digest
        self._lock = threading.Lock()

    @property
    def forecaster(self) -> Forecaster | None:
        """The model loaded in this process, or None while the baseline serves (or the slot is isolated)."""
        return self._active

    @property
    def serving(self) -> str:
        active, elsewhere = self._active, self._elsewhere
        if active is not None:
            return f"model {active.info.sha256[:12]}"
        return f"model {elsewhere[1][:12]}" if elsewhere is not None else "baseline"

    def _check(self, path: Path) -> Forecaster | tuple[Path, str]:
        """Load and smoke-test a model file here, or (isolated) in a child: ModelError if it fails."""
        if self.isolated:
            from models import worker

            return path, worker.check(path)
        return Forecaster.from_path(path)

    def _serve(self, model: Forecaster | tuple[Path, str] | None) -> None:
        with self._lock:
            self._active = model if isinstance(model, Forecaster) else None
            self._elsewhere = model if isinstance(model, tuple) else None

    def load(self) -> str:
        """Load the best available model; problems with the others are kept in ``problems``."""
        self.problems = []
        for candidate in (self.path, self.previous_path, self.shipped):
            if candidate is None or not candidate.exists():
                continue
            try:
                model = self._check(candidate)
            except ModelError as exc:
                self.problems.append(str(exc))
                continue
            self._serve(model)
            return self.serving
        self._serve(None)
        return self.serving

    def predict(
        self, histories: Mapping[str, ZoneHistory], now: datetime, calendar: LibraryCalendar | None = None
    ) -> Forecast:
        """Forecast with the active model, or the baseline. Blocking: prefer :meth:`forecast` on the loop."""
        elsewhere = self._elsewhere
        if elsewhere is not None:
            from models import worker

            try:
                return dict(worker.predict(*elsewhere, histories, now, calendar))
            except ModelError as exc:
                log.warning("forecast by the baseline this time: %s", exc)
                return self.baseline.predict(histories, now, calendar)
        active: DemandForecaster = self._active or self.baseline
        return active.predict(histories, now, calendar)

    async def forecast(
        self, histories: Mapping[str, ZoneHistory], now: datetime, calendar: LibraryCalendar | None = None
    ) -> Forecast:
        """Async forecast: snapshots the histories on the loop, infers in a worker thread."""
        frozen = {zone: h.snapshot() for zone, h in histories.items()}
        return await asyncio.to_thread(self.predict, frozen, now, calendar)

    def try_swap(self, new_bytes: bytes, sha256: str) -> SwapResult:
        """Verify, load in a shadow session, smoke-test, persist, then switch; any failure keeps the old."""
        digest = hashlib.sha256(new_bytes).hexdigest()
        if digest != sha256.strip().lower():
            return SwapResult(False, f"sha256 mismatch: got {digest[:12]}, expected {sha256[:12]}", self.serving)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _write_synced(tmp, new_bytes)
            shadow = self._check(tmp)
        except (OSError, ModelError) as exc:
            tmp.unlink(missing_ok=True)
            return SwapResult(False, f"rejected: {exc}", self.serving)
        moved = False
        try:
            if self.path.exists():
                os.replace(self.path, self.previous_path)
                moved = True
            os.replace(tmp, self.path)
            _sync_dir(self.path.parent)
        except OSError as exc:
            if moved and not self.path.exists():
                os.replace(self.previous_path, self.path)
            tmp.unlink(missing_ok=True)
            return SwapResult(False, f"could not persist the model: {exc}", self.serving)
        self._serve(shadow if isinstance(shadow, Forecaster) else (self.path, shadow[1]))
        return SwapResult(True, "swapped", self.serving)

    def rollback(self) -> SwapResult:
        """Return to the model kept in ``path.prev`` (if it still loads)."""
        try:
            data = self.previous_path.read_bytes()
        except OSError:
            return SwapResult(False, "no previous model to roll back to", self.serving)
        return self.try_swap(data, hashlib.sha256(data).hexdigest())


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _sync_dir(directory: Path) -> None:
    """fsync the directory so the renames survive a power cut (SD cards lose unsynced metadata)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
