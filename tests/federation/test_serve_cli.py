"""``edge-agent federation serve`` as a subprocess, with two gateways' clients joining it on loopback.

The server signs what it publishes (``--sign-key``); the gateways install only what their keyring
accepts, as a daemon does.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from edge_agent.cli import main
from edge_agent.federation.client import run_client
from edge_agent.federation.trainer import GatewayTrainer, install_checked
from edge_agent.forecast_config import FederationConf
from edge_agent.trust.artefacts import check_artefact
from edge_agent.trust.keys import new_key, write_key
from edge_agent.trust.policy import Keyring, SecurityConf
from models.inference import ModelSlot
from tests.federation.conftest import floor, gateway_state, history_reader
from tests.mosquitto import free_port

ROOT = Path(__file__).resolve().parents[2]


def _serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "edge_agent.cli", "federation", "serve", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _trainer(root: Path, name: str, kinds: list[str], seed: int, conf: FederationConf,
             ring: Keyring) -> GatewayTrainer:
    cfg = floor(name, kinds, 12)
    state = gateway_state(root, cfg, seed)

    load = history_reader(state)

    slot = ModelSlot(state / "model.onnx")
    slot.load()

    def install(data: bytes, sha: str, signature: Any, adapted_from: str | None) -> tuple[bool, str]:
        return install_checked(data, sha, signature, adapted_from, swap=slot.try_swap, audit=lambda _: None,
                               check=lambda s, n, sig: check_artefact(ring, "model", s, n, sig))

    return GatewayTrainer(conf, load, lambda: None, state, capacities={z.id: 12.0 for z in cfg.zones},
                          install=install)


def _wait_listening(port: int, proc: subprocess.Popen[str], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"federation serve did not listen on {port} within {timeout_s} s")


@pytest.mark.slow
def test_serve_runs_a_session_and_publishes(tmp_path: Path) -> None:
    port = free_port()
    conf = FederationConf.model_validate({"enabled": True, "server": f"127.0.0.1:{port}", "holdout_days": 7,
                                          "privacy": {"epsilon_total": 50.0}})
    key = new_key("publisher-1")
    write_key(tmp_path / "publisher.key", key)
    ring = Keyring(SecurityConf.model_validate(
        {"keys": [{"id": key.key_id, "role": "model-publisher", "public_key": key.public}]}))
    trainers = [_trainer(tmp_path, "a", ["quiet", "group"], 1, conf, ring),
                _trainer(tmp_path, "b", ["open", "lounge"], 2, conf, ring)]
    out = tmp_path / "published"
    server = _serve("--listen", f"127.0.0.1:{port}", "--out", str(out), "--rounds", "1", "--min-gateways", "2",
                    "--steps", "30", "--sign-key", str(tmp_path / "publisher.key"), "--json")
    try:
        _wait_listening(port, server)
        threads = [threading.Thread(target=run_client, args=(t, conf)) for t in trainers]
        for t in threads:
            t.start()
        stdout, stderr = server.communicate(timeout=120)
        for t in threads:
            t.join(30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    assert server.returncode == 0, stderr
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, stdout
    session = json.loads(lines[0])
    assert session["session"] == 1 and session["start"] == "federation_start_in_day.onnx"
    assert session["rounds"][0]["gateways"] == 2 and session["rounds"][0]["epsilon_max"] > 0
    published = session["published"]
    assert published is not None and published["heldout_mae"] < published["heldout_baseline_mae"], session
    assert hashlib.sha256((out / "model.onnx").read_bytes()).hexdigest() == published["sha256"]
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["sha256"] == published["sha256"]
    assert check_artefact(ring, "model", manifest["sha256"], manifest["size"], manifest["signature"]) == "publisher-1"
    assert all(t.installed == [published["sha256"]] for t in trainers)


@pytest.mark.parametrize(("args", "says"), [
    (["--listen", "192.0.2.7:9092"], "--listen 192.0.2.7:9092 is not on this machine: give --tls-cert"),
    (["--listen", "9092"], "Invalid value for --listen: '9092' is not HOST:PORT"),
    (["--horizons", "15,20"], "horizons must be positive multiples of 15 minutes"),
    (["--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"], "--tls-ca is needed"),
    (["--sign-key", "/nonexistent/p.key"], "Invalid value for --sign-key: /nonexistent/p.key: key file"),
])
def test_serve_refuses_bad_options_in_one_line(tmp_path: Path, args: list[str], says: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["federation", "serve", "--out", str(tmp_path / "out"), *args])
    stderr = capsys.readouterr().err
    assert stopped.value.code == 2 and says in stderr, stderr
    assert not (tmp_path / "out").exists()
