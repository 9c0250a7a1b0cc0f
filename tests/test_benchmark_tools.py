"""The benchmarks' own checks: the report diff a speed change must pass, and the guard's comparable forms."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from benchmarks.day_check import differences
from benchmarks.guard import comparable
from benchmarks.peer_sensors import Burst, publish_packet
from tests.mosquitto import Mosquitto


def test_report_diff_ignores_only_wall_seconds() -> None:
    a = {"wall_seconds": 55.1, "energy": {"kwh": 1.25}, "latency": [0.4, 0.6]}
    assert differences(a, {**a, "wall_seconds": 80.0}) == []
    changed = differences(a, {**a, "latency": [0.4, 0.7]})
    assert changed == [("/latency[1]", 0.6, 0.7)]
    assert differences(a, {"wall_seconds": 1.0, "energy": {"kwh": 1.25}}) == [("/latency[0]", 0.4, None),
                                                                              ("/latency[1]", 0.6, None)]


def test_guard_compares_times_by_calibration_rates_inversely_and_counts_as_they_are() -> None:
    assert comparable(4.0, "ms", calibration=2.0) == 2.0
    assert comparable(3.0, "us CPU/msg", calibration=1.5) == 2.0
    assert comparable(3.0, "% of one core", calibration=1.5) == 2.0
    assert comparable(100.0, "msg/s", calibration=0.5) == 50.0
    assert comparable(0.81, "ratio", calibration=9.0) == 0.81
    assert comparable(127.0, "MiB", calibration=9.0) == 127.0
    assert comparable(3.1, "load", calibration=1.0) is None
    assert comparable(float("nan"), "s", calibration=1.0) is None


@pytest.mark.mqtt
def test_peer_burst_offers_every_reading_as_the_paho_sensors_did(tmp_path: Path) -> None:
    """The peer benchmark's pre-encoded burst (four publisher processes) reaches a QoS 1 subscriber
    whole: the same topics and payloads, each reading once, as the paho publisher sent them."""
    import paho.mqtt.client as mqtt

    got: list[tuple[str, bytes]] = []
    subscribed = threading.Event()
    with Mosquitto(tmp_path) as broker:
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        sub.on_connect = lambda c, *_: c.subscribe("sensors/+/reading", 1)
        sub.on_subscribe = lambda *_: subscribed.set()
        sub.on_message = lambda _c, _u, m: got.append((m.topic, m.payload))
        sub.connect("127.0.0.1", broker.port)
        sub.loop_start()
        try:
            assert subscribed.wait(10)
            burst = Burst(broker.port, first=7, count=1001)
            try:
                burst.go()
                assert burst.acked_s() > 0
            finally:
                burst.close()
            deadline = time.monotonic() + 30
            while len(got) < 1001 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            sub.loop_stop()
            sub.disconnect()
    assert len(got) == 1001
    assert sorted(got, key=lambda m: json.loads(m[1])["n"]) == [
        (f"sensors/s{i % 60}/reading", json.dumps({"value": 20.0 + i % 50 / 10, "n": i}).encode())
        for i in range(7, 1008)]


def test_peer_burst_packets_are_mqtt_publishes() -> None:
    packet = publish_packet("sensors/s1/reading", b"{}", packet_id=258)
    assert packet == b"\x32\x18\x00\x12sensors/s1/reading\x01\x02{}"
    long = publish_packet("t", b"x" * 200, packet_id=1)
    assert long[:3] == b"\x32\xcd\x01"  # remaining length 205 in two bytes


def test_a_test_broker_restarts_on_its_port_when_clients_keep_dialing_it(tmp_path: Path) -> None:
    """Brokers of outage tests and benchmarks take ports below the ephemeral range, so no outgoing
    connection (not even a client dialing the stopped broker, which may connect to itself) holds
    the port while the broker is down."""
    import socket

    from tests.mosquitto import ephemeral_range

    low, _high = ephemeral_range()
    with Mosquitto(tmp_path / "b") as broker:
        assert broker.port < low, f"port {broker.port} is inside the ephemeral range from {low}"
        broker.stop()
        refused = 0
        for _ in range(50):  # a client retrying while the broker is down
            with socket.socket() as s, pytest.raises(OSError):
                s.connect(("127.0.0.1", broker.port))
            refused += 1
        broker.start()
        with socket.create_connection(("127.0.0.1", broker.port), timeout=2):
            pass
    assert refused == 50


def test_recording_one_area_keeps_the_other_areas_machines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import guard

    recorded = tmp_path / "recorded.json"
    monkeypatch.setattr(guard, "RECORDED", recorded)
    monkeypatch.setattr(guard, "calibration_s", lambda: 0.2)
    rows = {"rules": [("eval", 1.0, "ms")], "mqtt": [("ratio to bare", 0.9, "ratio")]}
    guard.record(["rules", "mqtt"], 1, lambda area: rows[area], "machine A")
    document = guard.record(["mqtt"], 2, lambda area: rows[area], "machine B")
    assert document["areas"]["rules"]["machine"] == "machine A"  # type: ignore[index]
    assert document["areas"]["mqtt"]["machine"] == "machine B"  # type: ignore[index]
    assert document["machine"] == (f"machine B: mqtt ({document['date']}); "
                                    f"machine A: rules ({document['date']})")
    saved = json.loads(recorded.read_text())
    assert saved["figures"]["rules: eval"]["values"] == [1.0]
    assert saved["figures"]["mqtt: ratio to bare"]["values"] == [0.9, 0.9]


def test_a_gateway_that_stops_short_of_the_burst_is_charged_with_the_rest_as_lost(tmp_path: Path) -> None:
    """ThingsBoard's gateway has, in about a third of the runs here, stopped a few hundred readings
    short of the burst: the wait ends once nothing has arrived for a while, the rate is over what arrived and the
    rest is counted lost, instead of the run failing after five minutes. Nothing at all is still an error."""
    import paho.mqtt.client as mqtt

    from benchmarks.bench_peers import BURST, Upstream, burst_arrived

    with Mosquitto(tmp_path / "b") as broker:
        upstream = Upstream(broker.port)
        sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="stops-short")
        sender.connect("127.0.0.1", broker.port)
        sender.loop_start()
        try:
            deadline = time.monotonic() + 10
            while not upstream.client.is_connected():
                assert time.monotonic() < deadline
                time.sleep(0.02)
            started = time.monotonic()
            with pytest.raises(RuntimeError, match="0 arrived"):
                burst_arrived(upstream, 0, started, "silent", quiet_s=0.5)
            short = 25
            for n in range(short):
                sender.publish("library/f3/event/reading", json.dumps({"kind": "reading", "n": n}), qos=1)
            # the wall clock stands in for the gateway's CPU: it is read as the last reading arrives
            arrived, cpu_then = burst_arrived(upstream, 0, time.monotonic(), "short", quiet_s=1.0, cpu=time.monotonic)
            assert arrived == short < BURST
            assert upstream.last_at <= cpu_then < upstream.last_at + 0.2 < time.monotonic() - 0.8
            assert time.monotonic() - upstream.last_at >= 1.0  # waited for the quiet, not less
        finally:
            sender.loop_stop()
            sender.disconnect()
            upstream.close()
