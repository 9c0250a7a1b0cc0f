"""Property-based fuzzing of the command path: anything a client sends gets exactly one answer.

The real daemon runs on the simulated floor (in-process, so the tests can look at its state
between requests) with a real mosquitto. Hypothesis sends arbitrary bytes, arbitrary JSON and
near-valid requests

* to the uplink's real command processor, thousands of them: each gets one well-formed result
  (checked against docs/schemas/command_result.json), and a failed one changes nothing;
* to ``cmd/{name}`` through the broker, in batches: exactly one result per request arrives and
  the MQTT session is never torn down;
* as JSON lines on the control socket: exactly one answer line each, the server carries on, and a
  refused request changes nothing.

A valid ``reload_config`` would rebuild the daemon under the fuzzer; its validation runs for
real, and only the rebuild it schedules is recorded instead of run.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.control.protocol import OPS
from edge_agent.sync.commands import COMMANDS
from tests.contract.outside import TOPIC_ROOT, Observer
from tests.contract.schemas import problems, validator
from tests.control.simfloor import LiveFloor
from tests.mosquitto import Mosquitto

pytestmark = [pytest.mark.slow, pytest.mark.mqtt]

NAMES = [*sorted(COMMANDS), "launch_rockets", "Set_Override", "cmd.v2"]
ZONES = ["z1-quiet", "z2-group", "z3-silent"]
ARG_KEYS = ["target_kind", "target", "level", "duration_s", "transfer_id", "index", "count", "total_size", "sha256",
            "data", "subject", "scopes", "desk_height_mm", "lamp_level", "sensor", "quantity", "reference", "fresh",
            "anchor", "x", "y", "z", "actuator"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
near_values = st.one_of(
    json_values, st.sampled_from(["zone", "seat", "actuator", "room", *ZONES, "S001", "light-z1-quiet-1",
                                  "desk_preferences", "lamp_preferences", "p-1", "lux-z1-quiet", "anchor-1"]),
    st.floats(-2, 2, allow_nan=False), st.integers(0, 2000), st.sampled_from([None, 0, 1, 60, 7 * 86400, 8 * 86400]),
    st.lists(st.sampled_from(["desk_preferences", "lamp_preferences", "x"]), max_size=3),
)
ids = st.one_of(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}\Z"), json_values)
near_args = st.dictionaries(st.sampled_from(ARG_KEYS), near_values, max_size=5)
requests = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"id": ids, "args": st.one_of(near_args, json_values)},
                          optional={"extra": json_values}).map(lambda d: json.dumps(d).encode()),
)
names = st.sampled_from(NAMES)


class FuzzedFloor:
    """The live floor with its broker, an observer, and the daemon's rebuilds recorded instead of run."""

    def __init__(self, floor: LiveFloor, observer: Observer, broker: Mosquitto) -> None:
        self.floor = floor
        self.observer = observer
        self.broker = broker
        self.reloads = 0
        daemon = floor.sim.daemon
        assert daemon is not None

        def record_reload() -> None:
            self.reloads += 1

        floor.on_loop(setattr, daemon, "schedule_reload", record_reload)
        self.daemon = daemon

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.floor.loop).result(timeout=timeout)

    def snapshot(self) -> tuple[Any, ...]:
        """What a failed request must leave as it was."""
        def take() -> tuple[Any, ...]:
            gw = self.floor.gateway
            book = tuple((o.target, o.kind.value, o.value, o.expires_at) for o in gw.arbiter.overrides._items)
            files = tuple(_stat(self.daemon.state_dir / name) for name in
                          ("preferences.json", "calibration.json", "model.onnx"))
            anchors = tuple(sorted(gw.floor._anchors.items()))
            return book, id(gw.rules), self.daemon.config_hash, files, anchors, self.reloads
        result: tuple[Any, ...] = self.floor.on_loop(take)
        return result


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st_ = path.stat()
    except FileNotFoundError:
        return None
    return st_.st_mtime_ns, st_.st_size


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzedFloor]:
    state_dir = Path(tempfile.mkdtemp(prefix="ea-fuzz-"))
    try:
        with Mosquitto(tmp_path_factory.mktemp("fuzz-broker")) as broker:
            observer = Observer(broker.port)
            observer.start()
            try:
                with LiveFloor(state_dir, speed=20.0, broker=("127.0.0.1", broker.port)) as floor:
                    observer.wait_for("the birth message", lambda m: m.topic == f"{TOPIC_ROOT}/status", timeout=30)
                    yield FuzzedFloor(floor, observer, broker)
                    uplink = floor.gateway.uplink
                    assert uplink is not None and uplink.sessions == 1, "the MQTT session was never torn down"
            finally:
                observer.stop()
            assert not observer.problems, "\n".join(observer.problems[:5])
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def _envelope() -> dict[str, Any]:
    return {"schema_version": 1, "seq": 1, "msg_id": "gw:e:1", "ts": "2025-03-11T07:30:00.000Z",
            "clock_synced": True, "backfill": False}


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(name=names, raw=requests)
def test_the_command_processor_answers_everything_once_and_failures_change_nothing(
        fuzzed: FuzzedFloor, name: str, raw: bytes) -> None:
    uplink = fuzzed.floor.gateway.uplink
    assert uplink is not None
    before = fuzzed.snapshot()
    outcome = fuzzed.run(uplink.commands.handle(name, raw))
    fields = outcome.to_fields()
    assert not problems(validator("command_result"), {**_envelope(), **fields}), fields
    if not outcome.ok:
        assert fuzzed.snapshot() == before, (name, raw, fields)
    elif name == "reload_config" and not outcome.replayed:
        assert fuzzed.reloads == before[-1] + 1


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(batch=st.lists(st.tuples(names, requests), min_size=5, max_size=25))
def test_every_request_on_the_broker_gets_exactly_one_result(fuzzed: FuzzedFloor,
                                                              batch: list[tuple[str, bytes]]) -> None:
    client = fuzzed.observer.client
    mark = fuzzed.observer.mark()
    for name, raw in batch:
        client.publish(f"{TOPIC_ROOT}/cmd/{name}", raw, qos=1).wait_for_publish(10)

    def results() -> list[Any]:
        return fuzzed.observer.seen(lambda m: m.topic.startswith(f"{TOPIC_ROOT}/cmd/") and m.topic.endswith("/result"),
                                    after=mark)

    deadline = time.monotonic() + 30
    while len(results()) < len(batch):
        assert time.monotonic() < deadline, f"{len(results())} results for {len(batch)} requests"
        time.sleep(0.02)
    time.sleep(0.2)  # nothing more may follow
    got = results()
    assert len(got) == len(batch)
    per_topic: dict[str, int] = {}
    for name, _ in batch:
        per_topic[f"{TOPIC_ROOT}/cmd/{name}/result"] = per_topic.get(f"{TOPIC_ROOT}/cmd/{name}/result", 0) + 1
    seen: dict[str, int] = {}
    for m in got:
        seen[m.topic] = seen.get(m.topic, 0) + 1
    assert seen == per_topic


