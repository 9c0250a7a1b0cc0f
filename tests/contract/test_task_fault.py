"""A supervised task that crashes in a loop reaches the central system and the technician.

The crash is planted inside the running daemon (no outside input makes a healthy daemon's task
crash); everything after that is seen from outside: the ``task_fault`` event on a real broker
and the FAULT line of ``edge-agent status``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.contract.outside import TOPIC_ROOT, Observer
from tests.control.simfloor import LiveFloor
from tests.mosquitto import Mosquitto

pytestmark = [pytest.mark.slow, pytest.mark.mqtt]


async def _always_crashes() -> None:
    raise RuntimeError("planted bug: the ledger is upside down")


def test_a_crash_looping_task_is_reported(tmp_path: Path) -> None:
    state_dir = Path(tempfile.mkdtemp(prefix="ea-fault-"))
    try:
        with Mosquitto(tmp_path / "broker") as broker:
            observer = Observer(broker.port)
            observer.start()
            try:
                with LiveFloor(state_dir, speed=20.0, broker=("127.0.0.1", broker.port)) as floor:
                    observer.wait_for("the birth message", lambda m: m.topic == f"{TOPIC_ROOT}/status", timeout=30)
                    floor.on_loop(lambda: floor.sim.daemon.supervisor.start("ledger", _always_crashes))
                    event = observer.wait_for("task_fault", lambda m: m.topic == f"{TOPIC_ROOT}/event/task_fault",
                                              timeout=60).json()
                    assert event["severity"] == "error"
                    assert event["data"]["task"] == "ledger" and event["data"]["crashes"] >= 5
                    assert "the ledger is upside down" in event["data"]["error"]
                    status = floor.cli("status", json_output=False)
                    assert status.code == 0
                    fault = [line for line in status.stdout.splitlines() if line.startswith("FAULT")]
                    assert fault and "task ledger crashing in a loop" in fault[0], status.stdout
                    assert json.loads(floor.cli("status").stdout)["faults"]
            finally:
                observer.stop()
        assert not observer.problems, observer.problems
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
