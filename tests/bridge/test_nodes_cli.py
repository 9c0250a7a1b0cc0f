"""``edge-agent nodes list`` and ``nodes ota`` end to end: a real registry file, a real pty."""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_agent.cli import main
from edge_agent.cli.nodes_cmd import nodes
from firmware_bridge import NodeRegistry, SerialTransport, build_image
from firmware_bridge.messages import HardwareKind
from simulator.nodes import SimNode
from simulator.nodes_line import SimLine


def test_list_reads_the_persisted_registry(tmp_path: Path) -> None:
    registry = NodeRegistry(tmp_path)
    rec = registry.get(12)
    rec.kind, rec.firmware, rec.health, rec.last_seen = "dimmer", "1.4.2", "ok", time.time() - 90
    registry.get(3).health = "offline"
    registry.save()
    out = CliRunner().invoke(nodes, ["list", "--state-dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].split()[:5] == ["ADDR", "KIND", "FIRMWARE", "HEALTH", "LAST"]
    assert lines[1].split()[:5] == ["3", "unknown", "?", "offline", "never"]
    assert lines[2].split()[:6] == ["12", "dimmer", "1.4.2", "ok", "2", "min"]
    as_json = CliRunner().invoke(nodes, ["list", "--state-dir", str(tmp_path), "--json"])
    assert [n["address"] for n in json.loads(as_json.output)] == [3, 12]


def test_list_with_damaged_registry_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "nodes.json").write_text("[1, 2")
    with pytest.raises(SystemExit) as stop:
        main(["nodes", "list", "--state-dir", str(tmp_path)])
    assert stop.value.code == 1
    assert "unreadable node registry" in capsys.readouterr().err


@pytest.fixture
def line_on_pty() -> Iterator[tuple[str, SimLine]]:
    """A SimLine with node 5 served on a pty in its own thread and loop; yields the gateway-side tty path."""
    master_fd, slave_fd = os.openpty()
    line = SimLine([SimNode(5, trial_deadline_s=3)])
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        task = loop.create_task(line.serve(SerialTransport.from_fd(master_fd, "pty-master")))
        loop.call_soon(started.set)
        loop.run_until_complete(asyncio.gather(task, return_exceptions=True))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(5)
    try:
        yield os.ttyname(slave_fd), line
    finally:
        loop.call_soon_threadsafe(lambda: [t.cancel() for t in asyncio.all_tasks(loop)])
        thread.join(5)
        loop.close()
        os.close(slave_fd)


@pytest.mark.slow
def test_ota_command_updates_a_node_over_a_pty(tmp_path: Path, line_on_pty: tuple[str, SimLine]) -> None:
    port, line = line_on_pty
    image = tmp_path / "desk-1.2.0.bin"
    image.write_bytes(build_image(HardwareKind.DESK_CLUSTER, (1, 2, 0), random.Random(1).randbytes(8000)))
    out = CliRunner().invoke(nodes, ["ota", "5", str(image), "--port", port, "--state-dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert "node 5: updated 1.0.0 -> 1.2.0 (slot B)" in out.output
    assert line.node(5).active_slot == 1
    assert json.loads((tmp_path / "nodes.json").read_text())["nodes"][0]["firmware"] == "1.2.0"


@pytest.mark.slow
def test_ota_command_reports_rollback(tmp_path: Path, line_on_pty: tuple[str, SimLine]) -> None:
    port, line = line_on_pty
    image = tmp_path / "dimmer.bin"  # built for the wrong hardware kind: the boot loader will not start it
    image.write_bytes(build_image(HardwareKind.DIMMER, (7, 0, 0), bytes(2000)))
    out = CliRunner().invoke(nodes, ["ota", "5", str(image), "--port", port, "--state-dir", str(tmp_path)])
    assert out.exit_code == 1
    assert "rolled back to 1.0.0 (slot A)" in out.output
    assert line.node(5).active_slot == 0


def test_ota_refuses_a_file_that_is_not_an_image(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("these are release notes, not firmware")
    out = CliRunner().invoke(nodes, ["ota", "5", str(junk), "--port", "/dev/null"])
    assert out.exit_code == 1 and "not a node firmware image" in out.output
