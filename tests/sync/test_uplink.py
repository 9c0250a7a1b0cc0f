"""The uplink against a real mosquitto: outages, retained state, commands, discovery, login failures."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from drivers.errors import SyncError
from edge_agent.config import SiteConfig
from edge_agent.sync.connection import Backoff, read_credentials
from edge_agent.sync.outbox import Outbox
from edge_agent.sync.uplink import Uplink
from rules.state import SeatStatus, SeatView
from tests.mosquitto import Mosquitto
from tests.sync.conftest import (
    ROOT,
    Received,
    RecordingTarget,
    Subscriber,
    WallClock,
    publish_raw,
    site_config,
    zone_view,
)

pytestmark = pytest.mark.mqtt
# Started as root, mosquitto drops to its own user, which cannot enter pytest's 0700 tmp dirs to read
# the password file or write the session store; this keeps it as the invoking user (no-op otherwise).
AS_ROOT = "user root\n"


@asynccontextmanager
async def running(cfg: SiteConfig, state: Path, target: RecordingTarget, **kw: Any) -> AsyncIterator[Uplink]:
    kw.setdefault("backoff", Backoff(base_s=0.1, cap_s=0.5))
    async with (
        Outbox(state / "outbox.sqlite3", flush_interval_s=0.2) as ob,
        Uplink(cfg, ob, WallClock(), target, version="1.2.3", config_hash="cafe", **kw) as up,
    ):
        yield up


def check_order(messages: list[Received]) -> None:
    """Per topic and per stream (live / backfill), sequence numbers only rise, once duplicates are dropped.

    Duplicates are allowed (at-least-once: the broker redelivers what the subscriber had not acknowledged
    when the broker went down); a consumer drops them by msg_id, as docs/mqtt.md says.
    """
    last: dict[tuple[str, bool], int] = defaultdict(int)
    seen: set[str] = set()
    for m in messages:
        d = m.doc
        if d["msg_id"] in seen:
            continue
        seen.add(d["msg_id"])
        key = (m.topic, d["backfill"])
        assert d["seq"] > last[key], f"{m.topic} backfill={d['backfill']}: seq {d['seq']} after {last[key]}"
        last[key] = d["seq"]


@pytest.fixture
def persistent_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker that keeps sessions across its restarts, as a central broker would."""
    store = tmp_path / "store"
    store.mkdir()
    with Mosquitto(tmp_path / "pbroker", extra_conf=f"{AS_ROOT}persistence true\npersistence_location {store}/") as b:
        yield b


async def test_broker_outage_loses_nothing_and_replays_in_order(
    persistent_broker: Mosquitto, tmp_path: Path, target: RecordingTarget
) -> None:
    broker = persistent_broker
    cfg = site_config(tmp_path, broker.port)
    produced: dict[str, str] = {}  # msg_id -> phase
    filters = [f"{ROOT}/zone/#", f"{ROOT}/event/#"]
    async with Subscriber(broker.port, filters, persistent=True) as sub, running(cfg, tmp_path, target) as up:
        await asyncio.wait_for(up.connected.wait(), 10)

        def burst(phase: str, n: int) -> None:
            for i in range(n):
                seq = up.publish_zone_summary(zone_view(f"z{1 + i % 2}", i), force=True)
                assert seq is not None
                produced[up.outbox.msg_id("gw-1", seq)] = phase
                if i % 7 == 0:
                    produced[up.outbox.msg_id("gw-1", up.publish_event("fault", {"sensor": f"s{i}"}))] = phase

        burst("before", 30)
        await sub.wait_for(lambda: len(sub.messages) >= len(produced))
        broker.stop()
        await asyncio.sleep(0.3)
        burst("outage", 60)
        await asyncio.sleep(1.0)  # let the uplink fail a few reconnects
        broker.start()
        await asyncio.wait_for(up.connected.wait(), 15)
        burst("after", 30)

        def ids() -> Any:
            return {m.doc["msg_id"] for m in sub.messages}

        try:
            await sub.wait_for(lambda: ids() >= set(produced), 20)
        except AssertionError:
            missing = sorted(set(produced) - ids(), key=lambda i: int(i.rsplit(":", 1)[1]))
            print("MISSING", len(missing), missing[:5], missing[-5:], {produced[m] for m in missing})
            print("STATS", up.outbox.stats(), up.outbox.committed_high, up.sessions, up.attempts, up.connected.is_set())
            raise

    assert ids() == set(produced)
    assert len(ids()) == len(produced)
    check_order(sub.messages)
    by_id = {m.doc["msg_id"]: m.doc for m in sub.messages}
    assert all(by_id[i]["backfill"] for i, phase in produced.items() if phase == "outage")
    assert not any(by_id[i]["backfill"] for i, phase in produced.items() if phase == "after")
    assert up.sessions >= 2 and up.attempts > up.sessions


