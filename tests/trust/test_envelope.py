"""The signed envelope's checks, each refusal reason, nonces across restarts, and the unsynchronised clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge_agent.trust.envelope import sign_request
from edge_agent.trust.gateway import GatewayTrust
from edge_agent.trust.keys import KeyFile
from edge_agent.trust.policy import AuditConf, SecurityConf
from tests.trust.conftest import AUDIENCE, GATEWAY, NOW, SITE, SettableClock, security

OVERRIDE = {"target_kind": "zone", "target": "z1-quiet", "level": 0.6}


def req(key: KeyFile, command: str = "set_override", rid: str = "ov-1", *, now: float = NOW, ttl: int = 300,
        nonce: str | None = None, gateway: str = AUDIENCE, **kw: Any) -> dict[str, Any]:
    return sign_request(key, command, gateway, {"id": rid, "args": OVERRIDE}, now=now, ttl_s=ttl, nonce=nonce, **kw)


async def test_a_good_request_is_accepted_and_says_who_signed(trust: GatewayTrust, keys: dict[str, KeyFile]) -> None:
    v = await trust.authorise("set_override", req(keys["operator"]), "ov-1")
    assert v.accepted and v.reason is None and v.key_id == "operator" and v.role == "operator"
    assert v.note() == {"policy": "required", "key_id": "operator", "role": "operator", "expiry_checked": True}


@pytest.mark.parametrize(("case", "reason"), [
    ("unsigned", "unsigned"), ("stranger", "unknown_key"), ("revoked", "unknown_key"), ("edited", "bad_signature"),
    ("other command", "bad_signature"), ("other gateway", "bad_signature"), ("malformed", "bad_signature"),
    ("expired", "expired"), ("future", "expired"), ("too long", "expired"), ("forbidden", "forbidden"),
])  # fmt: skip
async def test_each_refusal_names_its_reason(trust: GatewayTrust, keys: dict[str, KeyFile], case: str,
                                             reason: str) -> None:
    doc: dict[str, Any] = {
        "unsigned": lambda: {"id": "ov-1", "args": OVERRIDE},
        "stranger": lambda: req(keys["stranger"]),
        "revoked": lambda: req(keys["old"]),
        "edited": lambda: {**req(keys["central"]), "args": {**OVERRIDE, "level": 1.0}},
        "other command": lambda: req(keys["central"], "clear_override"),
        "other gateway": lambda: req(keys["central"], gateway=f"{SITE}/gw-floor-4"),
        "malformed": lambda: {**req(keys["central"]), "auth": {**req(keys["central"])["auth"], "nonce": "short"}},
        "expired": lambda: req(keys["central"], now=NOW - 1000),
        "future": lambda: req(keys["central"], now=NOW + 1000),
        "too long": lambda: req(keys["central"], ttl=7200),
        "forbidden": lambda: req(keys["publisher"]),
    }[case]()
    v = await trust.authorise("set_override", doc, "ov-1")
    assert not v.accepted and v.reason == reason, v
    assert v.message
    assert await trust.nonces_held() == 0  # a refusal changes nothing, not even the nonce store


async def test_a_nonce_is_used_once_and_a_redelivery_is_a_duplicate(trust: GatewayTrust,
                                                                   keys: dict[str, KeyFile]) -> None:
    first = req(keys["central"], nonce="n-0123456789abcdef")
    assert (await trust.authorise("set_override", first, "ov-1")).duplicate is False
    again = await trust.authorise("set_override", first, "ov-1")
    assert again.accepted and again.duplicate  # the same request delivered twice: answered, not run
    other_id = req(keys["central"], rid="ov-2", nonce="n-0123456789abcdef")
    replay = await trust.authorise("set_override", other_id, "ov-2")
    assert not replay.accepted and replay.reason == "replayed" and "ov-1" in replay.message


async def test_nonces_survive_a_restart(tmp_path: Path, keys: dict[str, KeyFile], clock: SettableClock) -> None:
    doc = req(keys["central"], nonce="n-restart-000000000")
    gt = await GatewayTrust(tmp_path, SITE, GATEWAY, security(keys), AuditConf(), clock).open()
    assert (await gt.authorise("set_override", doc, "ov-1")).accepted
    await gt.close()
    gt = await GatewayTrust(tmp_path, SITE, GATEWAY, security(keys), AuditConf(), clock).open()
    try:
        v = await gt.authorise("set_override", {**doc, "id": "ov-9"}, "ov-9")
        assert v.reason == "bad_signature"  # the id is signed: a replay cannot change it
        assert (await gt.authorise("set_override", doc, "ov-1")).duplicate
    finally:
        await gt.close()


async def test_before_the_clock_is_synchronised(tmp_path: Path, keys: dict[str, KeyFile]) -> None:
    """A Pi boots with a wrong clock: only what has certainly expired is refused, the rest runs once and says so."""
    clock = SettableClock(NOW)
    gt = await GatewayTrust(tmp_path, SITE, GATEWAY, security(keys), AuditConf(), clock).open()
    await gt.authorise("set_override", req(keys["central"], rid="seen-1"), "seen-1")  # synced: the floor is NOW
    await gt.close()
    clock = SettableClock(86400.0, synced=False)  # rebooted into 1970
    gt = await GatewayTrust(tmp_path, SITE, GATEWAY, security(keys), AuditConf(), clock).open()
    try:
        fresh = await gt.authorise("set_override", req(keys["central"], rid="b-1", now=NOW + 3600), "b-1")
        assert fresh.accepted and fresh.expiry_checked is False and fresh.note()["expiry_checked"] is False  # type: ignore[index]
        old = await gt.authorise("set_override", req(keys["central"], rid="b-2", now=NOW - 3600), "b-2")
        assert old.reason == "expired" and "not synchronised" in old.message
        again = req(keys["central"], rid="b-3", now=NOW + 3600, nonce="n-unsynced-0000000")
        assert (await gt.authorise("set_override", again, "b-3")).accepted
        assert (await gt.authorise("set_override", {**again, "id": "b-4"}, "b-4")).reason == "bad_signature"
        assert (await gt.authorise("reload_rules", req(keys["operator"], "reload_rules", "b-5", now=NOW + 3600),
                                   "b-5")).reason == "forbidden"
        assert (await gt.authorise("set_override", again, "b-3")).duplicate  # and the nonce is held
    finally:
        await gt.close()


async def test_forgotten_nonces_belong_to_requests_that_have_certainly_expired(tmp_path: Path,
                                                                              keys: dict[str, KeyFile]) -> None:
    clock = SettableClock(NOW)
    gt = await GatewayTrust(tmp_path, SITE, GATEWAY, security(keys), AuditConf(), clock).open()
    try:
        doc = req(keys["central"], nonce="n-forgotten-0000000")
        assert (await gt.authorise("set_override", doc, "ov-1")).accepted
        clock.t = NOW + 3600  # long after expiry: the next request advances the floor and prunes
        await gt.authorise("set_override", req(keys["central"], rid="x", now=clock.t), "x")
        assert await gt.nonces_held() == 1
        clock.synced = False
        assert (await gt.authorise("set_override", doc, "ov-1")).reason == "expired"
    finally:
        await gt.close()


async def test_log_only_runs_and_notes_what_it_would_refuse(tmp_path: Path, keys: dict[str, KeyFile],
                                                           clock: SettableClock) -> None:
    conf = security(keys, signatures="log-only")
    gt = await GatewayTrust(tmp_path, SITE, GATEWAY, conf, AuditConf(), clock).open()
    try:
        v = await gt.authorise("set_override", {"id": "u-1", "args": OVERRIDE}, "u-1")
        assert v.accepted and v.reason == "unsigned" and v.note()["would_refuse"] == "unsigned"  # type: ignore[index]
        reload = await gt.authorise("reload_config", {"id": "r-1", "args": {}}, "r-1")
        assert not reload.accepted and reload.reason == "unsigned"  # keys change only by a signed reload
    finally:
        await gt.close()


async def test_no_keys_means_signatures_off(tmp_path: Path, clock: SettableClock) -> None:
    conf = SecurityConf()
    assert conf.policy == "off"
    gt = await GatewayTrust(tmp_path, SITE, GATEWAY, conf, AuditConf(), clock).open()
    try:
        v = await gt.authorise("reload_config", {"id": "r-1", "args": {}}, "r-1")
        assert v.accepted and v.note() is None
    finally:
        await gt.close()


async def test_remote_tool_accounts_must_sign_on_the_socket(tmp_path: Path, keys: dict[str, KeyFile],
                                                           clock: SettableClock) -> None:
    conf = security(keys, signed_socket_users=["opsbridge"])
    gt = await GatewayTrust(tmp_path, SITE, GATEWAY, conf, AuditConf(), clock).open()
    try:
        plain = {"id": 1, "op": "status", "args": {}}
        assert await gt.authorise_socket("status", plain, "alice") is None  # a local technician
        refused = await gt.authorise_socket("status", plain, "opsbridge")
        assert refused is not None and refused.reason == "unsigned"
        signed = sign_request(keys["technician"], "calibrate", AUDIENCE,
                              {"id": 2, "op": "calibrate", "args": {"sensor": "lux-1", "quantity": "lux",
                                                                     "reference": 400}}, now=NOW)
        ok = await gt.authorise_socket("calibrate", signed, "opsbridge")
        assert ok is not None and ok.accepted and ok.role == "technician"
        operator = sign_request(keys["operator"], "calibrate", AUDIENCE, {"id": 3, "op": "calibrate", "args": {}},
                                now=NOW)
        assert (await gt.authorise_socket("calibrate", operator, "alice")).reason == "forbidden"  # type: ignore[union-attr]
    finally:
        await gt.close()


def test_role_lists_are_checked_in_the_config() -> None:
    with pytest.raises(ValueError, match=r"security.roles.operator\[1\]: unknown command 'set_overide'"):
        SecurityConf.model_validate({"roles": {"operator": ["clear_override", "set_overide"]}})
