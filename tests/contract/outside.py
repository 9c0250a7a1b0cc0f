"""The real daemon, driven only from outside: ``edge-agent run --simulate`` as a process, a private
mosquitto, an MQTT 5 observer on ``#`` and the ``edge-agent`` CLI as a subprocess.

Nothing here reaches into the daemon's objects. A test sees what a central system sees (the
broker's messages, validated against docs/schemas) and what a technician sees (the CLI's output,
finding the control socket through ``--config`` as docs/technician.md says). The floor is the
example floor with Home Assistant discovery on and a rule file of its own, so reloads can be
tried with good and broken files; the simulated clock runs at ``speed`` simulated seconds per
wall second, so a minute of the floor's time is a few wall seconds.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.contract.schemas import check_message
from tests.control.simfloor import SCENARIO as LIVE_SCENARIO
from tests.control.simfloor import CliResult as CliRun
from tests.control.simfloor import arrived
from tests.mosquitto import Mosquitto

ROOT = Path(__file__).resolve().parents[2]
SITE, GATEWAY = "central-library", "gw-floor-3"
TOPIC_ROOT = f"library/v1/{SITE}/{GATEWAY}"
T = TypeVar("T")

SCENARIO = LIVE_SCENARIO.replace("[sim]", "{events}\n[sim]")  # the CLI tests' floor, plus events

CONFIG_TAIL = """
[mqtt]
homeassistant_discovery = true
summary_interval_s = 60
health_interval_s = 60

