"""Every command of docs/mqtt.md, as a central system sends it, against the real daemon on a real broker.

One daemon serves the module. Each test sends the documented examples and edge cases and checks
the documented result; every payload the broker carried is validated against docs/schemas by
the observer, and the module ends by checking that the daemon never dropped its MQTT session.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import datetime

import pytest

from tests.contract.outside import ROOT, TOPIC_ROOT, OutsideDaemon, event_of, runs_of, serving, topic_is
from tests.contract.schemas import check_request

pytestmark = [pytest.mark.slow, pytest.mark.mqtt]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutsideDaemon]:
    # A gateway that trusts a seat's absence only after an hour of watching it: its seats stay unknown
    # through the module (nobody comes before opening), so a staff release is what frees one.
    yield from serving(tmp_path_factory, "contract-commands", sensing={"away_after_s": 3600.0})


def send(gw: OutsideDaemon, name: str, args: dict[str, object], **kw: object) -> dict[str, object]:
    rid = gw.new_id(name[:6])
    problems = check_request(name, {"id": rid, "args": args})
    result = gw.command(name, args, rid=rid, **kw)  # type: ignore[arg-type]
    if result["ok"]:
        assert not problems, f"the gateway accepted a request the docs' schemas refuse: {problems}"
    return result


def lights(gw: OutsideDaemon, zone: str) -> dict[str, dict[str, object]]:
    rows = gw.cli("actuators", "list", json_output=True).json()
    return {r["id"]: r for r in rows if r["zone"] == zone and r["kind"] == "light"}


def test_set_override_until_cleared_and_clear_it(gw: OutsideDaemon) -> None:
    mark = gw.observer.mark()
    result = send(gw, "set_override", {"target_kind": "zone", "target": "z3-silent", "level": 0.6, "duration_s": None})
    assert result["ok"] is True and result["error"] is None, result
    assert result["result"]["override"] == "zone:z3-silent" and result["result"]["until"] is None
    event = gw.observer.wait_for("override_set", event_of("override_set", target="z3-silent"), after=mark).json()
    assert event["data"]["duration_s"] is None and event["data"]["level"] == 0.6
    held = gw.wait_until("the zone's lights held at 0.6",
                         lambda: (rows := lights(gw, "z3-silent")) and all(r["value"] == 0.6 for r in rows.values())
                         and rows)
    assert all(str(r["source"]).startswith("override") for r in held.values())
    gw.observer.wait_for("an actuation at the override's level",
                         lambda m: m.topic == f"{TOPIC_ROOT}/actuation" and m.json()["new"] == 0.6
                         and m.json()["priority"] == "override", after=mark)

    mark = gw.observer.mark()
    cleared = send(gw, "clear_override", {"target_kind": "zone", "target": "z3-silent"})
    assert cleared["ok"] is True and cleared["result"]["cleared"] == 1
    gw.observer.wait_for("override_cleared", event_of("override_cleared", target="z3-silent"), after=mark)
    gw.wait_until("the rules to take the lights back",
                  lambda: all(not str(r["source"]).startswith("override") for r in lights(gw, "z3-silent").values()))


def test_timed_override_expires_by_itself(gw: OutsideDaemon) -> None:
    mark = gw.observer.mark()
    result = send(gw, "set_override", {"target_kind": "zone", "target": "z4-open", "level": 0.3, "duration_s": 60})
    assert result["ok"] is True and result["result"]["until"].endswith("Z")
    gw.observer.wait_for("override_expired", lambda m: m.topic == f"{TOPIC_ROOT}/event/override_expired"
                         and m.json()["data"].get("detail") == "z4-open", after=mark, timeout=60)


@pytest.mark.parametrize(("args", "code", "fragment"), [
    ({"target_kind": "zone", "target": "z1-quiet", "level": 1.5}, "bad_request",
     "args.level: Input should be less than or equal to 1"),
    ({"target_kind": "zone", "target": "z1-quiet", "level": 0.5, "duration_s": 8 * 24 * 3600}, "bad_request",
     "args.duration_s"),
    ({"target_kind": "zone", "target": "z1-quiet", "level": 0.5, "duration_s": 0}, "bad_request", "args.duration_s"),
    ({"target_kind": "zone", "target": "z1-quite", "level": 0.5}, "failed", "closest: z1-quiet"),
    ({"target_kind": "room", "target": "z1-quiet", "level": 0.5}, "bad_request", "args.target_kind"),
    ({"target_kind": "zone", "target": "z1-quiet", "level": 0.5, "colour": "red"}, "bad_request", "args.colour"),
])
def test_refused_overrides_change_nothing_and_say_what_to_send(gw: OutsideDaemon, args: dict[str, object], code: str,
                                                              fragment: str) -> None:
    before = lights(gw, "z1-quiet")
    mark = gw.observer.mark()
    result = send(gw, "set_override", args)
    assert result["ok"] is False and result["result"] is None
    assert result["error"]["code"] == code and fragment in result["error"]["message"], result["error"]
    assert not gw.observer.seen(event_of("override_set"), after=mark)
    assert {k: v["source"] for k, v in lights(gw, "z1-quiet").items()} == {k: v["source"] for k, v in before.items()}


def test_bad_json_unknown_command_too_large_and_missing_id_then_a_good_command(gw: OutsideDaemon) -> None:
    bad = gw.command("set_override", raw=b"{not json")
    assert bad["ok"] is False and bad["request_id"] is None and bad["error"]["code"] == "bad_json"
    unknown = gw.command("launch_rockets", {"x": 1}, rid="u-1")
    assert unknown["error"]["code"] == "unknown_command" and "set_override" in unknown["error"]["message"]
    missing = gw.command("republish_state", raw=b'{"args": {}}')
    assert missing["error"]["code"] == "bad_request" and "id" in missing["error"]["message"]
    big = json.dumps({"id": "big-1", "args": {"pad": "x" * (520 * 1024)}}).encode()
    large = gw.command("reload_rules", raw=big)
    assert large["error"]["code"] == "too_large"
    good = send(gw, "republish_state", {})
    assert good["ok"] is True


def test_a_resent_id_is_answered_from_the_cache_and_not_run_again(gw: OutsideDaemon) -> None:
    rid = gw.new_id("replay")
    args = {"target_kind": "actuator", "target": "light-z5-quiet-1", "level": 0.4, "duration_s": 120}
    mark = gw.observer.mark()
    first = gw.command("set_override", args, rid=rid)
    again = gw.command("set_override", args, rid=rid)
    assert first["ok"] is True and first["replayed"] is False
    assert again["replayed"] is True and again["result"] == first["result"] and again["msg_id"] != first["msg_id"]
    send(gw, "clear_override", {"target_kind": "actuator", "target": "light-z5-quiet-1"})
    assert runs_of(gw.observer, "override_set", "light-z5-quiet-1", until="override_cleared", after=mark) == 1


def test_response_topic_and_correlation_data_are_honoured(gw: OutsideDaemon) -> None:
    reply = "contract/replies/central-7"
    correlation = b"\x00\x01corr-\xff"
    result = send(gw, "republish_state", {}, response_topic=reply, correlation=correlation)
    assert result["ok"] is True
    msg = gw.observer.wait_for("the reply with correlation data", lambda m: m.topic == reply)
    assert msg.correlation == correlation
    # A wildcard response topic cannot be published to: the result goes to the default topic.
    rid = gw.new_id("wild")
    mark = gw.observer.mark()
    gw.publish(f"{TOPIC_ROOT}/cmd/republish_state", json.dumps({"id": rid, "args": {}}),
               response_topic="contract/replies/+")
    gw.observer.wait_for("the result on the default topic", lambda m: m.topic == f"{TOPIC_ROOT}/cmd/republish_state/"
                         "result" and m.json()["request_id"] == rid, after=mark)


def test_republish_state_sends_the_calendar_and_every_zone_but_no_seat_under_the_coarse_default(
        gw: OutsideDaemon) -> None:
    mark = gw.observer.mark()
    assert send(gw, "republish_state", {})["ok"] is True
    zones = ["z1-quiet", "z2-group", "z3-silent", "z4-open", "z5-quiet", "z6-lounge"]
    for zone in zones:
        summary = gw.observer.wait_for(f"a summary of {zone}", topic_is(f"zone/{zone}/summary"), after=mark).json()
        assert summary["free"] is not None and summary["counts_policy"] == "exact"  # seat counts per zone
    gw.observer.wait_for("the calendar", topic_is("calendar"), after=mark)
    # per-seat states only where [privacy] per_seat_zones asks (tests/contract/test_privacy.py republishes them)
    assert not gw.observer.seen(lambda m: m.topic.startswith(f"{TOPIC_ROOT}/seat/"))


def test_set_calendar_is_retained_and_null_hands_back_to_the_config(gw: OutsideDaemon) -> None:
    first = json.loads(gw.retained(f"{TOPIC_ROOT}/calendar")[f"{TOPIC_ROOT}/calendar"])
    assert first["source"] == "config"
    calendar = {"hours": {"sun": "closed"}, "closures": [{"date": "2025-04-18", "name": "Good Friday"}],
                "periods": [{"start": "2025-03-10", "end": "2025-03-21", "type": "exam", "name": "midterms"}]}
    mark = gw.observer.mark()
    done = send(gw, "set_calendar", {"calendar": calendar})
    assert done["ok"] is True and done["result"]["source"] == "command", done  # type: ignore[index]
    event = gw.observer.wait_for("calendar_set", event_of("calendar_set", source="command"), after=mark).json()
    assert event["data"]["digest"] == done["result"]["digest"]  # type: ignore[index]
    now = json.loads(gw.retained(f"{TOPIC_ROOT}/calendar")[f"{TOPIC_ROOT}/calendar"])
    assert now["source"] == "command" and now["calendar"]["closures"][0]["name"] == "Good Friday"
    bad = send(gw, "set_calendar", {"calendar": {"hours": {"someday": "closed"}}})
    assert bad["ok"] is False and bad["error"]["code"] == "bad_request", bad  # type: ignore[index]
    assert "args.calendar.hours" in bad["error"]["message"]  # type: ignore[index]
    back = send(gw, "set_calendar", {"calendar": None})
    assert back["ok"] is True and back["result"]["digest"] == first["digest"]  # type: ignore[index]


def test_consent_preferences_and_withdrawal(gw: OutsideDaemon) -> None:
    consent = send(gw, "consent_set", {"subject": "p-5c1e", "scopes": ["desk_preferences", "lamp_preferences"]})
    assert consent["ok"] and consent["result"]["receipt"].startswith("c-")
    assert consent["result"]["scopes"] == ["desk_preferences", "lamp_preferences"]
    pref = send(gw, "preferences_set", {"subject": "p-5c1e", "desk_height_mm": 740, "lamp_level": 0.4})
    assert pref["ok"] is True and pref["result"] == {"stored": ["desk_height_mm", "lamp_level"],
                                                     "receipt": consent["result"]["receipt"]}  # no value echoed
    low = send(gw, "preferences_set", {"subject": "p-5c1e", "desk_height_mm": 500})
    assert low["error"]["code"] == "bad_request" and "args.desk_height_mm" in low["error"]["message"]
    scope = send(gw, "consent_set", {"subject": "p-5c1e", "scopes": ["location"]})
    assert scope["error"]["code"] == "bad_request"
    gone = send(gw, "consent_withdraw", {"subject": "p-5c1e"})
    assert gone["ok"] is True and gone["result"]["preferences_deleted"] is True and gone["result"]["tag_forgotten"]
    after = send(gw, "preferences_set", {"subject": "p-5c1e", "lamp_level": 0.5})
    assert after["ok"] is False  # no consent on record any more: nothing stored


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def test_model_upload_in_any_order_then_a_refused_one(gw: OutsideDaemon) -> None:
    model = (ROOT / "models" / "default.onnx").read_bytes()
    digest = hashlib.sha256(model).hexdigest()
    parts = _chunks(model, 256 * 1024)
    order = list(reversed(range(len(parts))))
    mark = gw.observer.mark()
    last: dict[str, object] = {}
    for n, index in enumerate(order):
        last = send(gw, "update_model", {"transfer_id": "m7", "index": index, "count": len(parts),
                                         "total_size": len(model), "sha256": digest,
                                         "data": base64.b64encode(parts[index]).decode()}, timeout=60)
        assert last["ok"] is True, last
        if n < len(parts) - 1:
            assert last["result"] == {"transfer_id": "m7", "received": n + 1, "of": len(parts)}
    assert last["result"]["complete"] is True and str(last["result"]["serving"]).startswith("model ")
    gw.observer.wait_for("model_updated", event_of("model_updated", ok=True), after=mark)

    # A digest that does not match abandons the transfer with bad_request.
    wrong = send(gw, "update_model", {"transfer_id": "m8", "index": 0, "count": 1, "total_size": 4,
                                      "sha256": "0" * 64, "data": base64.b64encode(b"abcd").decode()})
    assert wrong["error"]["code"] == "bad_request" and "SHA-256" in wrong["error"]["message"]
    # A file that is not a model: refused, the old one keeps serving, and an event says so.
    junk = b"not an onnx model" * 10
    mark = gw.observer.mark()
    refused = send(gw, "update_model", {"transfer_id": "m9", "index": 0, "count": 1, "total_size": len(junk),
                                        "sha256": hashlib.sha256(junk).hexdigest(),
                                        "data": base64.b64encode(junk).decode()})
    assert refused["ok"] is False and refused["error"]["code"] == "failed"
    assert last["result"]["serving"] in refused["error"]["message"]
    event = gw.observer.wait_for("model_updated refused", event_of("model_updated", ok=False), after=mark).json()
    assert event["severity"] == "warning" and event["data"]["serving"] == last["result"]["serving"]


def test_the_payloads_seen_match_the_documented_schemas(gw: OutsideDaemon) -> None:
    gw.observer.wait_for("a health message", topic_is("health"), timeout=30)
    seen = {m.topic.removeprefix(f"{TOPIC_ROOT}/").split("/")[0] for m in gw.observer.seen(
        lambda m: m.topic.startswith(TOPIC_ROOT))}
    assert {"status", "health", "zone", "event", "actuation", "cmd"} <= seen, seen
    assert "seat" not in seen, "no per-seat state under the coarse default (test_privacy.py checks their schema)"
    forecasts = gw.observer.seen(lambda m: m.topic.endswith("/forecast"))
    assert forecasts, "a forecast is published at start"
    assert not gw.observer.problems, "\n".join(gw.observer.problems[:10])


def test_availability_is_retained_per_zone_and_follows_a_release(gw: OutsideDaemon) -> None:
    """``zone/{zone}/availability``: retained, one per zone, counts that add up, seat ids and nothing personal;
    ``release_seat`` frees a seat, says so (``seat_released``) and the zone's availability shows it free within
    seconds, retained for whoever looks next."""
    topic = f"{TOPIC_ROOT}/zone/+/availability"
    retained = gw.wait_until("availability for every zone", lambda: (got := gw.retained(topic)) and len(got) == 6
                             and got)
    docs = {t.split("/")[-2]: json.loads(payload) for t, payload in retained.items()}
    for zone, doc in docs.items():
        assert doc["zone"] == zone
        assert doc["free"] == len(doc["free_seat_ids"]) and doc["ready_soon"] == len(doc["ready_soon_ids"])
        assert doc["free"] + doc["occupied"] + doc["away"] + doc["ghost"] + doc["unknown"] == doc["seats_total"]
        assert not {"tag", "tags", "pseudonym", "since", "x", "y"} & set(doc), doc
    seats = gw.cli("seats", "list", json_output=True).json()["seats"]
    taken = min(s for s, status in seats.items() if status == "unknown")  # not yet trusted free: see the fixture
    mark = gw.observer.mark()
    result = send(gw, "release_seat", {"seat": taken})
    assert result["ok"] is True, result
    assert result["result"] == {"seat": taken, "zone": result["result"]["zone"], "source": "mqtt", "was": "unknown",
                                "ghost_to_release_s": None}  # fmt: skip
    zone = str(result["result"]["zone"])
    event = gw.observer.wait_for("seat_released", event_of("seat_released", seat=taken), after=mark).json()
    assert event["data"] == {**result["result"]}
    shown = gw.observer.wait_for(f"{zone}'s availability with {taken} free", lambda m: m.topic == f"{TOPIC_ROOT}/zone/"
                                 f"{zone}/availability" and taken in m.json()["free_seat_ids"], after=mark).json()
    before = docs[zone]
    assert (shown["free"], shown["unknown"]) == (before["free"] + 1, before["unknown"] - 1)
    assert shown["seq"] > event["seq"]  # published after the release, by the pass it woke
    assert _ts(shown) - _ts(event) <= 5.0  # simulated seconds: "within seconds of a change"
    again = json.loads(gw.retained(f"{TOPIC_ROOT}/zone/{zone}/availability")[f"{TOPIC_ROOT}/zone/{zone}/availability"])
    assert taken in again["free_seat_ids"]
    assert gw.cli("seats", "list", json_output=True).json()["seats"][taken] == "free"  # and it stays free
    refused = send(gw, "release_seat", {"seat": "S9999"})
    assert refused["ok"] is False and refused["error"]["code"] == "failed", refused
    assert refused["error"]["message"].startswith("unknown seat 'S9999'; closest: ")


def _ts(doc: dict[str, object]) -> float:
    return datetime.fromisoformat(str(doc["ts"]).replace("Z", "+00:00")).timestamp()
