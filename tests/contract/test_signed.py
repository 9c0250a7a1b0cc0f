"""Signed commands against the real daemon on a real broker: each refusal reason changes nothing, a signed
command delivered twice runs once, signed results and audit heads verify with the gateway's public key, the
audit log of the running daemon verifies and names who did what, and a key revoked with the CLI is refused.

One daemon serves the module; its site config trusts one key per role. Requests are signed as docs/mqtt.md
shows a central system doing it. The daemon's clock is the simulation's, so requests are timed by it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pwd
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from nacl.signing import VerifyKey

from edge_agent.control.client import ControlClient
from edge_agent.control.wire import state_dir_socket
from edge_agent.trust.artefacts import sign_artefact
from edge_agent.trust.audit import head_statement
from edge_agent.trust.canonical import canonical
from edge_agent.trust.envelope import sign_request
from edge_agent.trust.keys import KeyFile, new_key
from models import DEFAULT_MODEL_PATH
from tests.contract.outside import TOPIC_ROOT, OutsideDaemon, event_of, runs_of, serving

pytestmark = [pytest.mark.slow, pytest.mark.mqtt]

AUDIENCE = "central-library/gw-floor-3"
KEYS = {name: new_key(name) for name in ("central-1", "operator-1", "tech-1", "publisher-1", "stranger")}
ROLES = {"central-1": "central", "operator-1": "operator", "tech-1": "technician", "publisher-1": "model-publisher"}
TAIL = "\n[security]\nsignatures = \"required\"\n" + "".join(
    f'\n[[security.keys]]\nid = "{k}"\nrole = "{r}"\npublic_key = "{KEYS[k].public}"\n' for k, r in ROLES.items())
OVERRIDE = {"target_kind": "zone", "target": "z1-quiet", "level": 0.55, "duration_s": 600}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutsideDaemon]:
    yield from serving(tmp_path_factory, "contract-signed", tail=TAIL)


def gateway_now(gw: OutsideDaemon) -> float:
    """The daemon's wall clock (simulated), from its latest message and the wall time since."""
    last = gw.observer.seen(lambda m: m.topic.startswith(TOPIC_ROOT) and b'"ts"' in m.payload)[-1]
    ts = datetime.fromisoformat(last.json()["ts"].replace("Z", "+00:00")).timestamp()
    return ts + (time.monotonic() - last.at) * gw.speed


def signed(gw: OutsideDaemon, key: KeyFile, name: str, args: dict[str, Any], *, rid: str | None = None,
           **kw: Any) -> tuple[str, bytes]:
    rid = rid or gw.new_id(name[:6])
    doc = sign_request(key, name, AUDIENCE, {"id": rid, "args": args}, now=gateway_now(gw), **kw)
    return rid, json.dumps(doc, indent=1).encode()


def send(gw: OutsideDaemon, name: str, rid: str, raw: bytes) -> dict[str, Any]:
    mark = gw.observer.mark()
    gw.publish(f"{TOPIC_ROOT}/cmd/{name}", raw)
    return gw.observer.wait_for(f"the result of {rid}", lambda m: m.topic == f"{TOPIC_ROOT}/cmd/{name}/result"
                                and m.json().get("request_id") == rid, after=mark).json()


def sources(gw: OutsideDaemon) -> dict[str, object]:
    return {r["id"]: r["source"] for r in gw.cli("actuators", "list", json_output=True).json()}


def head(gw: OutsideDaemon) -> dict[str, Any]:
    return json.loads(gw.retained(f"{TOPIC_ROOT}/audit/head")[f"{TOPIC_ROOT}/audit/head"])


def refusal(gw: OutsideDaemon, case: str) -> tuple[str, bytes]:
    central = KEYS["central-1"]
    if case == "unsigned":
        rid = gw.new_id("u")
        return rid, json.dumps({"id": rid, "args": OVERRIDE}).encode()
    if case == "unknown_key":
        return signed(gw, KEYS["stranger"], "set_override", OVERRIDE)
    if case == "bad_signature":
        rid, raw = signed(gw, central, "set_override", OVERRIDE)
        doc = json.loads(raw)
        doc["args"]["level"] = 1.0
        return rid, json.dumps(doc).encode()
    if case == "expired":
        rid = gw.new_id("x")
        doc = sign_request(central, "set_override", AUDIENCE, {"id": rid, "args": OVERRIDE},
                           now=gateway_now(gw) - 3600)
        return rid, json.dumps(doc).encode()
    if case == "replayed":
        _, first = signed(gw, central, "republish_state", {}, nonce="contract-nonce-000001", rid="rp-first")
        assert send(gw, "republish_state", "rp-first", first)["ok"] is True
        return signed(gw, central, "set_override", OVERRIDE, nonce="contract-nonce-000001")
    return signed(gw, KEYS["publisher-1"], "set_override", OVERRIDE)  # forbidden: a publisher's key


