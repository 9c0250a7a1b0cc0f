"""The peer benchmark's sensors: a burst offered far faster than either gateway can forward it.

With one paho client publishing (a ``json.dumps`` and a ``publish`` call a reading, in the
benchmark's own process) the harness offered about 2,300-2,500 readings/s on the shared 2-core
machine, about what ThingsBoard's gateway forwarded: both sides were then measured against the
harness, not against their own limits. Here the burst is split over ``PUBLISHERS`` processes,
each with its own MQTT 3.1.1 connection to the sensors' broker, each encoding its share of the
readings (the same topics and JSON payloads as before, QoS 1) into PUBLISH packets *before* the
clock starts, then writing them to its socket in large chunks and counting the broker's PUBACKs.
The broker (its queue for a subscriber is 100,000 messages, see ``tests/mosquitto.py``) holds
what a gateway has not yet taken, so each gateway drains the burst at its own pace. The same
burst, byte for byte, is offered to every side.

``python -m benchmarks.peer_sensors --port P --first I --stride S --count N`` encodes readings
``I, I+S, I+2S, ..`` (``N`` of them), connects, prints ``ready``, waits for a line on stdin,
sends, and prints ``{"acked_s": ..}`` (seconds from that line to the last PUBACK).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

SENSORS = 60  # as bench_peers: readings go round the sensors' topics
PUBLISHERS = 4
CHUNK = 256 * 1024  # bytes handed to the socket at a time


def reading(i: int) -> tuple[str, bytes]:
    """Reading ``i`` of a burst: the topic and payload the paho publisher sent (bench_peers.Sensors)."""
    return f"sensors/s{i % SENSORS}/reading", json.dumps({"value": 20.0 + i % 50 / 10, "n": i}).encode()


def _length(n: int) -> bytes:
    """MQTT's variable-length remaining-length field."""
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    """One MQTT 3.1.1 PUBLISH at QoS 1, not retained."""
    name = topic.encode()
    body = len(name).to_bytes(2, "big") + name + packet_id.to_bytes(2, "big") + payload
    return b"\x32" + _length(len(body)) + body


def connect_packet(client_id: str) -> bytes:
    """MQTT 3.1.1 CONNECT, clean session, keep-alive 60 s."""
    ident = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(ident).to_bytes(2, "big") + ident
    return b"\x10" + _length(len(body)) + body


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        part = sock.recv(n - len(data))
        if not part:
            raise ConnectionError("the sensors' broker closed the connection")
        data += part
    return bytes(data)


def publish(port: int, first: int, stride: int, count: int) -> None:
    """One publisher process (see the module docstring)."""
    packets = b"".join(publish_packet(*reading(first + k * stride), 1 + k % 65535) for k in range(count))
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(connect_packet(f"bench-sensors-{first}"))
        if _recv_exact(sock, 4) != b"\x20\x02\x00\x00":
            raise ConnectionError("the sensors' broker refused the connection")
        print("ready", flush=True)
        sys.stdin.readline()
        started = time.perf_counter()
        view = memoryview(packets)
        acked = 0  # bytes of PUBACKs in: a PUBACK is 4 bytes (0x40 0x02 and the packet id)
        for at in range(0, len(view), CHUNK):
            sock.sendall(view[at:at + CHUNK])
            sock.setblocking(False)  # take the PUBACKs that are already in, without waiting
            try:
                acked += len(sock.recv(1 << 20))
            except BlockingIOError:
                pass
            sock.setblocking(True)
        while acked < 4 * count:
            part = sock.recv(1 << 20)
            if not part:
                raise ConnectionError("the sensors' broker closed the connection")
            acked += len(part)
        acked_s = time.perf_counter() - started
        sock.sendall(b"\xe0\x00")  # DISCONNECT
    print(json.dumps({"acked_s": acked_s}), flush=True)


class Burst:
    """``count`` readings (numbered from ``first``) split over ``publishers`` processes, encoded
    and connected when this returns; :meth:`go` starts them all at once."""

    def __init__(self, port: int, first: int, count: int, publishers: int = PUBLISHERS) -> None:
        root = Path(__file__).resolve().parents[1]
        self.procs = []
        for p in range(publishers):
            share = len(range(first + p, first + count, publishers))
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "benchmarks.peer_sensors", "--port", str(port), "--first", str(first + p),
                 "--stride", str(publishers), "--count", str(share)],
                cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        for proc in self.procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                self.close()
                raise RuntimeError("a sensors' publisher did not connect")

    def go(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()

    def acked_s(self) -> float:
        """Seconds until the broker acknowledged the whole burst (the slowest publisher)."""
        slowest = 0.0
        for proc in self.procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"a sensors' publisher failed (exit {proc.wait(10)})")
            slowest = max(slowest, float(json.loads(line)["acked_s"]))
        return slowest

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m benchmarks.peer_sensors", description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--first", type=int, required=True)
    ap.add_argument("--stride", type=int, default=1)
    ap.add_argument("--count", type=int, required=True)
    a = ap.parse_args()
    publish(a.port, a.first, a.stride, a.count)
