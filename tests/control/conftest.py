"""A small ControlTarget that records its calls, served by the real ControlServer on a real socket.

The server runs on its own event loop in a thread, so tests can drive it with the blocking CLI
client (click's CliRunner, subprocesses) exactly as a technician would.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from edge_agent.calibration import CalibrationStore, check_frc
from edge_agent.control.protocol import ControlRefused, UnknownIdError
from edge_agent.control.server import ControlServer


class FixedClock:
    """Wall clock for the store: settable, never synced unless told."""

    def __init__(self, t: float = 1_700_000_000.0, synced: bool = True) -> None:
        self.t = t
        self.synced = synced

    def time(self) -> float:
        return self.t


@dataclass
class FakeSensor:
    id: str
    kind: str
    raw: dict[str, float]
    healthy: bool = True
    reason: str = ""
    people: int = 0
    measuring_for_s: float | None = None
    script: list[float] = field(default_factory=list)  # next lux raw values, one per calibrate call


UNITS = {"lux": "lx", "temperature": "°C", "humidity": "%RH", "co2": "ppm"}


@dataclass
class FakeTarget:
    """Implements the ControlTarget protocol over a real CalibrationStore; ``calls`` records every call."""

    store: CalibrationStore
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    sensors_by_id: dict[str, FakeSensor] = field(default_factory=dict)
    anchors: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    slow_s: float = 0.0

    def __post_init__(self) -> None:
        for s in (
            FakeSensor("lux-z1-quiet", "bh1750", {"lux": 400.0}),
            FakeSensor("lux-z2-group", "bh1750", {"lux": 250.0}, healthy=False, reason="NackError: no acknowledge"),
            FakeSensor("rh-z1-quiet", "sht31", {"temperature": 21.0, "humidity": 40.0}),
            FakeSensor("co2-z1-quiet", "scd41", {"co2": 455.0, "temperature": 22.0, "humidity": 41.0},
                       measuring_for_s=600.0),
            FakeSensor("thermal-z1-quiet-1", "amg8833", {}),
        ):  # fmt: skip
            self.sensors_by_id[s.id] = s
        self.anchors = {"anchor-1": (0.0, 0.0, 2.5), "anchor-2": (10.0, 0.0, 2.5)}

    def _sensor(self, sensor: str) -> FakeSensor:
        if sensor not in self.sensors_by_id:
            raise UnknownIdError("sensor", sensor, self.sensors_by_id)
        return self.sensors_by_id[sensor]

    async def status(self) -> Any:
        self.calls.append(("status", ()))
        unhealthy = [s.id for s in self.sensors_by_id.values() if not s.healthy]
        return {
            "site": "central-library", "gateway": "gw-floor-3", "pid": 4242, "uptime_s": 3725.0, "simulated": True,
            "broker": {"host": "127.0.0.1", "port": 1883, "connected": True, "since": 1_700_000_000.0,
                       "last_error": ""},
            "outbox": {"depth": 17, "bytes": 4096, "oldest_age_s": 12.0},
            "clock_synced": False,
            "sensors_healthy": len(self.sensors_by_id) - len(unhealthy), "sensors_unhealthy": unhealthy,
            "last_actuation": {"actuator": "light-z1", "value": 0.45, "at": 1_700_000_100.0, "source": "daylight"},
        }  # fmt: skip

    async def sensors(self) -> Any:
        self.calls.append(("sensors", ()))
        return [
            {"id": s.id, "kind": s.kind, "zone": "z1-quiet", "bus": "i2c1", "address": 0x23, "healthy": s.healthy,
             "reason": s.reason, "last_values": {q: self.store.apply(s.id, q, v) for q, v in s.raw.items()},
             "last_good_age_s": 3.0}
            for s in self.sensors_by_id.values()
        ]  # fmt: skip

    async def read_sensor(self, sensor: str) -> Any:
        self.calls.append(("read_sensor", (sensor,)))
        if self.slow_s:
            await asyncio.sleep(self.slow_s)
        s = self._sensor(sensor)
        out: dict[str, Any] = {
            "id": s.id, "kind": s.kind, "raw": dict(s.raw),
            "calibrated": {q: self.store.apply(s.id, q, v) for q, v in s.raw.items()},
            "units": {q: UNITS[q] for q in s.raw},
        }  # fmt: skip
        if s.kind == "amg8833":
            out["thermal"] = {"max_c": 30.5, "min_c": 21.0, "mean_c": 22.4, "people": s.people}
        if s.measuring_for_s is not None:
            out["measuring_for_s"] = s.measuring_for_s
        return out

    async def calibrate(self, sensor: str, quantity: str, reference: float, user: str, *, fresh: bool = False) -> Any:
        self.calls.append(("calibrate", (sensor, quantity, reference, user, fresh)))
        s = self._sensor(sensor)
        if not s.healthy:
            raise ControlRefused(f"{sensor} is unhealthy ({s.reason}); fix it before calibrating")
        if quantity not in s.raw:
            raise ControlRefused(f"{sensor} ({s.kind}) does not measure {quantity}")
        if quantity == "lux" and s.script:
            s.raw["lux"] = s.script.pop(0)  # the technician changed the light level
        raw = s.raw[quantity]
        if quantity == "lux":
            method = self.store.calibrate_gain if fresh else self.store.add_point
            entry = method(sensor, quantity, reference, raw, user)
        elif quantity == "co2":
            check_frc(reference, s.measuring_for_s)
            entry = self.store.record(sensor, "co2", "frc", user, old={}, new={"frc_correction_ppm": reference - raw},
                                      reference=reference, raw=raw)  # fmt: skip
        else:
            entry = self.store.calibrate_offset(sensor, quantity, reference, raw, user)
        return {"sensor": sensor, **entry, "note": ""}

    async def calibrate_undo(self, sensor: str, quantity: str, user: str) -> Any:
        self.calls.append(("calibrate_undo", (sensor, quantity, user)))
        self._sensor(sensor)
        return {"sensor": sensor, **self.store.undo(sensor, quantity, user), "note": ""}

    async def calibration_history(self, sensor: str) -> Any:
        self.calls.append(("calibration_history", (sensor,)))
        self._sensor(sensor)
        return self.store.history(sensor)

    async def thermal_capture_background(self, sensor: str, user: str) -> Any:
        self.calls.append(("thermal_capture_background", (sensor, user)))
        s = self._sensor(sensor)
        if s.people:
            raise ControlRefused(f"{sensor} sees {s.people} people; capture the background when the area is empty")
        entry = self.store.record(sensor, "thermal", "thermal-background", user, old={}, new={"mean_c": 22.4})
        return {"sensor": sensor, **entry, "note": "64 pixels captured"}

    async def set_anchor(self, anchor: str, x: float, y: float, z: float, user: str) -> Any:
        self.calls.append(("set_anchor", (anchor, x, y, z, user)))
        if anchor not in self.anchors:
            raise UnknownIdError("anchor", anchor, self.anchors)
        old = self.anchors[anchor]
        self.anchors[anchor] = (x, y, z)
        entry = self.store.record(anchor, "position", "position", user, old=dict(zip("xyz", old, strict=True)),
                                  new={"x": x, "y": y, "z": z})  # fmt: skip
        return {"sensor": anchor, **entry, "note": ""}

    async def actuators(self) -> Any:
        self.calls.append(("actuators", ()))
        return [{"id": "light-z1", "kind": "light", "zone": "z1-quiet", "value": 0.45, "read_back": 0.44,
                 "source": "daylight", "healthy": True}]  # fmt: skip

    async def actuator_test(self, actuator: str, level: float, duration_s: float, user: str) -> Any:
        self.calls.append(("actuator_test", (actuator, level, duration_s, user)))
        if actuator != "light-z1":
            raise UnknownIdError("actuator", actuator, ["light-z1"])
        if not 0 <= level <= 1:
            raise ControlRefused(f"level {level:g} is outside 0..1 for a light")
        return {"actuator": actuator, "level": level, "duration_s": duration_s, "previous": 0.45,
                "restores_at": time.time() + duration_s}  # fmt: skip

    async def release_seat(self, seat: str, user: str) -> Any:
        self.calls.append(("release_seat", (seat, user)))
        return {"seat": seat, "zone": "z1-quiet", "source": "cli", "was": "ghost", "ghost_to_release_s": 300.0}

    async def seats(self) -> Any:
        self.calls.append(("seats", ()))
        return {"seats": {}, "ghosts": {}, "ghost_seats": [], "availability": {}}

    async def diagnostics(self) -> Any:
        self.calls.append(("diagnostics", ()))
        return {"pid": 0, "state_dir": "/tmp", "broker": {}, "outbox": {},
                "devices": [{"sensor": "lux-z1-quiet", "bus": "i2c1", "address": 0x23, "answered": True,
                             "detail": ""}]}  # fmt: skip

    async def building(self, args: Any) -> Any:
        self.calls.append(("building", (args.action,)))
        raise ControlRefused("this floor has no DALI master and no [bacnet] table; see docs/building-systems.md")


class ServedTarget:
    """Runs ControlServer(path, target) on a private event loop in a thread."""

    def __init__(self, path: Path, target: Any, group: str | None = None) -> None:
        self.path = path
        self.target = target
        self.group = group
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with ControlServer(self.path, self.target, group=self.group):
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> ServedTarget:
        self._thread.start()
        assert self._ready.wait(5), "server did not start"
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)
        assert not self._thread.is_alive(), "server thread did not stop"


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short directory under /tmp (unix socket paths are limited to 107 bytes)."""
    d = Path(tempfile.mkdtemp(prefix="ea-ctl-", dir="/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def target(tmp_path: Path, clock: FixedClock) -> Iterator[FakeTarget]:
    store = CalibrationStore(tmp_path / "calibration.json", clock=clock)
    yield FakeTarget(store)
    store.close()


@pytest.fixture
def served(sock_dir: Path, target: FakeTarget) -> Iterator[ServedTarget]:
    with ServedTarget(sock_dir / "control.sock", target) as s:
        yield s