[rules]
file = "rules.toml"
"""


@dataclass(frozen=True)
class Message:
    """One message the observer saw."""

    topic: str
    payload: bytes
    retain: bool
    correlation: bytes | None
    at: float  # observer's monotonic clock

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Observer:
    """An MQTT 5 client subscribed to ``#`` that keeps every message and checks each against its schema."""

    port: int
    messages: list[Message] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="contract-observer", protocol=mqtt.MQTTv5)
        subscribed = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.connect("127.0.0.1", self.port)
        self.client.subscribe("#", qos=1)
        self.client.loop_start()
        assert subscribed.wait(10), "the observer could not subscribe"

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        correlation = getattr(msg.properties, "CorrelationData", None) if msg.properties else None
        message = Message(msg.topic, bytes(msg.payload), bool(msg.retain), correlation, time.monotonic())
        problem = check_message(message.topic, message.payload, TOPIC_ROOT)
        with self.lock:
            self.messages.append(message)
            if problem:
                self.problems.append(problem)
            self.lock.notify_all()

    def mark(self) -> int:
        """A position in the stream: ``wait_for(..., after=mark)`` looks only at later messages."""
        with self.lock:
            return len(self.messages)

    def seen(self, predicate: Callable[[Message], bool], after: int = 0) -> list[Message]:
        with self.lock:
            return [m for m in self.messages[after:] if predicate(m)]

    def wait_for(self, what: str, predicate: Callable[[Message], bool], *, after: int = 0,
                 timeout: float = 30.0) -> Message:
        """The first message after ``after`` that matches; fails naming ``what`` after ``timeout`` wall seconds."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                for m in self.messages[after:]:
                    if predicate(m):
                        return m
                left = deadline - time.monotonic()
                assert left > 0, f"timed out after {timeout:g} s waiting for {what}"
                self.lock.wait(min(left, 0.5))


def topic_is(suffix: str) -> Callable[[Message], bool]:
    full = f"{TOPIC_ROOT}/{suffix}"
    return lambda m: m.topic == full


def runs_of(observer: Any, kind: str, target: str, *, until: str, after: int) -> int:
    """How many ``event/{kind}`` for ``target`` the daemon published before its ``event/{until}`` for it.

    For "it ran once, not twice": the daemon publishes its events in order, so once the later
    event is in, a second run of the first would be in before it. Counting after a fixed sleep
    instead fails when a busy machine delivers even the first one late.
    """
    later = observer.wait_for(f"event {until} for {target}", event_of(until, target=target), after=after)
    with observer.lock:
        end = next(i for i, m in enumerate(observer.messages) if m is later)
        before = observer.messages[after:end]
    return sum(1 for m in before if event_of(kind, target=target)(m))


def event_of(kind: str, **data: Any) -> Callable[[Message], bool]:
    """An ``event/{kind}`` message whose ``data`` holds every given key with that value."""
    topic = f"{TOPIC_ROOT}/event/{kind}"

    def match(m: Message) -> bool:
        if m.topic != topic:
            return False
        got = m.json().get("data") or {}
        return all(got.get(k) == v for k, v in data.items())

    return match


def serving(tmp_path_factory: Any, name: str, events: str = "", tail: str = "",
            sensing: dict[str, float] | None = None) -> Iterator[OutsideDaemon]:
    """A module's daemon (``yield from`` it in a module-scoped fixture); ends by checking its session.
    ``tail``: more config (tables appended to the floor's file); ``sensing``: keys of the floor's
    ``[sensing]`` table to set."""
    with OutsideDaemon(tmp_path_factory.mktemp(name), events=events, tail=tail, sensing=sensing) as daemon:
        yield daemon
        daemon.assert_healthy_session()


class OutsideDaemon:
    """One simulated floor served by the real daemon process (see module docstring)."""

    def __init__(self, workdir: Path, *, speed: float = 10.0, events: str = "", tail: str = "",
                 sensing: dict[str, float] | None = None,
                 floor_edit: Callable[[str], str] | None = None) -> None:
        self.workdir = workdir
        self.speed = speed
        self.state_dir = workdir / "state"
        self.config = workdir / "gateway.toml"
        self.rules = workdir / "rules.toml"
        self.scenario = workdir / "scenario.toml"
        self.log = workdir / "daemon.log"
        self.broker = Mosquitto(workdir / "broker")
        self.observer = Observer(self.broker.port)
        self.proc: subprocess.Popen[bytes] | None = None
        self.good_config = ""
        self._events = events
        self._tail = tail
        self._sensing = dict(sensing or {})
        self._floor_edit = floor_edit
        self._ids = itertools.count(1)

    # -- life ----------------------------------------------------------------------------------
    def __enter__(self) -> OutsideDaemon:
        self.workdir.mkdir(parents=True, exist_ok=True)
        floor = (ROOT / "examples" / "floor-3.toml").read_text()
        floor = re.sub(r'(?m)^state_dir = ".*"$', f'state_dir = "{self.state_dir.as_posix()}"', floor)
        for key, value in self._sensing.items():  # the floor's own [sensing] table: keys appear once
            floor = re.sub(rf"(?m)^{key} = .*\n", "", floor)
            floor = floor.replace("\n[sensing]\n", f"\n[sensing]\n{key} = {value!r}\n", 1)
        if self._floor_edit is not None:
            floor = self._floor_edit(floor)
        self.good_config = floor + CONFIG_TAIL + self._tail
        self.config.write_text(self.good_config)
        shutil.copy(ROOT / "rules" / "default.toml", self.rules)
        self.scenario.write_text(SCENARIO.format(floor=self.config.as_posix(), events=self._events))
        self.broker.start()
        try:
            self.observer.start()
            self._spawn()
            self.observer.wait_for("the gateway's birth message",
                                   lambda m: m.topic == f"{TOPIC_ROOT}/status" and m.json()["state"] == "online",
                                   timeout=60)
            self.wait_until("the control socket to answer", lambda: self.cli("status").code == 0, timeout=30)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _spawn(self) -> None:
        cmd = [sys.executable, "-m", "edge_agent.cli", "run", "--simulate", str(self.scenario),
               "--speed", str(self.speed), "--state-dir", str(self.state_dir),
               "--broker", f"127.0.0.1:{self.broker.port}", "--log-level", "info"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def __exit__(self, *exc: object) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
        finally:
            if hasattr(self.observer, "client"):
                self.observer.stop()
            self.broker.stop()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    # -- MQTT, as a central system -------------------------------------------------------------
    def publish(self, topic: str, payload: bytes | str, *, response_topic: str | None = None,
                correlation: bytes | None = None, retain: bool = False) -> None:
        props = None
        if response_topic is not None or correlation is not None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            if response_topic is not None:
                props.ResponseTopic = response_topic
            if correlation is not None:
                props.CorrelationData = correlation
        info = self.observer.client.publish(topic, payload, qos=1, retain=retain, properties=props)
        info.wait_for_publish(10)

    def new_id(self, prefix: str = "c") -> str:
        return f"{prefix}-{os.getpid()}-{next(self._ids)}"

    def command(self, name: str, args: Any = None, *, rid: str | None = None, raw: bytes | None = None,
                response_topic: str | None = None, correlation: bytes | None = None,
                timeout: float = 15.0) -> dict[str, Any]:
        """Send one request to ``cmd/{name}`` and return its result payload (matched on request id or, for a
        request without a readable id, the next result on that command's topic)."""
        if raw is None:
            rid = rid or self.new_id()
            raw = json.dumps({"id": rid, "args": {} if args is None else args}).encode()
        mark = self.observer.mark()
        self.publish(f"{TOPIC_ROOT}/cmd/{name}", raw, response_topic=response_topic, correlation=correlation)
        result_topic = response_topic or f"{TOPIC_ROOT}/cmd/{name}/result"

        def match(m: Message) -> bool:
            return m.topic == result_topic and (rid is None or m.json().get("request_id") == rid)

        doc: dict[str, Any] = self.observer.wait_for(f"the result of {name} {rid}", match, after=mark,
                                                     timeout=timeout).json()
        return doc

    def retained(self, topic_filter: str, settle_s: float = 1.5) -> dict[str, bytes]:
        """What a client subscribing now receives as retained on ``topic_filter``."""
        got: dict[str, bytes] = {}
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.new_id("late"), protocol=mqtt.MQTTv5)

        def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
            if msg.retain:
                got[msg.topic] = bytes(msg.payload)

        client.on_message = on_message
        client.connect("127.0.0.1", self.broker.port)
        client.subscribe(topic_filter, qos=1)
        client.loop_start()
        time.sleep(settle_s)
        client.loop_stop()
        client.disconnect()
        return got

    # -- the technician's side -----------------------------------------------------------------
    def cli(self, *args: str, json_output: bool = False, env: dict[str, str] | None = None,
            timeout: float = 60.0, config: bool = True) -> CliRun:
        argv = [*args, *(["--config", str(self.config)] if config else []), *(["--json"] if json_output else [])]
        base = {k: v for k, v in os.environ.items() if k not in ("SUDO_USER", "EDGE_AGENT_SOCKET")}
        done = subprocess.run([sys.executable, "-m", "edge_agent.cli", *argv], capture_output=True, text=True,
                              timeout=timeout, env={**base, **(env or {})}, cwd=ROOT, check=False)
        return CliRun(tuple(argv), done.returncode, done.stdout, done.stderr)

    def wait_until(self, what: str, check: Callable[[], T | None], *, timeout: float = 30.0,
                   every: float = 0.3) -> T:
        deadline = time.monotonic() + timeout
        while True:
            assert self.alive(), f"the daemon died while waiting for {what}:\n{self.log_text()[-3000:]}"
            value = check()
            if arrived(value):
                return value
            assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
            time.sleep(every)

    def assert_healthy_session(self) -> None:
        """The daemon still runs, its MQTT session was never torn down, and every payload matched its schema."""
        assert self.alive(), self.log_text()[-3000:]
        log = self.log_text()
        assert "uplink session failed unexpectedly" not in log, log[-3000:]
        assert "Traceback" not in log, log[-5000:]
        assert not self.observer.problems, "\n".join(self.observer.problems[:10])
