"""A real mosquitto broker for tests: started on a free loopback port, stopped afterwards.

Tests never use the machine's own broker on 1883: each test that needs MQTT gets its own, so
they can be stopped and restarted (outage tests) without disturbing anything else.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if found is None:
        raise RuntimeError("mosquitto is not installed: run `make test` (it installs it) or apt-get install mosquitto")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for the local ports of outgoing connections (Linux's default if unknown)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def broker_port(tries: int = 200) -> int:
    """A free loopback port below the ephemeral range, for a broker that may be stopped and started.

    A port the kernel hands out (``free_port``) lies in the range outgoing connections take their
    local ports from. While such a broker is down for an outage test, a client retrying it, or any
    other process's connection, can take that very port (a client retrying a loopback port with no
    listener may even connect to itself), and the broker cannot start again until it is let go.
    Below the range no connection takes it.
    """
    low = ephemeral_range()[0]
    first = max(1024, low - 20000)
    for _ in range(tries):
        port = random.randrange(first, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


#: Messages a broker queues for one client (a benchmark's burst may not be larger).
QUEUED_MAX = 100_000


class Mosquitto:
    """One broker process. ``start()``/``stop()`` may be called repeatedly (outage tests)."""

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "") -> None:
        self.workdir = workdir
        self.port = port or broker_port()
        self.extra_conf = extra_conf
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = workdir / f"mosquitto-{self.port}.conf"

    def start(self, timeout: float = 5.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            f"max_inflight_messages 100\nmax_queued_messages {QUEUED_MAX}\n{self.extra_conf}\n"
        )
        log = open(self.workdir / f"mosquitto-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}; see {log.name}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
