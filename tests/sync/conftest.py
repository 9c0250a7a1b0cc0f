"""Fixtures for the MQTT sync tests: a minimal site config, a recording command target, a subscriber."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from drivers.errors import RulesError
from edge_agent.config import SiteConfig, parse_config
from edge_agent.sync.commands import (
    ClearOverride,
    ConsentSet,
    ConsentWithdraw,
    PreferencesSet,
    SetCalendar,
    SetOverride,
)
from rules.state import Measure, Quality, ZoneView

SITE, GATEWAY = "test-site", "gw-1"
ROOT = f"library/v1/{SITE}/{GATEWAY}"


def site_config(state_dir: Path, port: int, *, mqtt: dict[str, Any] | None = None, **extra: Any) -> SiteConfig:
    """A small valid floor: two zones, one light in z1, the broker on ``port``."""
    square = [[0, 0], [10, 0], [10, 10]]
    doc: dict[str, Any] = {
        "site": {"id": SITE, "floor": "1", "gateway": GATEWAY, "name": "Test floor"},
        "storage": {"state_dir": str(state_dir)},
        "broker": {"host": "127.0.0.1", "port": port, "keepalive_s": 5},
        "mqtt": {"replay_rate_per_s": 5000.0, **(mqtt or {})},
        "zones": [{"id": "z1", "polygon": square}, {"id": "z2", "polygon": square}],
        "actuators": [{"id": "light-1", "kind": "light", "zone": "z1", "pin": 12}],
        **extra,
    }
    return parse_config(doc)


class WallClock:
    """Real time, with a settable ``synced`` flag."""

    def __init__(self, synced: bool = True) -> None:
        self.synced = synced

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


@dataclass
class RecordingTarget:
    """A CommandTarget that records every call; ``fail`` makes the next call raise a project error."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    fail: str | None = None

    def _record(self, name: str, args: Any) -> dict[str, Any]:
        self.calls.append((name, args))
        if self.fail is not None:
            message, self.fail = self.fail, None
            raise RulesError(message)
        return {"done": name}

    async def set_override(self, args: SetOverride) -> dict[str, Any]:
        return self._record("set_override", args)

    async def clear_override(self, args: ClearOverride) -> dict[str, Any]:
        return self._record("clear_override", args)

    async def release_seat_by_command(self, args: Any) -> dict[str, Any]:
        return self._record("release_seat", args)

    async def reload_rules(self) -> dict[str, Any]:
        return self._record("reload_rules", None)

    async def reload_config(self) -> dict[str, Any]:
        return self._record("reload_config", None)

    async def update_model(self, data: bytes, sha256: str) -> dict[str, Any]:
        self._record("update_model", (data, sha256))
        return {"bytes": len(data)}

    async def republish_state(self) -> dict[str, Any]:
        return self._record("republish_state", None)

    async def consent_set(self, args: ConsentSet) -> dict[str, Any]:
        return self._record("consent_set", args)

    async def consent_withdraw(self, args: ConsentWithdraw) -> dict[str, Any]:
        return self._record("consent_withdraw", args)

    async def preferences_set(self, args: PreferencesSet) -> dict[str, Any]:
        return self._record("preferences_set", args)

    async def set_calendar(self, args: SetCalendar) -> dict[str, Any]:
        return self._record("set_calendar", args)


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    properties: Any

    @property
    def doc(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """A real MQTT 5 client collecting everything under some filters."""

    def __init__(self, port: int, filters: list[str], *, persistent: bool = False) -> None:
        self.port = port
        self.filters = filters
        self.persistent = persistent  # keep the broker session (and its queue) across reconnects
        self.messages: list[Received] = []
        self._task: asyncio.Task[None] | None = None
        self.client: aiomqtt.Client | None = None
        self._ready = asyncio.Event()

    async def _run(self) -> None:
        while True:
            try:
                props = None
                if self.persistent:
                    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                    props.SessionExpiryInterval = 300
                async with aiomqtt.Client(
                    "127.0.0.1",
                    self.port,
                    protocol=aiomqtt.ProtocolVersion.V5,
                    identifier=f"sub-{id(self)}",
                    clean_start=not self.persistent,
                    properties=props,
                ) as client:
                    self.client = client
                    for f in self.filters:
                        await client.subscribe(f, qos=1)
                    self._ready.set()
                    async for m in client.messages:
                        payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
                        self.messages.append(Received(m.topic.value, payload, bool(m.retain), m.properties))
            except aiomqtt.MqttError:
                self.client = None
                await asyncio.sleep(0.2)

    async def __aenter__(self) -> Subscriber:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def on(self, suffix: str) -> list[Received]:
        return [m for m in self.messages if m.topic == f"{ROOT}/{suffix}"]

    async def wait_for(self, predicate: Any, within_s: float = 15.0) -> None:
        """Poll until ``predicate()`` is true; fail the test (with what was seen) otherwise."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if predicate():
                return
            await asyncio.sleep(0.05)
        topics = sorted({m.topic for m in self.messages})
        raise AssertionError(f"condition not met within {within_s}s; saw {len(self.messages)} messages on {topics}")


async def publish_raw(port: int, topic: str, payload: bytes, properties: Any = None) -> None:
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.publish(topic, payload, qos=1, properties=properties)


def zone_view(zone: str, people: float, free: int = 10) -> ZoneView:
    good = Quality.GOOD
    return ZoneView(
        id=zone,
        people=Measure(people, good),
        seats_total=20,
        free=free,
        occupied=20 - free,
        away=0,
        ghost=0,
        unknown=0,
        lux=Measure(420.0, good),
        temperature=Measure(21.5, good),
        humidity=Measure(40.0, good),
        co2=Measure(650.0, good),
        occupancy_healthy=True,
    )


@pytest.fixture
def target() -> RecordingTarget:
    return RecordingTarget()


@pytest.fixture
async def no_leaks() -> AsyncIterator[None]:
    yield
