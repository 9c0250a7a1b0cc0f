"""The uplink's four parts, each on its own: command intake, outbound stream, broker session, Home Assistant.

Real parts throughout: a SQLite outbox, a real mosquitto and real MQTT clients. tests/sync/test_uplink.py
tests them together, as the daemon runs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.sync import stream as stream_module
from edge_agent.sync.commands import CommandProcessor, ResultCache
from edge_agent.sync.connection import Backoff
from edge_agent.sync.discovery import HA_STATUS, HomeAssistantAdapter
from edge_agent.sync.intake import CommandIntake, usable_response_topic
from edge_agent.sync.messages import Topics
from edge_agent.sync.outbox import MessageClass, Outbox
from edge_agent.sync.publisher import Publisher
from edge_agent.sync.session import BrokerSession, first_failure
from edge_agent.sync.stream import OutboxStream
from tests.mosquitto import Mosquitto
from tests.sync.conftest import GATEWAY, ROOT, SITE, RecordingTarget, Subscriber, WallClock, site_config, zone_view

pytestmark = pytest.mark.mqtt
TOPICS = Topics(SITE, GATEWAY)


@contextlib.asynccontextmanager
async def client_on(port: int) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5, identifier="part") as client:
        yield client


# -- command intake ------------------------------------------------------------------------------


class BrokenCache(ResultCache):
    async def get(self, rid: str) -> Any:
        raise RuntimeError("disk on fire")


async def test_intake_answers_every_request_once_where_it_may(tmp_path: Path, target: RecordingTarget) -> None:
    sent: list[tuple[str, dict[str, Any], bytes | None]] = []

    def sink(topic: str, fields: Any, correlation: bytes | None, *, sign: bool = False) -> int:
        sent.append((topic, dict(fields), correlation))
        return len(sent)

    async with Outbox(tmp_path / "o.sqlite3") as ob:
        cache = ResultCache(ob.call)
        await cache.open()
        intake = CommandIntake(CommandProcessor(target, cache), TOPICS, sink)
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic, props.CorrelationData = "central/replies", b"\x01corr"
        await intake.handle("republish_state", b'{"id": "r1", "args": {}}', props)
        await intake.handle("set_override", b"{nope")
        wild = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        wild.ResponseTopic = "central/+"
        await intake.handle("launch", b'{"id": "r2"}', wild)
        assert [s[0] for s in sent] == ["central/replies", f"{ROOT}/cmd/set_override/result",
                                        f"{ROOT}/cmd/launch/result"]
        assert sent[0][1]["ok"] is True and sent[0][2] == b"\x01corr"
        assert sent[1][1]["error"]["code"] == "bad_json" and sent[2][1]["error"]["code"] == "unknown_command"

        broken = CommandIntake(CommandProcessor(target, BrokenCache(ob.call)), TOPICS, sink)
        await broken.handle("republish_state", b'{"id": "r3", "args": {}}')
        assert sent[-1][1]["ok"] is False and "disk on fire" in sent[-1][1]["error"]["message"]
        assert intake.answered == 3 and broken.answered == 1


@pytest.mark.parametrize(("topic", "usable"), [
    ("central/replies", True), ("a/+/b", False), ("a/#", False), ("$SYS/x", False), ("", False),
    ("bad\x00topic", False), ("\ud800", False), (None, False), ("x" * 70000, False),
])
def test_which_response_topics_are_used(topic: object, usable: bool) -> None:
    assert usable_response_topic(topic) is usable


# -- outbound stream -----------------------------------------------------------------------------


@pytest.mark.parametrize("acks", ["on_publish", "publish_call"])
async def test_stream_sends_retained_then_live_then_flagged_backlog(tmp_path: Path, broker: Mosquitto, acks: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    if acks == "publish_call":  # as with an aiomqtt whose pending-publish table the stream cannot use
        monkeypatch.setattr(stream_module, "pending_publishes", lambda client: None)
    cfg = site_config(tmp_path, broker.port)
    async with Outbox(tmp_path / "o.sqlite3", flush_interval_s=0.05) as ob, \
            Subscriber(broker.port, [f"{ROOT}/#"]) as sub:
        publisher = Publisher(cfg, ob, WallClock(), version="t", config_hash="h")
        backlog = [publisher.publish_event("old", {"n": n}) for n in range(5)]
        publisher.outbox.put_retained(f"{ROOT}/seat/s1/state", b'{"seat": "s1"}')
        await ob.flush()
        stream = OutboxStream(ob, WallClock(), replay_rate_per_s=1000.0, window=4)
        stream.attach()
        async with client_on(broker.port) as client:
            boundary = stream.begin()
            assert boundary == max(backlog) + 1
            await stream.republish_retained(client)
            live = [publisher.publish_event("new", {"n": n}) for n in range(5)]
            running = asyncio.ensure_future(first_failure(*stream.tasks(client, boundary)))
            try:
                await sub.wait_for(lambda: len(sub.on("event/old")) == 5 and len(sub.on("event/new")) == 5)
                await sub.wait_for(lambda: ob.drained())
            finally:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
                stream.end()
    order = [m.topic.rsplit("/", 1)[-1] for m in sub.messages]
    assert order[0] == "state", "retained state first"
    assert [m.doc["seq"] for m in sub.on("event/new")] == live
    assert [m.doc["seq"] for m in sub.on("event/old")] == backlog
    assert all(m.doc["backfill"] for m in sub.on("event/old"))
    assert not any(m.doc["backfill"] for m in sub.on("event/new"))
    assert stream.replayed == 5


async def test_stream_ends_the_session_when_the_broker_stops_acknowledging(tmp_path: Path, broker: Mosquitto) -> None:
    """A broker that takes publishes but never acknowledges them (frozen) ends the session after
    ``timeout_s``, and every unacknowledged row stays in the outbox for the next session."""
    cfg = site_config(tmp_path, broker.port)
    async with Outbox(tmp_path / "o.sqlite3", flush_interval_s=0.05) as ob:
        publisher = Publisher(cfg, ob, WallClock(), version="t", config_hash="h")
        stream = OutboxStream(ob, WallClock(), replay_rate_per_s=1000.0, window=2, timeout_s=0.5)
        stream.attach()
        async with client_on(broker.port) as client:
            boundary = stream.begin()
            assert broker.proc is not None
            broker.proc.send_signal(signal.SIGSTOP)
            try:
                for n in range(5):
                    publisher.publish_event("unheard", {"n": n})
                await ob.flush()
                with pytest.raises(aiomqtt.MqttError, match="no PUBACK"):
                    await asyncio.wait_for(first_failure(*stream.tasks(client, boundary)), 10.0)
                assert ob.stats().depth == 5 and ob.rows_acked == 0, "nothing acknowledged, nothing deleted"
            finally:
                broker.proc.send_signal(signal.SIGCONT)
                stream.end()
        # Thawed, the broker acknowledges what it had received before this connection closed:
        # those rows are done; every other one is still in the outbox for the next session.
        left = [r.seq for r in await ob.read(0)]
        assert len(left) == ob.stats().depth == 5 - ob.rows_acked
        assert left == list(range(1, 6))[ob.rows_acked:], "acknowledged in order, the rest kept"


# -- broker session ------------------------------------------------------------------------------


async def test_session_reconnects_and_its_will_fires_when_abandoned(tmp_path: Path, broker: Mosquitto) -> None:
    cfg = site_config(tmp_path, broker.port)
    served: list[aiomqtt.Client] = []

    async def status(state: str) -> bytes:
        return json.dumps({"state": state}).encode()

    session: BrokerSession

    async def serve(client: aiomqtt.Client) -> None:
        served.append(client)
        await client.publish(TOPICS.status, await status("online"), 1, True)
        session.up()
        async for _ in client.messages:  # as the uplink's intake does: a lost connection ends the loop
            pass

    session = BrokerSession(cfg, WallClock(), status=status, serve=serve, backoff=Backoff(base_s=0.1, cap_s=0.3))
    async with Subscriber(broker.port, [TOPICS.status]) as sub:
        task = asyncio.ensure_future(session.run())
        try:
            await asyncio.wait_for(session.connected.wait(), 10)
            broker.stop()
            await sub.wait_for(lambda: not session.connected.is_set(), 10)
            assert session.last_error and "MQTT connection lost" in session.last_error
            broker.start()
            await sub.wait_for(lambda: session.sessions == 2, 15)
            await sub.wait_for(lambda: sub.client is not None and bool(sub.messages), 10)
            task.cancel()  # as a power cut (and Uplink.abandon): stop, and close the socket before any goodbye
            session.abandon()
            await sub.wait_for(lambda: any(m.doc["state"] == "offline" for m in sub.messages), 15)
        finally:
            task.cancel()
            # An abandoned session is never awaited (Uplink.abandon does not either): its client waits
            # for a goodbye from a socket that is gone.
            await asyncio.wait({task}, timeout=2.0)
    assert session.attempts >= 2 and len(served) >= 2


# -- Home Assistant adapter ----------------------------------------------------------------------


async def test_home_assistant_configs_and_light_commands(tmp_path: Path, broker: Mosquitto,
                                                         target: RecordingTarget) -> None:
    cfg = site_config(tmp_path, broker.port, mqtt={"homeassistant_discovery": True})
    adapter = HomeAssistantAdapter(cfg, TOPICS, "1.0", target)
    assert adapter.subscriptions() == [HA_STATUS, f"{ROOT}/ha/zone/+/light/set"]
    async with Subscriber(broker.port, ["homeassistant/#"]) as sub, client_on(broker.port) as client:
        await adapter.publish_configs(client)
        await sub.wait_for(lambda: len(sub.messages) == 2 * 5 + 1)  # two zones' sensors, z1's light
        assert await adapter.handle(client, HA_STATUS, b"online")
        await sub.wait_for(lambda: len(sub.messages) == 2 * (2 * 5 + 1))
        light = TOPICS.ha_light_set("z1")
        assert await adapter.handle(client, light, b'{"state": "ON", "brightness": 51}')
        assert await adapter.handle(client, light, b'{"state": "OFF"}')
        assert await adapter.handle(client, light, b"garbage")
        assert await adapter.handle(client, TOPICS.ha_light_set("z1") .replace("z1", "not a zone"), b'{"state": "ON"}')
        assert not await adapter.handle(client, f"{ROOT}/cmd/x", b"{}")
    levels = [(args.target, args.level, args.duration_s) for name, args in target.calls if name == "set_override"]
    assert levels == [("z1", pytest.approx(0.2), None), ("z1", 0.0, None)]
    off = HomeAssistantAdapter(site_config(tmp_path, broker.port), TOPICS, "1.0", target)
    assert off.subscriptions() == [] and not await off.handle(client, HA_STATUS, b"online")


# -- publisher -----------------------------------------------------------------------------------


async def test_publisher_throttles_summaries_and_answers_results_that_do_not_fit(tmp_path: Path) -> None:
    cfg = site_config(tmp_path, 1, mqtt={"summary_interval_s": 60})
    async with Outbox(tmp_path / "o.sqlite3") as ob:
        pub = Publisher(cfg, ob, WallClock(), version="t", config_hash="h")
        assert pub.publish_zone_summary(zone_view("z1", 4.0)) is not None
        assert pub.publish_zone_summary(zone_view("z1", 5.0)) is None  # not due, no significant change
        assert pub.publish_zone_summary(zone_view("z1", 9.0)) is not None  # moved by 5 people
        assert pub.publish_zone_summary(zone_view("z1", 9.0), force=True) is not None
        seq = pub.publish_result(f"{ROOT}/cmd/x/result", {"command": "x", "request_id": "r", "ok": True,
                                                           "result": ["not", "a", "dict"], "error": None}, None)
        await ob.flush()
        rows = await ob.read(after=seq - 1, limit=1)
    doc = json.loads(rows[0].payload)
    assert doc["ok"] is False and doc["error"]["code"] == "failed", doc
    assert rows[0].klass == int(MessageClass.RECORD)
