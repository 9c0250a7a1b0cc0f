"""Home Assistant on the uplink: discovery for a floor's zones and its light commands (off by default).

With ``[mqtt] homeassistant_discovery = true`` the uplink publishes, retained, one discovery config
per zone sensor (people, free seats, lux, CO2, temperature) and one JSON-schema light per zone that
has luminaires, under ``homeassistant/<component>/<node>/<object>/config`` as HA expects. The
sensors read the zone summary topic with a value template, so nothing extra is published for them;
availability follows the gateway's retained ``status`` (online / offline via the last will).

HA republishes ``online`` on ``homeassistant/status`` when it restarts; the adapter answers by
publishing the configs again. A light command is held as a zone override until cleared.

The configs follow HA's documented discovery schema as it stands: ``default_entity_id`` (the
successor of the deprecated ``object_id``), and for the light ``supported_color_modes:
["brightness"]`` (the JSON schema's ``brightness`` flag is deprecated). A sensor whose value is
null renders ``None``, which HA shows as unknown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Protocol

import aiomqtt

from drivers.errors import EdgeError
from edge_agent.config import SiteConfig
from edge_agent.sync.commands import CommandGuard, SetOverride
from edge_agent.sync.messages import Topics

log = logging.getLogger(__name__)

HA_PREFIX = "homeassistant"
HA_STATUS = f"{HA_PREFIX}/status"


@dataclass(frozen=True, slots=True)
class ZoneSensor:
    """One HA sensor read from the zone summary."""

    key: str
    name: str
    template: str
    unit: str | None
    device_class: str | None


ZONE_SENSORS = (
    ZoneSensor("people", "People", "{{ value_json.people.value }}", None, None),
    ZoneSensor("free_seats", "Free seats", "{{ value_json.free }}", None, None),
    ZoneSensor("lux", "Illuminance", "{{ value_json.lux.value }}", "lx", "illuminance"),
    ZoneSensor("co2", "CO2", "{{ value_json.co2.value }}", "ppm", "carbon_dioxide"),
    ZoneSensor("temperature", "Temperature", "{{ value_json.temperature.value }}", "°C", "temperature"),
)


def entity_slug(text: str) -> str:
    """An entity id's object part as HA accepts it: lower-case letters, digits and single underscores."""
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower())
    return re.sub(r"_+", "_", slug).strip("_") or "gateway"


def node_id(cfg: SiteConfig) -> str:
    """HA node id: site and gateway, with only the characters HA allows in ids."""
    raw = f"{cfg.site.id}_{cfg.site.gateway}"
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in raw)


def discovery_messages(cfg: SiteConfig, topics: Topics, version: str) -> list[tuple[str, bytes]]:
    """(topic, payload) for every discovery config of this gateway, to publish retained."""
    node = node_id(cfg)
    device = {
        "identifiers": [node],
        "name": f"{cfg.site.name or cfg.site.id} gateway {cfg.site.gateway}",
        "manufacturer": "edge-agent",
        "model": "floor gateway",
        "sw_version": version,
    }
    availability = {
        "topic": topics.status,
        "value_template": "{{ value_json.state }}",
        "payload_available": "online",
        "payload_not_available": "offline",
    }
    out: list[tuple[str, bytes]] = []
    for zone in cfg.zones:
        label = zone.name or zone.id
        for s in ZONE_SENSORS:
            obj = f"{zone.id}_{s.key}".replace(".", "_")
            conf: dict[str, object] = {
                "name": f"{label} {s.name}",
                "unique_id": f"{node}_{obj}",
                "default_entity_id": f"sensor.{entity_slug(f'{node}_{obj}')}",
                "state_topic": topics.zone_summary(zone.id),
                "value_template": s.template,
                "state_class": "measurement",
                "availability": [availability],
                "device": device,
            }
            if s.unit:
                conf["unit_of_measurement"] = s.unit
            if s.device_class:
                conf["device_class"] = s.device_class
            out.append((f"{HA_PREFIX}/sensor/{node}/{obj}/config", json.dumps(conf).encode()))
        if any(a.kind == "light" and a.zone == zone.id for a in cfg.actuators):
            obj = f"{zone.id}_lights".replace(".", "_")
            light = {
                "name": f"{label} lights",
                "unique_id": f"{node}_{obj}",
                "default_entity_id": f"light.{entity_slug(f'{node}_{obj}')}",
                "schema": "json",
                "command_topic": topics.ha_light_set(zone.id),
                "supported_color_modes": ["brightness"],
                "brightness_scale": 255,
                "optimistic": True,
                "availability": [availability],
                "device": device,
            }
            out.append((f"{HA_PREFIX}/light/{node}/{obj}/config", json.dumps(light).encode()))
    return out


