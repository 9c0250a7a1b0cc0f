"""The real daemon (``edge-agent run``) on a pty with the nodes in their own process: it holds the line
alone, puts a rebooted node's outputs back, shows what the node reports, and runs ``nodes ota``."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from drivers.errors import BridgeError
from edge_agent.control.client import ControlClient, ControlRequestError
from edge_agent.trust.artefacts import sign_artefact
from edge_agent.trust.keys import new_key
from firmware_bridge import SerialTransport, build_image
from firmware_bridge.messages import HardwareKind

from .harness import ROOT, NodeProcess

CONFIG = """\
[site]
id = "bridge-test"
floor = "1"
gateway = "gw-bridge"

[bridge]
port = "{port}"

[[zones]]
id = "z1"
polygon = [[0, 0], [10, 0], [10, 10]]

[[actuators]]
id = "desk-1"
kind = "desk"
zone = "z1"
node = 5
channel = 2

[[actuators]]
id = "light-1"
kind = "light"
zone = "z1"
node = 101
channel = 3
output = "dimmer"

[[security.keys]]
id = "publisher-1"
role = "model-publisher"
public_key = "{publisher}"
"""
PUBLISHER = new_key("publisher-1")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SUDO_USER", "EDGE_AGENT_SOCKET")}
    return subprocess.run([sys.executable, "-m", "edge_agent.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT, check=False)  # fmt: skip


def wait(what: str, check: Any, wall_s: float = 30.0) -> Any:
    deadline = time.monotonic() + wall_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.slow
def test_the_daemon_owns_the_line_restores_outputs_and_updates_firmware(tmp_path: Path) -> None:
    state = tmp_path / "state"
    sock = state / "control.sock"
    with NodeProcess("5:desk-cluster", "101:dimmer") as nodes:  # the firmware's trial deadline: see test_nodes_cli
        config = tmp_path / "gateway.toml"
        config.write_text(CONFIG.format(port=nodes.path, publisher=PUBLISHER.public))
        env = {k: v for k, v in os.environ.items() if k not in ("RUNTIME_DIRECTORY", "NOTIFY_SOCKET")}
        daemon = subprocess.Popen(
            [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(config), "--state-dir", str(state),
             "--broker", f"127.0.0.1:{closed_port()}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
        )  # fmt: skip
        try:
            wait("the control socket", sock.exists, 60)

            def registry() -> dict[int, Any]:
                out = cli("nodes", "list", "--state-dir", str(state), "--json")
                return {n["address"]: n for n in json.loads(out.stdout or "[]")} if out.returncode == 0 else {}

            wait("both nodes seen", lambda: all(registry().get(n, {}).get("health") == "ok" for n in (5, 101)))

            # One master per line: the daemon holds the serial device.
            with pytest.raises(BridgeError, match="in use"):
                SerialTransport(nodes.path, 115200)

            # An output the daemon owns comes back after the node reboots ...
            held = cli("actuators", "test", "desk-1", "--level", "0.45", "--for", "5m", "--socket", str(sock))
            assert held.returncode == 0, held.stderr
            wait("the lamp at 0.45", lambda: nodes.state(5)["lamp_targets"][2] == 450)
            nodes.ask("reboot", 5, 0.5)
            assert nodes.state(5)["lamp_targets"][2] == 0
            wait("the lamp restored", lambda: nodes.state(5)["lamp_targets"][2] == 450, 15)
            wait("the reboot recorded", lambda: registry()[5]["reboots"] == 1 and registry()[5]["health"] == "ok")

            # ... and the read-back a technician sees is the node's, not the last command.
            nodes.ask("set", 5, 2, "LAMP", 300)
            listed = cli("actuators", "list", "--json", "--socket", str(sock))
            assert listed.returncode == 0, listed.stderr
            desk = next(a for a in json.loads(listed.stdout) if a["id"] == "desk-1")
            assert (desk["value"], desk["read_back"]) == (0.45, 0.3)

            # nodes ota goes through the daemon, with progress, and reports the outcome; the site has a
            # model-publisher key, so an image goes to the node only with its signature.
            image = tmp_path / "desk-1.2.0.bin"
            image.write_bytes(build_image(HardwareKind.DESK_CLUSTER, (1, 2, 0), random.Random(2).randbytes(12_000)))
            unsigned = cli("nodes", "ota", "5", str(image), "--socket", str(sock), "--state-dir", str(state))
            assert unsigned.returncode == 1 and "firmware refused (unsigned)" in unsigned.stderr, unsigned.stderr
            assert nodes.state(5)["firmware"] == "1.0.0"
            (tmp_path / "desk.sig").write_text(json.dumps(sign_artefact(PUBLISHER, "firmware", image.read_bytes())))
            done = cli("nodes", "ota", "5", str(image), "--socket", str(sock), "--state-dir", str(state),
                       "--signature", str(tmp_path / "desk.sig"))
            assert done.returncode == 0, done.stdout + done.stderr
            assert "through the running daemon" in done.stdout
            assert "node 5: updated 1.0.0 -> 1.2.0 (slot B)" in done.stdout
            assert nodes.state(5)["active_slot"] == 1 and nodes.state(5)["firmware"] == "1.2.0"
            wait("the lamp restored after the update", lambda: nodes.state(5)["lamp_targets"][2] == 450, 15)

            # A wrong image is refused by the daemon, before anything is sent, and the CLI says so.
            wrong = tmp_path / "dimmer.bin"
            wrong.write_bytes(build_image(HardwareKind.DIMMER, (3, 0, 0), bytes(3000)))
            signature = sign_artefact(PUBLISHER, "firmware", wrong.read_bytes())  # found beside the image
            (tmp_path / "dimmer.bin.sig").write_text(json.dumps(signature))
            refused = cli("nodes", "ota", "5", str(wrong), "--socket", str(sock), "--state-dir", str(state))
            assert refused.returncode == 1 and "built for a dimmer" in refused.stderr
            with ControlClient(sock) as client:
                assert client.request("node_ota_status", node=5)["state"] == "failed"

            # Naming another line is refused: node 5 there is another node.
            other = cli("nodes", "ota", "5", str(image), "--port", "/dev/ttyUSB9", "--socket", str(sock))
            assert other.returncode == 1 and "the daemon drives the line on" in other.stderr

            # Bad requests on the control socket get one clear line each; the daemon carries on.
            with ControlClient(sock) as client:
                for args, says in [
                    ({"node": 5, "size": 10, "sha256": "0" * 64, "offset": 0, "data": "!!!!"}, "not valid base64"),
                    ({"node": 5, "size": 10, "sha256": "0" * 64, "offset": 4, "data": "AAAA"}, "in order from 0"),
                    ({"node": 0, "size": 10, "sha256": "0" * 64, "offset": 0, "data": "AAAA"}, "args.node"),
                ]:
                    with pytest.raises(ControlRequestError, match=says):
                        client.request("node_ota_upload", **args)
                with pytest.raises(ControlRequestError, match="upload the image first"):
                    client.request("node_ota_start", node=101, sha256="1" * 64)
                with pytest.raises(ControlRequestError, match="no update of node 101"):
                    client.request("node_ota_status", node=101)

            # A tool that cannot find the daemon and opens the port itself is refused, clearly.
            blind = cli("nodes", "ota", "5", str(image), "--port", nodes.path, "--socket", str(tmp_path / "none.sock"),
                        "--state-dir", str(state))  # fmt: skip
            assert blind.returncode == 1 and f"{nodes.path} is in use" in blind.stderr
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                out, _ = daemon.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                daemon.kill()
                out, _ = daemon.communicate()
        assert daemon.returncode == 0, out[-3000:]
        assert "Traceback" not in out, out[-3000:]