async def test_birth_and_retained_seat_state_are_republished_after_reconnect(
    broker: Mosquitto, tmp_path: Path, target: RecordingTarget
) -> None:
    cfg = site_config(tmp_path, broker.port)
    cfg = cfg.model_copy(update={"privacy": cfg.privacy.model_copy(update={"seat_states": "per_seat"})})
    async with running(cfg, tmp_path, target) as up:
        await asyncio.wait_for(up.connected.wait(), 10)
        up.publish_seat_state(SeatView("s1", "z1", SeatStatus.OCCUPIED, since=0.0))
        up.publish_seat_state(SeatView("s1", "z1", SeatStatus.AWAY, since=0.0))
        up.publish_seat_state(SeatView("s2", "z2", SeatStatus.FREE, since=0.0))
        async with Subscriber(broker.port, [f"{ROOT}/seat/#"]) as sub:
            await sub.wait_for(lambda: any(m.doc["status"] == "away" for m in sub.on("seat/s1/state")))
        broker.stop()  # no persistence: the restarted broker has forgotten every retained message
        broker.start()
        up.connected.clear()
        await asyncio.wait_for(up.connected.wait(), 15)
        async with Subscriber(broker.port, [f"{ROOT}/seat/#", f"{ROOT}/status"]) as late:
            await late.wait_for(lambda: len(late.on("seat/s1/state")) == 1 and late.on("status"))
            assert [m.doc["status"] for m in late.on("seat/s1/state")] == ["away"]
            assert [m.doc["status"] for m in late.on("seat/s2/state")] == ["free"]
            assert all(m.retain for m in late.messages)
            birth = late.on("status")[-1].doc
            assert birth["state"] == "online" and birth["version"] == "1.2.3" and birth["config_hash"] == "cafe"


async def test_commands_over_mqtt_with_response_topic_and_correlation(
    broker: Mosquitto, tmp_path: Path, target: RecordingTarget
) -> None:
    cfg = site_config(tmp_path, broker.port)
    async with (
        Subscriber(broker.port, [f"{ROOT}/cmd/+/result", "central/replies/#"]) as sub,
        running(cfg, tmp_path, target) as up,
    ):
        await asyncio.wait_for(up.connected.wait(), 10)
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic = "central/replies/42"
        props.CorrelationData = b"\x00corr-42"
        good = json.dumps({"id": "ov-9", "args": {"target_kind": "seat", "target": "s1", "level": 1.0}}).encode()
        await publish_raw(broker.port, f"{ROOT}/cmd/set_override", good, props)
        await sub.wait_for(lambda: len(sub.messages) == 1)
        await publish_raw(broker.port, f"{ROOT}/cmd/set_override", good)  # replayed id, default topic
        await publish_raw(broker.port, f"{ROOT}/cmd/set_override", b"{oops")
        await publish_raw(broker.port, f"{ROOT}/cmd/self_destruct", b'{"id": "x1"}')
        await sub.wait_for(lambda: len(sub.messages) == 4)

    reply = sub.messages[0]
    assert reply.topic == "central/replies/42"
    assert reply.properties.CorrelationData == b"\x00corr-42"
    assert reply.doc["ok"] and reply.doc["request_id"] == "ov-9" and not reply.doc["replayed"]
    rest = {m.doc["error"]["code"] if m.doc["error"] else "replayed": m for m in sub.messages[1:]}
    assert rest["replayed"].doc["replayed"] and rest["replayed"].topic == f"{ROOT}/cmd/set_override/result"
    assert rest["bad_json"].doc["request_id"] is None
    assert rest["unknown_command"].topic == f"{ROOT}/cmd/self_destruct/result"
    assert [c[0] for c in target.calls] == ["set_override"]