def light_level(payload: bytes) -> float | None:
    """Level 0..1 from an HA JSON-schema light command, or None when it cannot be read."""
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("state") not in ("ON", "OFF"):
        return None
    if doc["state"] == "OFF":
        return 0.0
    brightness = doc.get("brightness", 255)
    if not isinstance(brightness, int | float) or isinstance(brightness, bool):
        return None
    return max(0.0, min(1.0, float(brightness) / 255.0))


class LightTarget(Protocol):
    """Where a light command goes (the daemon's operations: a zone override until cleared)."""

    async def set_override(self, args: SetOverride) -> dict[str, Any]: ...


class HomeAssistantAdapter:
    """Home Assistant on the uplink's session: configs after each connect and on HA's ``online``,
    light commands to the daemon. Off unless ``[mqtt] homeassistant_discovery = true``."""

    def __init__(self, cfg: SiteConfig, topics: Topics, version: str, target: LightTarget, *,
                 timeout_s: float = 15.0, guard: CommandGuard | None = None) -> None:
        self.cfg = cfg
        self.guard = guard  # Home Assistant cannot sign: its light commands obey the signature policy as unsigned
        self.topics = topics
        self.version = version
        self.target = target
        self.timeout_s = timeout_s
        self.enabled = cfg.mqtt.homeassistant_discovery
        self._light_prefix = f"{topics.root}/ha/zone/"

    def subscriptions(self) -> list[str]:
        return [HA_STATUS, f"{self._light_prefix}+/light/set"] if self.enabled else []

    async def publish_configs(self, client: aiomqtt.Client) -> None:
        if self.enabled:
            msgs = discovery_messages(self.cfg, self.topics, self.version)
            await asyncio.gather(*(client.publish(t, p, 1, True, timeout=self.timeout_s) for t, p in msgs))

    async def handle(self, client: aiomqtt.Client, topic: str, raw: bytes) -> bool:
        """Act on a message if it is Home Assistant's; False when it is not."""
        if not self.enabled:
            return False
        if topic == HA_STATUS:
            if raw.strip() == b"online":  # HA restarted: it forgot the configs
                await self.publish_configs(client)
            return True
        if topic.startswith(self._light_prefix) and topic.endswith("/light/set"):
            await self.light(topic.removeprefix(self._light_prefix).split("/")[0], raw)
            return True
        return False

    async def light(self, zone: str, raw: bytes) -> None:
        """A JSON-schema light command: held as a zone override until cleared; garbage is logged."""
        level = light_level(raw)
        if level is None:
            log.warning("ignored an unreadable Home Assistant light command for zone %s: %r", zone, raw[:100])
            return
        if self.guard is not None:
            args = {"target_kind": "zone", "target": zone, "level": level, "duration_s": None}
            verdict = await self.guard.authorise("set_override", {"id": "homeassistant", "args": args}, "homeassistant")
            self.guard.record("command", "homeassistant", {"command": "set_override", "args": args,
                                                           "ok": verdict.accepted, "code": verdict.reason,
                                                           "auth": verdict.note()})
            if not verdict.accepted:
                log.warning("Home Assistant light command for zone %s refused: %s", zone, verdict.message)
                return
        try:
            await self.target.set_override(SetOverride(target_kind="zone", target=zone, level=level, duration_s=None))
        except (EdgeError, ValueError) as exc:  # ValueError: an id that is not a valid zone id
            log.warning("Home Assistant light command for zone %s refused: %s", zone, exc)
        except Exception:  # a bug must not end the session
            log.exception("Home Assistant light command for zone %s failed", zone)
