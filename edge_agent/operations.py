"""What technicians (control socket) and central systems (MQTT commands) can ask the daemon to do.

:class:`GatewayOperations` implements both :class:`edge_agent.control.protocol.ControlTarget` and
:class:`edge_agent.sync.commands.CommandTarget` on the live objects of a running daemon
(:class:`edge_agent.assembly.Gateway`). Both doors lead to the same arbiter, registries and
calibration store, so an override set over MQTT and one set from the CLI behave the same, and
every change is published upstream as an event.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any, cast

from drivers.errors import ConfigError, EdgeError, RulesError
from edge_agent.building.operations import BuildingArgs, BuildingOperations
from edge_agent.calibration import CalibrationStore, check_frc, check_reference
from edge_agent.config import config_hash, rules_file
from edge_agent.control import protocol as p
from edge_agent.control.protocol import ControlRefused, UnknownIdError
from edge_agent.node_operations import NodeOperations
from edge_agent.sync.commands import (
    ClearOverride,
    ConsentSet,
    ConsentWithdraw,
    PreferencesSet,
    ReleaseSeat,
    SetCalendar,
    SetOverride,
)
from edge_agent.sync.messages import iso_utc
from rules import load_rules
from rules.state import IntentKind

if TYPE_CHECKING:
    from edge_agent.assembly import Gateway
    from edge_agent.daemon import Daemon

log = logging.getLogger("edge_agent.operations")

ACTUATOR_KIND = {"light": IntentKind.LIGHT_LEVEL, "hvac": IntentKind.VENTILATION, "desk": IntentKind.DESK_LAMP}


async def _read_back(ch: Any) -> float | None:
    """What an output reports it holds; its confirmed value when it cannot report; None when it does
    not answer within 2 s (an offline node must not stall the listing)."""
    if ch is None:
        return None
    try:
        async with asyncio.timeout(2.0):
            reported = await ch.output.read_back()
    except (EdgeError, OSError, TimeoutError):
        return None
    return ch.applied if reported is None else float(reported)


class GatewayOperations(NodeOperations):
    """Control-socket and MQTT-command operations on a running daemon (bridge-node updates: the mixin)."""

    def __init__(self, daemon: Daemon, calibration: CalibrationStore) -> None:
        self.daemon = daemon
        self.calibration = calibration

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def gw(self) -> Gateway:
        gw = self.daemon.gateway
        if gw is None:
            raise ControlRefused("the daemon is starting; try again in a few seconds")
        return gw

    def _event(self, kind: str, data: dict[str, Any], *, severity: str = "info") -> None:
        self.daemon.publish_event(kind, data, severity=severity)

    def _sensor(self, sensor_id: str) -> Any:
        slot = self.gw.hardware.sensors.get(sensor_id)
        if slot is None:
            raise UnknownIdError("sensor", sensor_id, list(self.gw.hardware.sensors))
        return slot

    def _uplink_state(self) -> tuple[p.BrokerState, p.OutboxState]:
        cfg = self.daemon.cfg
        host, port = self.daemon.options.broker or (cfg.broker.host, cfg.broker.port)
        gw = self.daemon.gateway
        up = gw.uplink if gw is not None else None
        connected = up is not None and up.connected.is_set()
        broker: p.BrokerState = {"host": host, "port": port, "connected": connected,
                                 "since": up.connected_since if up is not None and connected else None,
                                 "last_error": (up.last_error or "") if up is not None else ""}
        outbox: p.OutboxState = {"depth": 0, "bytes": 0, "oldest_age_s": None}
        if gw is not None and gw.outbox is not None:
            now = gw.outbox.stats()
            outbox = {"depth": now.depth, "bytes": now.bytes, "oldest_age_s": now.oldest_age_s}
        return broker, outbox

    # -- ControlTarget -------------------------------------------------------------------------
    async def status(self) -> p.StatusResult:
        gw = self.gw
        broker, outbox = self._uplink_state()
        unhealthy = [sid for sid in gw.hardware.sensors if not gw.pollers.healthy(sid)]
        last = gw.reports.last_actuation
        actuation: p.Actuation | None = None
        if last:
            actuation = {"actuator": str(last.get("actuator")), "value": float(last.get("new") or 0.0),
                         "at": float(last.get("wall") or self.daemon.clock.time()),
                         "source": str(last.get("rule_id") or "")}
        return {
            "site": self.daemon.cfg.site.id, "gateway": self.daemon.cfg.site.gateway, "pid": os.getpid(),
            "uptime_s": self.daemon.clock.monotonic() - self.daemon.state.started_clock,
            "simulated": gw.hardware.backend.name == "simulated", "broker": broker, "outbox": outbox,
            "clock_synced": bool(getattr(self.daemon.clock, "synced", False)),
            "sensors_healthy": len(gw.hardware.sensors) - len(unhealthy), "sensors_unhealthy": unhealthy,
            "last_actuation": actuation, "faults": list(self.daemon.state.faults),
            "ghosts": gw.controller.ghosts.stats(),
        }

    async def sensors(self) -> list[p.SensorInfo]:
        gw = self.gw
        now = self.daemon.clock.monotonic()
        out: list[p.SensorInfo] = []
        for sid, slot in gw.hardware.sensors.items():
            health = getattr(slot.driver, "health", None)
            last = gw.pollers.last.get(sid)
            last_good = getattr(health, "last_good", None)
            out.append({
                "id": sid, "kind": slot.sensor.kind, "zone": slot.sensor.zone, "bus": slot.sensor.bus,
                "address": slot.sensor.address, "healthy": gw.pollers.healthy(sid),
                "reason": slot.error or (getattr(health, "reason", "") or ""),
                "last_values": dict(last.values) if last else {},
                "last_good_age_s": None if last_good is None else round(now - last_good, 1),
                "seats": list(slot.sensor.seats), "desks": self._desks_of(slot.sensor),
            })
        return out

    def _desks_of(self, sensor: Any) -> list[str]:
        """The desks a load cell stands under: the desk actuators on its node and channel."""
        if sensor.node is None or "channel" not in sensor.settings:
            return []
        return [a.id for a in self.daemon.cfg.actuators if a.kind == "desk" and a.node == sensor.node
                and a.channel == sensor.settings["channel"]]

    async def read_sensor(self, sensor: str) -> p.SensorReading:
        slot = self._sensor(sensor)
        driver, kind = slot.driver, slot.sensor.part
        if driver is None:
            raise ControlRefused(f"{sensor}: not available ({slot.error})")
        raw: dict[str, float] = {}
        result: p.SensorReading = {"id": sensor, "kind": kind.name, "raw": raw, "calibrated": {}, "units": {}}
        part = self.gw.pollers.exclusive(sensor)  # a fresh read must not interleave with a poll
        try:
            if kind.feed == "frames":
                async with part:
                    frame = await driver.read_frame()
                status = self.gw.floor.thermal_status(sensor)
                px = frame.pixels
                raw.update(max_pixel=float(px.max()), thermistor=frame.thermistor_c)
                result["thermal"] = {"max_c": float(px.max()), "min_c": float(px.min()), "mean_c": float(px.mean()),
                                     "people": int(status.people)}
            elif kind.feed == "readings" and kind.fresh_read:
                async with part:
                    raw.update({r.quantity: r.value for r in await kind.readings(driver)})
            else:  # pushed by the part, or slower than a request should wait: the latest poll
                last = self.gw.pollers.last.get(sensor)
                if kind.feed == "readings" and (last is None or not last.raw):
                    raise ControlRefused(f"{sensor}: no measurement yet; the {kind.name} has a new one every "
                                         f"{slot.sensor.poll_interval_s:g} s or so, try again")
                raw.update((last.raw or last.values) if last else {})
                seconds = getattr(driver, "seconds_in_periodic", None)
                if callable(seconds):
                    result["measuring_for_s"] = float(seconds() or 0.0)
        except (EdgeError, OSError) as exc:
            if isinstance(exc, ControlRefused):
                raise
            raise ControlRefused(f"{sensor}: read failed: {exc}") from exc
        result["calibrated"] = {q: self.calibration.apply(sensor, q, v) for q, v in raw.items()}
        result["units"] = {q: kind.unit(q) for q in raw}
        return result

    async def calibrate(self, sensor: str, quantity: p.Quantity, reference: float, user: str, *,
                        fresh: bool = False) -> p.CalibrationResult:
        slot = self._sensor(sensor)
        if not self.gw.pollers.healthy(sensor):
            raise ControlRefused(f"{sensor} is unhealthy ({slot.error or 'failing reads'}); fix it before calibrating")
        reading = await self.read_sensor(sensor)
        if quantity not in reading["raw"]:
            raise ControlRefused(f"{sensor} ({slot.sensor.kind}) does not measure {quantity}")
        raw = reading["raw"][quantity]
        how = slot.sensor.part.calibration(quantity)
        if how is None:
            raise ControlRefused(f"{sensor} ({slot.sensor.kind}) has no {quantity} calibration; it calibrates "
                                 f"{', '.join(c.quantity for c in slot.sensor.part.calibrations) or 'nothing'}")
        if how.method == "frc":
            check_frc(reference, reading.get("measuring_for_s"))
            driver = slot.driver
            async with self.gw.pollers.exclusive(sensor):  # the poller's reads would restart periodic mode
                await driver.stop_periodic()
                try:
                    correction = await driver.forced_recalibration(round(reference))
                finally:
                    await driver.start_periodic()
            entry = await asyncio.to_thread(self.calibration.record, sensor, quantity, "frc", user,
                                            old={"raw": raw}, new={"correction_ppm": correction},
                                            reference=reference, raw=raw)
        else:
            check_reference(quantity, reference)
            if how.method == "gain":
                method = self.calibration.calibrate_gain if fresh else self.calibration.add_point
            elif how.method == "tare-scale":
                method = self.calibration.calibrate_offset if reference == 0 else self.calibration.calibrate_scale
            else:
                method = self.calibration.calibrate_offset
            entry = await asyncio.to_thread(method, sensor, quantity, reference, raw, user)
        self._event("calibration", {"sensor": sensor, "quantity": quantity, "action": entry["action"],
                                    "reference": reference})
        return self._result(sensor, entry)

    @staticmethod
    def _result(sensor: str, entry: dict[str, Any], note: str = "") -> p.CalibrationResult:
        return {"sensor": sensor, "quantity": entry["quantity"], "action": entry["action"], "old": entry["old"],
                "new": entry["new"], "reference": entry.get("reference"), "raw": entry.get("raw"), "note": note}

    async def calibrate_undo(self, sensor: str, quantity: str, user: str) -> p.CalibrationResult:
        if sensor not in self.gw.hardware.sensors and sensor not in {a.id for a in self.daemon.cfg.anchors}:
            raise UnknownIdError("sensor", sensor, list(self.gw.hardware.sensors))
        entry = await asyncio.to_thread(self.calibration.undo, sensor, quantity, user)
        if quantity == "position":  # the store only keeps the record; the floor model holds the position
            restored = entry["new"]
            self.gw.floor.set_anchor(sensor, float(restored["x"]), float(restored["y"]), float(restored["z"]))
        self._event("calibration", {"sensor": sensor, "quantity": quantity, "action": "undo"})
        return self._result(sensor, entry, "restored the earlier calibration")

    async def calibration_history(self, sensor: str) -> list[p.HistoryEntry]:
        return cast("list[p.HistoryEntry]", await asyncio.to_thread(self.calibration.history, sensor))

    async def thermal_capture_background(self, sensor: str, user: str) -> p.CalibrationResult:
        slot = self._sensor(sensor)
        if slot.sensor.kind != "amg8833":
            raise ControlRefused(f"{sensor} is a {slot.sensor.kind}, not a thermopile")
        if not self.gw.pollers.healthy(sensor):
            raise ControlRefused(f"{sensor} is unhealthy; fix it before capturing a background")
        try:
            self.gw.floor.capture_background(sensor)
        except EdgeError as exc:
            raise ControlRefused(str(exc)) from exc
        status = self.gw.floor.thermal_status(sensor)
        background = status.background
        new = {"mean_c": None if background is None else round(float(background.mean()), 2)}
        entry = await asyncio.to_thread(self.calibration.record, sensor, "thermal", "thermal-background", user,
                                        old={}, new=new)
        self._event("calibration", {"sensor": sensor, "quantity": "thermal", "action": "thermal-background"})
        return self._result(sensor, entry, "empty-room background captured")

    async def set_anchor(self, anchor: str, x: float, y: float, z: float, user: str) -> p.CalibrationResult:
        anchors = {a.id: a for a in self.daemon.cfg.anchors}
        if anchor not in anchors:
            raise UnknownIdError("anchor", anchor, list(anchors))
        old = anchors[anchor]
        self.gw.floor.set_anchor(anchor, x, y, z)
        entry = await asyncio.to_thread(self.calibration.record, anchor, "position", "position", user,
                                        old={"x": old.x, "y": old.y, "z": old.z}, new={"x": x, "y": y, "z": z})
        self._event("calibration", {"sensor": anchor, "quantity": "position", "action": "position"})
        return self._result(anchor, entry, "applied now; also update [[anchors]] in the config file")

    async def actuators(self) -> list[p.ActuatorInfo]:
        gw = self.gw
        rows: list[p.ActuatorInfo] = []
        channels = [gw.arbiter.channels.get((a.id, ACTUATOR_KIND[a.kind])) for a in self.daemon.cfg.actuators]
        # The read-back is what each output reports now (a node is asked), not the last command.
        reports = await asyncio.gather(*(_read_back(ch) for ch in channels))
        for a, ch, read_back in zip(self.daemon.cfg.actuators, channels, reports, strict=True):
            rows.append({
                "id": a.id, "kind": a.kind, "zone": a.zone,
                "value": None if ch is None or ch.target is None else ch.target.value,
                "read_back": read_back,
                "source": "idle" if ch is None or ch.target is None else (ch.target.rule_id or "override"),
                "healthy": ch is not None and ch.failures == 0 and a.id not in gw.hardware.output_errors
                and getattr(getattr(ch.output, "health", None), "healthy", True)  # a DALI line's status poll
                and getattr(ch.output, "healthy", True),  # a bridge node that answers and holds its outputs
            })
        return rows

    async def actuator_test(self, actuator: str, level: float, duration_s: float, user: str) -> p.ActuatorTestResult:
        kinds = {a.id: a.kind for a in self.daemon.cfg.actuators}
        if actuator not in kinds:
            raise UnknownIdError("actuator", actuator, list(kinds))
        if not 0.0 <= level <= 1.0:
            raise ControlRefused(f"level {level:g} is outside 0..1")
        kind = ACTUATOR_KIND[kinds[actuator]]
        ch = self.gw.arbiter.channels.get((actuator, kind))
        previous = None if ch is None else ch.applied
        try:
            self.gw.arbiter.set_override(actuator, level, duration_s, kind=kind, source=f"cli:{user}",
                                         reason="actuator test")
        except ValueError as exc:
            raise ControlRefused(f"{actuator}: {exc}") from exc
        self._event("override_set", {"target": actuator, "level": level, "duration_s": duration_s, "source": "cli"})
        return {"actuator": actuator, "level": level, "duration_s": duration_s, "previous": previous,
                "restores_at": self.daemon.clock.time() + duration_s}

    async def diagnostics(self) -> p.Diagnostics:
        broker, outbox = self._uplink_state()
        devices: list[p.DeviceProbe] = []
        for sid, slot in self.gw.hardware.sensors.items():
            health = getattr(slot.driver, "health", None)
            devices.append({"sensor": sid, "bus": slot.sensor.bus or slot.sensor.serial_port or "gpio",
                            "address": slot.sensor.address, "answered": self.gw.pollers.healthy(sid),
                            "detail": slot.error or getattr(health, "reason", "") or ""})
        return {"pid": os.getpid(), "state_dir": str(self.daemon.state_dir), "broker": broker, "outbox": outbox,
                "devices": devices}

    async def release_seat(self, seat: str, user: str, *, source: str = "cli") -> dict[str, Any]:
        """Staff cleared ``seat`` (the control socket and the MQTT intake each audit the request)."""
        self._targets("seat", seat)
        return self.gw.controller.release_seat(seat, source)

    async def seats(self) -> dict[str, Any]:
        gw = self.gw
        state = gw.controller.state
        statuses = {} if state is None else {sid: v.status.value for sid, v in state.seats.items()}
        return {"seats": statuses, "ghosts": gw.controller.ghosts.stats(),
                "ghost_seats": sorted(gw.controller.ghosts.open),
                "availability": {z: a.as_message() for z, a in gw.availability.snapshot().items()}}

    async def building(self, args: BuildingArgs) -> dict[str, Any]:
        building = self.gw.hardware.building
        if building is None:
            raise ControlRefused("this floor has no DALI master and no [bacnet] table; see docs/building-systems.md")
        return await BuildingOperations(building).run(args)

    # -- CommandTarget (MQTT) ------------------------------------------------------------------
    def _targets(self, kind: str, target: str) -> None:
        cfg = self.daemon.cfg
        known = {"zone": [z.id for z in cfg.zones], "seat": [s.id for s in cfg.seats],
                 "actuator": [a.id for a in cfg.actuators]}[kind]
        if target not in known:
            raise UnknownIdError(kind, target, known)

    async def set_override(self, args: SetOverride) -> dict[str, Any]:
        self._targets(args.target_kind, args.target)
        return self.hold(args.target_kind, args.target, args.level, args.duration_s, source="mqtt")

    def hold(self, target_kind: str, target: str, level: float, duration_s: float | None, *,
             source: str) -> dict[str, Any]:
        """An override from MQTT or Home Assistant (``duration_s=None``: until cleared); nothing changes
        when it is refused."""
        kind = IntentKind.DESK_LAMP if target_kind == "seat" else IntentKind.LIGHT_LEVEL
        if target_kind == "actuator":
            kinds = {a.id: a.kind for a in self.daemon.cfg.actuators}
            kind = ACTUATOR_KIND[kinds[target]]
        try:
            self.gw.arbiter.set_override(target, level, duration_s, kind=kind, source=source)
        except ValueError as exc:
            raise ControlRefused(f"{target_kind} {target}: {exc}") from exc
        self.gw.controller.wake()
        until = None if duration_s is None else iso_utc(self.daemon.clock.time() + duration_s)
        self._event("override_set", {"target_kind": target_kind, "target": target, "level": level,
                                     "duration_s": duration_s, "until": until, "source": source})
        self.daemon.audit("override", {"target_kind": target_kind, "target": target, "level": level,
                                       "duration_s": duration_s, "source": source})
        return {"override": f"{target_kind}:{target}", "target": target, "level": level, "duration_s": duration_s,
                "until": until}

    async def clear_override(self, args: ClearOverride) -> dict[str, Any]:
        self._targets(args.target_kind, args.target)
        cleared = self.gw.arbiter.clear_override(args.target)
        self.gw.controller.wake()
        self._event("override_cleared", {"target_kind": args.target_kind, "target": args.target, "cleared": cleared,
                                         "source": "mqtt"})
        self.daemon.audit("override", {"target_kind": args.target_kind, "target": args.target, "cleared": cleared,
                                       "source": "mqtt"})
        return {"target": args.target, "cleared": cleared}

    async def release_seat_by_command(self, args: ReleaseSeat) -> dict[str, Any]:
        return await self.release_seat(args.seat, "mqtt", source="mqtt")

    async def reload_rules(self) -> dict[str, Any]:
        path = rules_file(self.daemon.cfg, self.daemon.options.config_path)
        try:
            rules = await asyncio.to_thread(load_rules, path)
        except RulesError as exc:
            self._event("rules_reloaded", {"ok": False, "file": str(path or "(shipped default)"),
                                           "error": str(exc).splitlines()[0][:500]}, severity="error")
            problems = "; ".join(exc.problems[:3])
            raise RulesError(f"rules refused, the running ones stay: {exc}{': ' + problems if problems else ''}",
                             exc.problems) from exc
        self.gw.controller.use_rules(rules)
        self.gw.rules = rules
        self.daemon.audit("rules", {"file": str(path or "(shipped default)"), "rules": len(rules.rules)})
        self._event("rules_reloaded", {"ok": True, "file": str(path or "(shipped default)"), "rules": len(rules.rules)})
        return {"rules": len(rules.rules)}

    async def reload_config(self) -> dict[str, Any]:
        """Validate now and answer; apply in the daemon's own task (it rebuilds this very uplink)."""
        try:
            await asyncio.to_thread(self.daemon.check_config)
        except (ConfigError, RulesError) as exc:
            self.daemon.refuse_reload(str(exc), exc.problems)
            problems = "; ".join(exc.problems[:3])
            raise ControlRefused(f"config refused, the running one stays: {exc}{': ' + problems if problems else ''}"
                                 ) from exc
        new_hash = config_hash(self.daemon.options.config_path)
        self.daemon.schedule_reload()
        return {"config_hash": new_hash, "previous_hash": self.daemon.config_hash, "applying": True}

    async def update_model(self, data: bytes, sha256: str) -> dict[str, Any]:
        result = await asyncio.to_thread(self.gw.model.try_swap, data, sha256)
        self._event("model_updated", {"ok": result.ok, "reason": result.reason, "serving": result.serving},
                    severity="info" if result.ok else "warning")
        self.daemon.audit("model", {"sha256": sha256, "ok": result.ok, "reason": result.reason,
                                    "serving": result.serving})
        if not result.ok:
            raise EdgeError(f"model refused ({result.reason}); still serving {result.serving}")
        return {"serving": result.serving}

    async def republish_state(self) -> dict[str, Any]:
        from edge_agent.services import publish_calendar

        self.gw.controller.republish()
        publish_calendar(self.gw)
        return {"republished": True}

    async def set_calendar(self, args: SetCalendar) -> dict[str, Any]:
        """Use the calendar (or, for null, the config's again) for rules, opening hours and the forecast."""
        from edge_agent.services import publish_calendar

        book = self.gw.calendar
        if book is None:
            raise EdgeError("the site calendar is not loaded yet; try again in a few seconds")
        await asyncio.to_thread(book.set, args.calendar)
        self.gw.controller.wake()
        state = publish_calendar(self.gw)
        self._event("calendar_set", {"source": state["source"], "digest": state["digest"]})
        return {k: state[k] for k in ("source", "digest", "today", "day_type", "hours")}

    async def consent_set(self, args: ConsentSet) -> dict[str, Any]:
        result = await self.gw.patrons.grant(args.subject, list(args.scopes), args.valid_months)
        self.daemon.audit("consent", {"consented": True, "scopes": result.get("scopes"),
                                      "receipt": result.get("receipt"), "expires_at": result.get("expires_at")})
        return result

    async def consent_withdraw(self, args: ConsentWithdraw) -> dict[str, Any]:
        result = await self.gw.patrons.withdraw(args.subject)
        self.daemon.audit("consent", {"consented": False, "receipt": result.get("receipt")})
        return result

    async def preferences_set(self, args: PreferencesSet) -> dict[str, Any]:
        result = await self.gw.patrons.set_preferences(args.subject, args.desk_height_mm, args.lamp_level)
        self.daemon.audit("preferences", {"stored": result.get("stored"), "receipt": result.get("receipt")})
        return result

