"""``edge-agent nodes list`` and ``nodes ota`` end to end: a real registry file, a real pty."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result

from edge_agent.cli import main
from edge_agent.cli.nodes_cmd import nodes
from firmware_bridge import NodeRegistry, SerialTransport, build_image
from firmware_bridge.messages import HardwareKind
from simulator.nodes import HANG_MARKER
from tests.clirunner import CliRunner

from .harness import NodeProcess


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
def line_on_pty() -> Iterator[NodeProcess]:
    """Node 5 (a desk cluster with the firmware's own 30 s trial deadline) in a node process behind a pty.

    The command confirms a new slot about 1.5 s after the node boots into it (a lost COMMIT reply
    alone costs a 1 s reply wait), in real time and across two processes: a short trial deadline
    would roll a good update back whenever a busy machine holds either process up for a moment.
    """
    with NodeProcess("5:desk-cluster") as nodes:
        yield nodes


@pytest.fixture
def line_on_pty_short_trial() -> Iterator[NodeProcess]:
    """Node 5 with a 3 s trial deadline: for the rollback, which waits the deadline out."""
    with NodeProcess("5:desk-cluster:trial=3") as nodes:
        yield nodes


def desk_image(tmp_path: Path, version: tuple[int, int, int], size: int = 8000, marker: bytes = b"") -> Path:
    path = tmp_path / f"desk-{'.'.join(map(str, version))}.bin"
    path.write_bytes(build_image(HardwareKind.DESK_CLUSTER, version, marker + random.Random(1).randbytes(size)))
    return path


def ota(*args: str) -> Result:
    """``nodes ota`` with no daemon to find (its socket would be in a directory that does not exist)."""
    return CliRunner().invoke(nodes, ["ota", *args, "--socket", "/nonexistent/control.sock"])


@pytest.mark.slow
def test_ota_command_updates_a_node_over_a_pty(tmp_path: Path, line_on_pty: NodeProcess) -> None:
    out = ota("5", str(desk_image(tmp_path, (1, 2, 0))), "--port", line_on_pty.path, "--state-dir", str(tmp_path))
    assert out.exit_code == 0, out.output
    assert "node 5: updated 1.0.0 -> 1.2.0 (slot B)" in out.output
    state = line_on_pty.state(5)
    assert state["active_slot"] == 1 and state["on_trial"] is False
    assert json.loads((tmp_path / "nodes.json").read_text())["nodes"][0]["firmware"] == "1.2.0"


@pytest.mark.slow
def test_ota_command_reports_rollback(tmp_path: Path, line_on_pty_short_trial: NodeProcess) -> None:
    line = line_on_pty_short_trial
    hangs = desk_image(tmp_path, (7, 0, 0), 2000, marker=HANG_MARKER)  # starts, then never answers
    out = ota("5", str(hangs), "--port", line.path, "--state-dir", str(tmp_path))
    assert out.exit_code == 1
    assert "did not start; rolled back to 1.0.0 (slot A)" in out.output
    assert line.state(5)["active_slot"] == 0


@pytest.mark.slow
def test_ota_command_refuses_an_image_for_another_kind(tmp_path: Path, line_on_pty: NodeProcess) -> None:
    image = tmp_path / "dimmer.bin"
    image.write_bytes(build_image(HardwareKind.DIMMER, (7, 0, 0), bytes(2000)))
    out = ota("5", str(image), "--port", line_on_pty.path, "--state-dir", str(tmp_path))
    assert out.exit_code == 1
    assert "built for a dimmer" in out.output and "nothing was sent" in out.output
    assert line_on_pty.state(5)["ota_state"] == 0


@pytest.mark.slow
def test_ota_command_survives_a_lost_commit_reply(tmp_path: Path, line_on_pty: NodeProcess) -> None:
    line_on_pty.ask("fault", "reply:drop:type=OTA_COMMIT:node=5")
    out = ota("5", str(desk_image(tmp_path, (1, 3, 0))), "--port", line_on_pty.path, "--state-dir", str(tmp_path))
    assert out.exit_code == 0, out.output
    assert "node 5: updated 1.0.0 -> 1.3.0 (slot B)" in out.output
    state = line_on_pty.state(5)
    assert state["active_slot"] == 1 and state["on_trial"] is False  # confirmed: no deadline can roll it back


def test_ota_refuses_a_file_that_is_not_an_image(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("these are release notes, not firmware")
    out = ota("5", str(junk), "--port", "/dev/null")
    assert out.exit_code == 1 and "not a node firmware image" in out.output


@pytest.mark.slow
def test_ota_with_a_missing_state_dir_is_an_error(tmp_path: Path, line_on_pty: NodeProcess) -> None:
    missing = tmp_path / "nope"
    out = ota("5", str(desk_image(tmp_path, (1, 2, 0))), "--port", line_on_pty.path, "--state-dir", str(missing))
    assert out.exit_code != 0
    assert str(missing) in out.output and "does not exist" in out.output
    assert line_on_pty.state(5)["active_slot"] == 0 and not missing.exists()


@pytest.mark.slow
def test_ota_while_another_program_holds_the_line_is_refused(tmp_path: Path, line_on_pty: NodeProcess) -> None:
    holder = SerialTransport(line_on_pty.path, 115200)
    try:
        out = ota("5", str(desk_image(tmp_path, (1, 2, 0))), "--port", line_on_pty.path, "--state-dir", str(tmp_path))
    finally:
        asyncio.run(holder.aclose())
    assert out.exit_code == 1
    assert f"{line_on_pty.path} is in use" in out.output
    assert line_on_pty.state(5)["ota_state"] == 0