@pytest.mark.parametrize("reason", ["unsigned", "unknown_key", "bad_signature", "expired", "replayed", "forbidden"])
def test_each_refusal_names_its_reason_and_changes_nothing(gw: OutsideDaemon, reason: str) -> None:
    before = sources(gw)
    rid, raw = refusal(gw, reason)
    mark = gw.observer.mark()
    result = send(gw, "set_override", rid, raw)
    assert result["ok"] is False and result["result"] is None and result["error"]["code"] == reason, result
    assert result["auth"]["policy"] == "required"
    time.sleep(1.0)
    assert not gw.observer.seen(event_of("override_set"), after=mark)
    assert sources(gw) == before


def test_home_assistant_cannot_sign_so_its_light_commands_are_refused(gw: OutsideDaemon) -> None:
    before = sources(gw)
    mark = gw.observer.mark()
    gw.publish(f"{TOPIC_ROOT}/ha/zone/z2-group/light/set", json.dumps({"state": "ON", "brightness": 200}))
    gw.wait_until("the refusal in the audit log", lambda: any(
        json.loads(line)["actor"] == "homeassistant" and json.loads(line)["data"]["code"] == "unsigned"
        for line in gw.cli("audit", "show", "--kind", "command", "--json").stdout.splitlines()))
    assert not gw.observer.seen(event_of("override_set"), after=mark)
    assert sources(gw) == before


def test_a_signed_command_delivered_twice_runs_once(gw: OutsideDaemon) -> None:
    rid, raw = signed(gw, KEYS["operator-1"], "set_override", {**OVERRIDE, "target": "z4-open"})
    mark = gw.observer.mark()
    first = send(gw, "set_override", rid, raw)
    again = send(gw, "set_override", rid, raw)  # the broker redelivers the very same bytes
    assert first["ok"] is True and first["replayed"] is False and first["auth"]["key_id"] == "operator-1"
    assert again["ok"] is True and again["replayed"] is True and again["result"] == first["result"]
    rid, raw = signed(gw, KEYS["operator-1"], "clear_override", {"target_kind": "zone", "target": "z4-open"})
    assert send(gw, "clear_override", rid, raw)["ok"] is True
    assert runs_of(gw.observer, "override_set", "z4-open", until="override_cleared", after=mark) == 1


def test_staff_release_a_seat_with_a_signed_release_seat(gw: OutsideDaemon) -> None:
    """An operator's signed ``release_seat`` frees the seat and the audit log names the key; a key whose role
    may not release seats changes nothing."""
    seat = "S042"
    mark = gw.observer.mark()
    rid, raw = signed(gw, KEYS["publisher-1"], "release_seat", {"seat": seat})
    refused = send(gw, "release_seat", rid, raw)
    assert refused["ok"] is False and refused["error"]["code"] == "forbidden", refused
    rid, raw = signed(gw, KEYS["operator-1"], "release_seat", {"seat": seat})
    done = send(gw, "release_seat", rid, raw)
    assert done["ok"] is True and done["auth"]["key_id"] == "operator-1", done
    assert (done["result"]["seat"], done["result"]["source"]) == (seat, "mqtt")
    event = gw.observer.wait_for("seat_released", event_of("seat_released", seat=seat), after=mark).json()
    assert event["data"] == done["result"]
    assert len(gw.observer.seen(event_of("seat_released", seat=seat), after=mark)) == 1  # the refused one: none
    rows = [json.loads(line) for line in gw.cli("audit", "show", "--kind", "command", "--json").stdout.splitlines()]
    mine = [(r["actor"], r["data"]["ok"]) for r in rows if r["data"].get("command") == "release_seat"]
    assert mine == [("publisher-1", False), ("operator-1", True)], mine


def test_signed_results_and_audit_heads_verify_with_the_gateway_key(gw: OutsideDaemon) -> None:
    first = head(gw)
    public = VerifyKey(base64.b64decode(first["public_key"]))
    statement = head_statement(first["gateway"], first["audit_seq"], first["hash"])
    public.verify(statement, base64.b64decode(first["signature"]))
    assert first["gateway"] == AUDIENCE and first["key_id"].startswith("gw-floor-3-")
    rid, raw = signed(gw, KEYS["central-1"], "republish_state", {}, sign_result=True)
    result = send(gw, "republish_state", rid, raw)
    sig = result.pop("signature")
    result.pop("backfill")
    assert sig["key_id"] == first["key_id"]
    public.verify(canonical(result), base64.b64decode(sig["value"]))
    later = gw.wait_until("a newer audit head", lambda: (h := head(gw))["audit_seq"] > first["audit_seq"] and h)
    public.verify(head_statement(AUDIENCE, later["audit_seq"], later["hash"]), base64.b64decode(later["signature"]))
    shown = gw.cli("keys", "show", json_output=True).json()
    assert shown["gateway"]["public_key"] == first["public_key"] and shown["policy"] == "required"
    assert {k["id"]: k["role"] for k in shown["keys"]} == ROLES