async def test_home_assistant_discovery_when_enabled_and_on_ha_restart(
    broker: Mosquitto, tmp_path: Path, target: RecordingTarget
) -> None:
    cfg = site_config(tmp_path, broker.port, mqtt={"homeassistant_discovery": True})
    async with Subscriber(broker.port, ["homeassistant/#"]) as sub, running(cfg, tmp_path, target) as up:
        await asyncio.wait_for(up.connected.wait(), 10)

        def configs() -> Any:
            return [m for m in sub.messages if m.topic.endswith("/config")]

        await sub.wait_for(lambda: len(configs()) == 11)  # 2 zones x 5 sensors + 1 light group
        await publish_raw(broker.port, "homeassistant/status", b"online")
        await sub.wait_for(lambda: len(configs()) == 22)
        await publish_raw(broker.port, f"{ROOT}/ha/zone/z1/light/set", b'{"state": "ON", "brightness": 51}')
        await publish_raw(broker.port, f"{ROOT}/ha/zone/z1/light/set", b"garbage")
        await sub.wait_for(lambda: len(target.calls) == 1)
        async with Subscriber(broker.port, ["homeassistant/#"]) as late:  # configs are retained
            await late.wait_for(lambda: len(late.messages) == 11)
            assert all(m.retain for m in late.messages)

    people = json.loads(next(m.payload for m in configs() if "z1_people" in m.topic))
    assert people["state_topic"] == f"{ROOT}/zone/z1/summary"
    assert people["value_template"] == "{{ value_json.people.value }}"
    assert people["availability"][0]["topic"] == f"{ROOT}/status"
    assert people["unique_id"] and people["device"]["identifiers"]
    light_topics = [m.topic for m in configs() if m.topic.startswith("homeassistant/light/")]
    assert light_topics and all("z1_lights" in t for t in light_topics)
    assert target.calls[0][1].level == pytest.approx(0.2)


async def test_no_discovery_by_default(broker: Mosquitto, tmp_path: Path, target: RecordingTarget) -> None:
    cfg = site_config(tmp_path, broker.port)
    async with (
        Subscriber(broker.port, ["homeassistant/#", f"{ROOT}/status"]) as sub,
        running(cfg, tmp_path, target) as up,
    ):
        await asyncio.wait_for(up.connected.wait(), 10)
        await sub.wait_for(lambda: sub.on("status"))
    assert not [m for m in sub.messages if m.topic.startswith("homeassistant/")]


@pytest.fixture
def pwfile(tmp_path: Path) -> Path:
    """A mosquitto password file with one user: gw / right."""
    path = tmp_path / "passwd"
    path.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(path), "gw", "right"], check=True, capture_output=True)
    os.chmod(path, 0o644)
    return path


async def test_refused_login_backs_off_long(tmp_path: Path, pwfile: Path, target: RecordingTarget) -> None:
    creds = tmp_path / "creds"
    creds.write_text("gw:wrong\n")
    creds.chmod(0o600)
    with Mosquitto(tmp_path / "b", extra_conf=f"{AS_ROOT}allow_anonymous false\npassword_file {pwfile}") as secured:
        cfg = site_config(tmp_path, secured.port, broker={"host": "127.0.0.1", "port": secured.port,
                                                          "credentials_file": str(creds)})  # fmt: skip
        async with running(cfg, tmp_path, target, auth_backoff_s=120.0) as up:
            for _ in range(100):
                if up.last_error:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            assert up.last_error is not None and "refused the login" in up.last_error
            assert up.attempts == 1 and not up.connected.is_set()
        creds.write_text("gw:right\n")
        async with running(cfg, tmp_path, target) as up:
            await asyncio.wait_for(up.connected.wait(), 10)


def test_world_readable_credentials_are_refused(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.write_text("gw:secret\n")
    creds.chmod(0o644)
    with pytest.raises(SyncError, match="world-readable; run 'chmod 600"):
        read_credentials(creds)
    creds.chmod(0o600)
    got = read_credentials(creds)
    assert (got.username, got.password) == ("gw", "secret")
    assert "secret" not in repr(got)
