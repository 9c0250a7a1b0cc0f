"""Home Assistant discovery and lights, end to end: what Home Assistant would receive and send.

The discovery configs are checked against the schema Home Assistant documents for an MQTT
``sensor`` and a JSON-schema ``light`` (tests/contract/schemas.py), and a light switched on,
dimmed and switched off the way Home Assistant does it (a JSON command on the config's
``command_topic``) must move the zone's luminaires, seen through the technician's CLI.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.contract.outside import TOPIC_ROOT, OutsideDaemon, serving
from tests.contract.schemas import ha_validator, problems

pytestmark = [pytest.mark.slow, pytest.mark.mqtt]

ZONES = ["z1-quiet", "z2-group", "z3-silent", "z4-open", "z5-quiet", "z6-lounge"]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutsideDaemon]:
    yield from serving(tmp_path_factory, "contract-ha")


def configs(gw: OutsideDaemon, after: int = 0) -> dict[str, dict[str, object]]:
    return {m.topic: m.json() for m in gw.observer.seen(
        lambda m: m.topic.startswith("homeassistant/") and m.topic.endswith("/config"), after=after)}


def levels(gw: OutsideDaemon, zone: str) -> list[float | None]:
    rows = gw.cli("actuators", "list", json_output=True).json()
    return [r["value"] for r in rows if r["zone"] == zone and r["kind"] == "light"]


def test_discovery_configs_follow_home_assistants_schema(gw: OutsideDaemon) -> None:
    gw.observer.wait_for("the last light config", lambda m: m.topic.endswith("z6-lounge_lights/config"))
    found = configs(gw)
    sensors = {t: c for t, c in found.items() if t.startswith("homeassistant/sensor/")}
    lights = {t: c for t, c in found.items() if t.startswith("homeassistant/light/")}
    assert len(sensors) == 5 * len(ZONES) and len(lights) == len(ZONES)
    for topic, conf in found.items():
        component = topic.split("/")[1]
        assert not problems(ha_validator(component), conf), (topic, problems(ha_validator(component), conf))
        assert conf["availability"] == [{"topic": f"{TOPIC_ROOT}/status", "value_template": "{{ value_json.state }}",
                                         "payload_available": "online", "payload_not_available": "offline"}]
    assert len({c["unique_id"] for c in found.values()}) == len(found), "unique ids are unique"
    assert len({json.dumps(c["device"], sort_keys=True) for c in found.values()}) == 1, "one device: the gateway"
    assert set(gw.retained("homeassistant/#")) == set(found), "configs are retained"
    for conf in lights.values():
        assert conf["command_topic"].startswith(f"{TOPIC_ROOT}/ha/zone/")
        assert conf["supported_color_modes"] == ["brightness"] and conf["brightness_scale"] == 255
    # The state topics and templates read fields the zone summary really has.
    summary = gw.observer.wait_for("a summary of z1-quiet", lambda m: m.topic == f"{TOPIC_ROOT}/zone/z1-quiet/summary")
    doc = summary.json()
    for conf in sensors.values():
        if conf["state_topic"] == summary.topic:
            field = str(conf["value_template"]).removeprefix("{{ value_json.").removesuffix(" }}").split(".")
            value: object = doc
            for part in field:
                assert isinstance(value, dict) and part in value, (conf["value_template"], doc)
                value = value[part]


def test_home_assistant_restart_gets_the_configs_again(gw: OutsideDaemon) -> None:
    mark = gw.observer.mark()
    gw.publish("homeassistant/status", b"online")
    gw.observer.wait_for("configs published again", lambda m: m.topic.endswith("/z6-lounge_lights/config"),
                         after=mark)
    assert len(configs(gw, mark)) == 6 * len(ZONES)


def test_light_on_dim_and_off_move_the_zone_luminaires(gw: OutsideDaemon) -> None:
    conf = configs(gw)["homeassistant/light/central-library_gw-floor-3/z2-group_lights/config"]
    command_topic = str(conf["command_topic"])
    gw.publish(command_topic, json.dumps({"state": "ON", "brightness": 128}))
    gw.wait_until("z2's lights at 128/255", lambda: levels(gw, "z2-group") == [pytest.approx(128 / 255)] * 4)
    gw.publish(command_topic, json.dumps({"state": "ON"}))
    gw.wait_until("z2's lights full on", lambda: levels(gw, "z2-group") == [1.0] * 4)
    # The library opens at 08:00: nobody is in yet, so off really is off (in an occupied zone the
    # never-dark rule would keep a minimum, above any override).
    gw.publish(command_topic, json.dumps({"state": "OFF"}))
    gw.wait_until("z2's lights off", lambda: levels(gw, "z2-group") == [0.0] * 4)
    gw.observer.wait_for("the luminaires' confirmed change to off, reported", lambda m: m.topic ==
                         f"{TOPIC_ROOT}/actuation" and m.json()["actuator"].startswith("light-z2-group")
                         and m.json()["new"] == 0.0 and m.json()["priority"] == "override", timeout=60)
    # Garbage on the command topic changes nothing and keeps the session.
    gw.publish(command_topic, b"\xff not json")
    gw.publish(command_topic, json.dumps({"state": "DIM"}))
    gw.publish(f"{TOPIC_ROOT}/ha/zone/no-such-zone/light/set", json.dumps({"state": "ON"}))
    assert gw.command("republish_state", {})["ok"] is True
    assert levels(gw, "z2-group") == [0.0] * 4
    # The lights stay Home Assistant's until a central system clears the override.
    assert gw.command("clear_override", {"target_kind": "zone", "target": "z2-group"})["result"]["cleared"] == 1
