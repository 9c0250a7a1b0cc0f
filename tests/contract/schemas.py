"""What every message on the broker must look like, checked with an independent validator (jsonschema).

Gateway payloads are checked against docs/schemas (the documented contract), command requests
against ``command_request.json`` and ``cmd_{name}.json``, and Home Assistant discovery configs
against the schema Home Assistant's MQTT integration documents for a ``sensor`` and a JSON-schema
``light`` (home-assistant.io/integrations/sensor.mqtt, light.mqtt#json-schema, mqtt#discovery):
the required keys, the types, ``availability`` entries with a ``topic``, a ``device`` with
``identifiers``, and none of the options Home Assistant has deprecated (``object_id``, the JSON
light's ``brightness`` and ``color_mode`` flags).
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"

_AVAILABILITY = {
    "type": "array", "minItems": 1,
    "items": {
        "type": "object", "required": ["topic"], "additionalProperties": False,
        "properties": {"topic": {"type": "string", "minLength": 1}, "payload_available": {"type": "string"},
                       "payload_not_available": {"type": "string"}, "value_template": {"type": "string"}},
    },
}
_DEVICE = {
    "type": "object", "additionalProperties": False,
    "anyOf": [{"required": ["identifiers"]}, {"required": ["connections"]}],
    "properties": {
        "identifiers": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]},
        "connections": {"type": "array"}, "name": {"type": "string"}, "manufacturer": {"type": "string"},
        "model": {"type": "string"}, "model_id": {"type": "string"}, "sw_version": {"type": "string"},
        "hw_version": {"type": "string"}, "serial_number": {"type": "string"}, "suggested_area": {"type": "string"},
        "configuration_url": {"type": "string"}, "via_device": {"type": "string"},
    },
}
_ENTITY = {
    "name": {"type": ["string", "null"]}, "unique_id": {"type": "string", "minLength": 1},
    # Home Assistant's valid_entity_id: domain.object_id, lower-case, digits, single inner underscores
    "default_entity_id": {"type": "string", "pattern": r"^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$"},
    "availability": _AVAILABILITY, "availability_mode": {"enum": ["all", "any", "latest"]}, "device": _DEVICE,
    "qos": {"enum": [0, 1, 2]}, "icon": {"type": "string"}, "enabled_by_default": {"type": "boolean"},
    "entity_category": {"enum": ["config", "diagnostic"]}, "json_attributes_topic": {"type": "string"},
    "json_attributes_template": {"type": "string"}, "encoding": {"type": "string"},
}
# Units Home Assistant accepts for the device classes the gateway uses.
_UNITS = [
    {"if": {"properties": {"device_class": {"const": "illuminance"}}, "required": ["device_class"]},
     "then": {"properties": {"unit_of_measurement": {"const": "lx"}}, "required": ["unit_of_measurement"]}},
    {"if": {"properties": {"device_class": {"const": "carbon_dioxide"}}, "required": ["device_class"]},
     "then": {"properties": {"unit_of_measurement": {"const": "ppm"}}, "required": ["unit_of_measurement"]}},
    {"if": {"properties": {"device_class": {"const": "temperature"}}, "required": ["device_class"]},
     "then": {"properties": {"unit_of_measurement": {"enum": ["°C", "°F", "K"]}},
              "required": ["unit_of_measurement"]}},
]
HA_SENSOR = {
    "type": "object", "required": ["state_topic", "unique_id", "device"], "additionalProperties": False,
    "allOf": _UNITS,
    "properties": {
        **_ENTITY, "state_topic": {"type": "string", "minLength": 1}, "value_template": {"type": "string"},
        "unit_of_measurement": {"type": "string"}, "device_class": {"type": "string"},
        "state_class": {"enum": ["measurement", "measurement_angle", "total", "total_increasing"]},
        "expire_after": {"type": "integer", "minimum": 0}, "force_update": {"type": "boolean"},
        "suggested_display_precision": {"type": "integer", "minimum": 0},
    },
}
HA_JSON_LIGHT = {
    "type": "object", "required": ["schema", "command_topic", "unique_id", "device"], "additionalProperties": False,
    "properties": {
        **_ENTITY, "schema": {"const": "json"}, "command_topic": {"type": "string", "minLength": 1},
        "state_topic": {"type": "string"}, "optimistic": {"type": "boolean"}, "retain": {"type": "boolean"},
        "brightness_scale": {"type": "integer", "minimum": 1},
        "supported_color_modes": {
            "type": "array", "minItems": 1, "uniqueItems": True,
            "items": {"enum": ["onoff", "brightness", "color_temp", "hs", "xy", "rgb", "rgbw", "rgbww", "white"]},
            # "onoff" and "brightness" may only stand alone
            "anyOf": [{"maxItems": 1}, {"not": {"contains": {"enum": ["onoff", "brightness"]}}}],
        },
        "effect": {"type": "boolean"}, "effect_list": {"type": "array", "items": {"type": "string"}},
        "flash": {"type": "boolean"}, "flash_time_long": {"type": "integer"}, "flash_time_short": {"type": "integer"},
        "transition": {"type": "boolean"},
    },
}

GATEWAY_TOPICS: list[tuple[str, str]] = [
    (r"status", "status"), (r"health", "health"), (r"zone/[^/]+/summary", "zone_summary"),
    (r"zone/[^/]+/forecast", "zone_forecast"), (r"zone/[^/]+/availability", "zone_availability"),
    (r"seat/[^/]+/state", "seat_state"), (r"event/[^/]+", "event"),
    (r"actuation", "actuation"), (r"cmd/[^/]+/result", "command_result"), (r"calendar", "calendar"),
    (r"audit/head", "audit_head"),
]


@cache
def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@cache
def ha_validator(component: str) -> Draft202012Validator:
    schema = HA_SENSOR if component == "sensor" else HA_JSON_LIGHT
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def problems(v: Draft202012Validator, doc: Any) -> list[str]:
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}" for e in v.iter_errors(doc)]


def check_message(topic: str, payload: bytes, root: str, replies: str = "contract/") -> str | None:
    """None when the message is what the contract says for its topic, else one line saying why not."""
    try:
        doc = json.loads(payload) if payload else None
    except ValueError:
        doc = "(not JSON)"
    found: list[str] = []
    if topic.startswith(f"{root}/"):
        rest = topic.removeprefix(f"{root}/")
        if re.fullmatch(r"cmd/[^/]+", rest) or re.fullmatch(r"ha/zone/[^/]+/light/set", rest):
            return None  # requests (ours, including the fuzzers' deliberate garbage)
        for pattern, name in GATEWAY_TOPICS:
            if re.fullmatch(pattern, rest):
                found = problems(validator(name), doc)
                if name == "event" and not found and doc["kind"] != rest.split("/")[1]:
                    found = [f"kind {doc['kind']!r} differs from the topic"]
                break
        else:
            return f"{topic}: no documented topic is like it"
    elif topic.startswith(replies):  # response topics the tests choose
        found = problems(validator("command_result"), doc)
    elif topic.startswith("homeassistant/"):
        parts = topic.split("/")
        if topic == "homeassistant/status":
            return None
        if len(parts) != 5 or parts[-1] != "config" or parts[1] not in ("sensor", "light"):
            return f"{topic}: not a Home Assistant discovery topic the gateway documents"
        if payload:  # an empty retained payload removes an entity
            found = problems(ha_validator(parts[1]), doc)
    if found:
        return f"{topic}: {'; '.join(found[:3])}"
    return None


def check_request(name: str, doc: Any) -> list[str]:
    """Problems of a request we are about to send, against the documented request schemas."""
    out = problems(validator("command_request"), doc)
    if not out and (SCHEMAS / f"cmd_{name}.json").exists():
        out = problems(validator(f"cmd_{name}"), doc.get("args", {}))
    return out