def test_a_model_signed_by_a_key_without_the_role_is_refused_before_it_is_written(gw: OutsideDaemon) -> None:
    data = DEFAULT_MODEL_PATH.read_bytes()[: 200 * 1024]
    args = {"transfer_id": "mx", "index": 0, "count": 1, "total_size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "data": base64.b64encode(data).decode(),
            "signature": sign_artefact(KEYS["central-1"], "model", data)}
    rid, raw = signed(gw, KEYS["publisher-1"], "update_model", args)
    result = send(gw, "update_model", rid, raw)
    assert result["error"]["code"] == "forbidden" and "model-publisher" in result["error"]["message"]
    assert not (gw.state_dir / "model.onnx").exists()


def test_a_remote_tool_signs_its_socket_requests(gw: OutsideDaemon) -> None:
    sock = state_dir_socket(gw.state_dir)
    request = {"id": 7, "op": "actuator_test", "args": {"actuator": "light-z5-quiet-1", "level": 0.3,
                                                        "duration_s": 5}}
    with ControlClient(sock) as client:
        ok = client.exchange(sign_request(KEYS["tech-1"], "actuator_test", AUDIENCE, request, now=gateway_now(gw)))
        assert ok["ok"] is True, ok
        no = client.exchange(sign_request(KEYS["operator-1"], "actuator_test", AUDIENCE, {**request, "id": 8},
                                          now=gateway_now(gw)))
        assert no["ok"] is False and no["code"] == "forbidden" and "may not send 'actuator_test'" in no["error"]


def test_the_running_daemons_audit_log_verifies_and_says_who_did_what(gw: OutsideDaemon) -> None:
    assert gw.cli("actuators", "test", "light-z5-quiet-1", "--level", "0.2", "--for", "5s").code == 0
    done = gw.cli("audit", "verify")
    assert done.code == 0 and "records verify" in done.stdout, done.stderr
    rows = [json.loads(line) for line in gw.cli("audit", "show", "--kind", "command", "--json").stdout.splitlines()]
    refused = {r["data"]["code"]: r["actor"] for r in rows if not r["data"]["ok"] and r["actor"] != "homeassistant"}
    assert {"unsigned", "unknown_key", "bad_signature", "expired", "replayed", "forbidden"} <= set(refused)
    assert refused["unsigned"] == "unsigned" and refused["unknown_key"] == "stranger"
    assert any(r["actor"] == "operator-1" and r["data"]["command"] == "set_override" and r["data"]["ok"] for r in rows)
    me = pwd.getpwuid(os.getuid()).pw_name
    tests = [json.loads(line) for line in gw.cli("audit", "show", "--kind", "override", "--json").stdout.splitlines()]
    assert any(r["actor"] == me and r["data"]["op"] == "actuator_test" for r in tests)
    assert any(r["actor"] == f"tech-1 via {me}" for r in tests)


def test_a_key_revoked_with_the_cli_is_refused_after_the_reload(gw: OutsideDaemon) -> None:
    rid, raw = signed(gw, KEYS["central-1"], "reload_config", {})
    unsigned = gw.command("reload_config", {})
    assert unsigned["error"]["code"] == "unsigned"  # the config, and so the keys, change only by a signed reload
    mark = gw.observer.mark()
    done = gw.cli("keys", "revoke", "operator-1")
    assert done.code == 0 and "revoked 'operator-1'" in done.stdout, done.stderr
    gw.observer.wait_for("the reload", event_of("config_reloaded", ok=True), after=mark, timeout=60)
    gw.observer.wait_for("the gateway back online", lambda m: m.topic == f"{TOPIC_ROOT}/status"
                         and m.json()["state"] == "online", after=mark, timeout=60)
    rid, raw = signed(gw, KEYS["operator-1"], "republish_state", {})
    result = send(gw, "republish_state", rid, raw)
    assert result["error"]["code"] == "unknown_key" and "revoked" in result["error"]["message"]
    config = [json.loads(line) for line in gw.cli("audit", "show", "--kind", "config", "--json").stdout.splitlines()]
    assert config[-1]["data"]["keys"]["operator-1"] == "revoked" and config[-1]["data"]["ok"] is True
    assert any(r["data"].get("op") == "reload_config" for r in config)  # the technician's reload, by OS user

    new = new_key("operator-2")  # rotation: trust the new key, then it signs
    mark = gw.observer.mark()
    trusted = gw.cli("keys", "trust", "operator-2", "--role", "operator", "--public-key", new.public)
    assert trusted.code == 0 and "reloading" in trusted.stdout, trusted.stderr
    gw.observer.wait_for("the second reload", event_of("config_reloaded", ok=True), after=mark, timeout=60)
    gw.observer.wait_for("online again", lambda m: m.topic == f"{TOPIC_ROOT}/status" and m.json()["state"] == "online",
                         after=mark, timeout=60)
    rid, raw = signed(gw, new, "republish_state", {})
    assert send(gw, "republish_state", rid, raw)["ok"] is True
    again = gw.cli("config", "reload")
    assert again.code == 0 and again.stdout.startswith("reloading: config"), again.stderr
    gw.observer.wait_for("online after the third reload", lambda m: m.topic == f"{TOPIC_ROOT}/status"
                         and m.json()["state"] == "online" and m.at > time.monotonic() - 60, timeout=60)
