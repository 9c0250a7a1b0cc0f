"""The real loadgen process (Outbox + Uplink) killed with SIGKILL: nothing committed is lost; last will works."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.mosquitto import Mosquitto
from tests.sync.conftest import GATEWAY, ROOT, SITE, Subscriber

pytestmark = pytest.mark.mqtt
REPO = Path(__file__).resolve().parents[2]


def write_config(path: Path, port: int, state_dir: Path) -> Path:
    path.write_text(
        f"""
[site]
id = "{SITE}"
floor = "1"
gateway = "{GATEWAY}"

[storage]
state_dir = "{state_dir}"

[broker]
host = "127.0.0.1"
port = {port}
keepalive_s = 5

[mqtt]
replay_rate_per_s = 5000

[[zones]]
id = "z1"
polygon = [[0, 0], [10, 0], [10, 10]]

[[zones]]
id = "z2"
polygon = [[0, 0], [10, 0], [10, 10]]
"""
    )
    return path


class Loadgen:
    """Starts loadgen processes and guarantees each one is gone when the test ends."""

    def __init__(self, config: Path, state_dir: Path, log: Path) -> None:
        self.config, self.state_dir, self.log = config, state_dir, log
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "edge_agent.sync.loadgen", "--config", str(self.config),
               "--state-dir", str(self.state_dir), "--committed-log", str(self.log), *extra]  # fmt: skip
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(proc)
        return proc

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)

    def committed(self) -> dict[str, str]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return dict(line.split(" ", 1) for line in lines if line)


@pytest.fixture
def loadgen(broker: Mosquitto, tmp_path: Path) -> Iterator[Loadgen]:
    state = tmp_path / "state"
    gen = Loadgen(write_config(tmp_path / "floor.toml", broker.port, state), state, tmp_path / "committed.log")
    try:
        yield gen
    finally:
        gen.cleanup()


async def wait_exit(proc: subprocess.Popen[bytes], within_s: float) -> int:
    for _ in range(int(within_s / 0.05)):
        if proc.poll() is not None:
            return proc.returncode
        await asyncio.sleep(0.05)
    raise AssertionError(f"loadgen did not exit within {within_s}s")


@pytest.mark.slow
async def test_sigkill_under_load_loses_nothing_committed(broker: Mosquitto, loadgen: Loadgen) -> None:
    rng = random.Random(20240611)
    async with Subscriber(broker.port, [f"{ROOT}/zone/#", f"{ROOT}/event/#"]) as sub:
        for _ in range(4):
            before = len(loadgen.committed())
            proc = loadgen.start("--rate", "400")
            # Kill once each life has committed a real load, at a random moment after that: how long
            # it takes depends on the machine, what is checked does not.
            for _ in range(1200):
                if len(loadgen.committed()) >= before + 50 or proc.poll() is not None:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(rng.uniform(0.0, 1.0))
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            os.kill(proc.pid, signal.SIGKILL)
            await wait_exit(proc, 5)
        committed_before_drain = len(loadgen.committed())
        drain = loadgen.start("--rate", "0", "--exit-when-drained")
        assert await wait_exit(drain, 30) == 0, drain.stderr.read().decode() if drain.stderr else ""
        committed = loadgen.committed()
        await sub.wait_for(lambda: {m.doc["msg_id"] for m in sub.messages} >= set(committed), 15)

    received = {m.doc["msg_id"]: m.topic for m in sub.messages}
    assert committed_before_drain > 150, "the load was too light to mean anything"
    assert set(committed) <= set(received)
    assert all(received[i] == t for i, t in committed.items())
    seqs = sorted(int(i.rsplit(":", 1)[1]) for i in received)
    assert len(seqs) == len(set(seqs)), "a sequence number was reused after a restart"


async def test_sigkill_sets_status_offline_and_restart_sets_online(broker: Mosquitto, loadgen: Loadgen) -> None:
    async with Subscriber(broker.port, [f"{ROOT}/status"]) as sub:

        def states() -> Any:
            return [m.doc["state"] for m in sub.messages]

        proc = loadgen.start("--rate", "5")
        await sub.wait_for(lambda: states()[-1:] == ["online"])
        os.kill(proc.pid, signal.SIGKILL)
        await wait_exit(proc, 5)
        await sub.wait_for(lambda: states()[-1:] == ["offline"], 10)
        loadgen.start("--rate", "5")
        await sub.wait_for(lambda: states()[-1:] == ["online"] and len(states()) >= 3)
    assert states() == ["online", "offline", "online"]
    offline = sub.messages[1].doc
    assert offline["version"] == "loadgen" and offline["msg_id"] != sub.messages[0].doc["msg_id"]