class ControlLine:
    """A raw connection to the control socket: one JSON line out, one line back."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(40)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rb")
        self.lock = threading.Lock()

    def ask(self, line: bytes) -> dict[str, Any]:
        with self.lock:
            self.sock.sendall(line + b"\n")
            answer = self.file.readline()
        assert answer.endswith(b"\n"), answer
        doc: dict[str, Any] = json.loads(answer)
        return doc

    def close(self) -> None:
        self.file.close()
        self.sock.close()


control_args = st.dictionaries(st.sampled_from(ARG_KEYS), near_values, max_size=4)
control_lines = st.one_of(
    st.binary(min_size=1, max_size=200).filter(lambda b: b"\n" not in b and b.strip()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"op": st.one_of(st.sampled_from(OPS), st.text(max_size=10)), "args": control_args},
                          optional={"id": json_values, "on_behalf_of": json_values}
                          ).map(lambda d: json.dumps(d).encode()),
    st.just(b"x" * 17000),
)


@pytest.fixture(scope="module")
def control(fuzzed: FuzzedFloor) -> Iterator[ControlLine]:
    line = ControlLine(fuzzed.floor.socket)
    yield line
    line.close()


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(line=control_lines)
def test_the_control_socket_answers_every_line_once_and_refusals_change_nothing(
        fuzzed: FuzzedFloor, control: ControlLine, line: bytes) -> None:
    before = fuzzed.snapshot()
    answer = control.ask(line)
    assert set(answer) in ({"id", "ok", "result"}, {"id", "ok", "error"}), answer
    if answer["ok"] is False:
        assert isinstance(answer["error"], str) and answer["error"] and "\n" not in answer["error"]
        assert fuzzed.snapshot() == before, (line[:200], answer)
    assert control.ask(b'{"id": "after", "op": "ping"}')["ok"] is True
    assert os.path.exists(fuzzed.floor.socket)
