"""Every documented event, seen on a real broker from the real daemon, caused only from outside.

The simulated world breaks a light sensor for three minutes (a scenario event: the part stops
acknowledging), a technician calibrates through the CLI, and a central system reloads good and
broken config and rule files. The model update events are in test_commands (they ride on the
upload), the supervised-task crash loop in test_task_fault.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.outside import OutsideDaemon, event_of, serving, topic_is

pytestmark = [pytest.mark.slow, pytest.mark.mqtt]

FAULT = """
[[events]]
at = "07:31"
kind = "sensor_fault"
target = "lux-z3-silent"
fault = "nack"
duration_min = 3  # 18 s at speed 10: time for two CLI calls on a loaded machine while it lasts
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutsideDaemon]:
    yield from serving(tmp_path_factory, "contract-events", events=FAULT)


def test_a_sensor_fails_and_recovers(gw: OutsideDaemon) -> None:
    fault = gw.observer.wait_for("sensor_fault", event_of("sensor_fault", sensor="lux-z3-silent"), timeout=90).json()
    assert fault["severity"] == "warning"
    assert fault["data"]["kind"] == "bh1750" and fault["data"]["zone"] == "z3-silent"
    assert "Nack" in fault["data"]["reason"] or "acknowledge" in fault["data"]["reason"], fault["data"]
    status = gw.cli("status", json_output=True).json()
    assert "lux-z3-silent" in status["sensors_unhealthy"]
    listing = gw.cli("sensors", "list").stdout.splitlines()
    assert listing[1].startswith("lux-z3-silent"), "unhealthy sensors are listed first"
    recovered = gw.observer.wait_for("sensor_recovered", event_of("sensor_recovered", sensor="lux-z3-silent"),
                                     timeout=90).json()
    assert recovered["severity"] == "info" and recovered["seq"] > fault["seq"]
    summaries = gw.observer.seen(topic_is("zone/z3-silent/summary"))
    assert any(m.json()["lux"]["quality"] != "good" for m in summaries), "the zone's lux lost quality meanwhile"


def test_calibration_from_the_cli_is_an_event(gw: OutsideDaemon) -> None:
    mark = gw.observer.mark()
    done = gw.cli("calibrate", "humidity", "rh-z1-quiet", "--reference", "45", json_output=True).json()
    assert done["quantity"] == "humidity" and done["action"] == "offset"
    event = gw.observer.wait_for("calibration", event_of("calibration", sensor="rh-z1-quiet"), after=mark).json()
    assert event["data"]["quantity"] == "humidity" and event["data"]["reference"] == 45
    history = gw.cli("calibrate", "history", "rh-z1-quiet")
    assert history.code == 0 and "humidity" in history.stdout and "offset" in history.stdout
    undo = gw.cli("calibrate", "humidity", "rh-z1-quiet", "--undo", json_output=True).json()
    assert undo["action"] == "undo"


def test_rules_reload_refused_then_accepted(gw: OutsideDaemon) -> None:
    good = gw.rules.read_text()
    gw.rules.write_text(good + "\n[[rules]]\nid = 'broken'\nwhen = 'nonsense >'\n")
    mark = gw.observer.mark()
    refused = gw.command("reload_rules", {})
    assert refused["ok"] is False and refused["error"]["code"] == "failed"
    assert "rules refused" in refused["error"]["message"]
    event = gw.observer.wait_for("rules_reloaded refused", event_of("rules_reloaded", ok=False), after=mark).json()
    assert event["severity"] == "error"
    gw.rules.write_text(good)
    accepted = gw.command("reload_rules", {})
    assert accepted["ok"] is True and accepted["result"]["rules"] > 0
    gw.observer.wait_for("rules_reloaded", event_of("rules_reloaded", ok=True), after=mark)


def test_config_reload_refused_then_accepted(gw: OutsideDaemon) -> None:
    status_before = gw.cli("status", json_output=True).json()
    gw.config.write_text(gw.good_config.replace('opening_hours = ["08:00", "22:00"]', 'opening_hours = ["8 am"]'))
    mark = gw.observer.mark()
    refused = gw.command("reload_config", {})
    assert refused["ok"] is False and refused["error"]["code"] == "failed"
    assert "site.opening_hours" in refused["error"]["message"], refused["error"]
    event = gw.observer.wait_for("config_reloaded refused", event_of("config_reloaded", ok=False), after=mark).json()
    assert event["severity"] == "error"
    assert gw.cli("status", json_output=True).json()["pid"] == status_before["pid"]

    # A valid change: the result comes first, then the gateway rebuilds on the new config and says so.
    gw.config.write_text(gw.good_config.replace("summary_interval_s = 60", "summary_interval_s = 90"))
    mark = gw.observer.mark()
    accepted = gw.command("reload_config", {})
    assert accepted["ok"] is True and accepted["result"]["applying"] is True
    new_hash = accepted["result"]["config_hash"]
    event = gw.observer.wait_for("config_reloaded", event_of("config_reloaded", ok=True), after=mark, timeout=60)
    assert event.json()["data"]["config_hash"] == new_hash
    birth = gw.observer.wait_for("the birth message with the new config",
                                 lambda m: m.topic.endswith("/status") and m.json()["config_hash"] == new_hash,
                                 after=mark, timeout=60)
    assert birth.json()["state"] == "online"
    gw.wait_until("the control socket to answer again", lambda: gw.cli("status").code == 0)
    assert gw.command("republish_state", {})["ok"] is True
