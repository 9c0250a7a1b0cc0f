"""``edge-agent doctor`` on this machine: no I2C, no serial, a real broker from the fixture."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from edge_agent.cli.doctor_cmd import certificate_expiry, certificate_finding, check_unit, doctor
from tests.clirunner import CliRunner
from tests.conftest import EXAMPLE_FLOOR
from tests.control.conftest import FakeTarget, ServedTarget
from tests.mosquitto import Mosquitto


def write_config(tmp_path: Path, port: int, broker_extra: str = "") -> Path:
    text = EXAMPLE_FLOOR.read_text()
    text = text.replace('state_dir = "/var/lib/edge-agent"', f'state_dir = "{tmp_path}/state"')
    broker = '[broker]\nhost = "127.0.0.1"\nport = '
    text = text.replace(f"{broker}1883\n", f"{broker}{port}\n{broker_extra}")
    assert f"port = {port}" in text
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def lines_by_check(output: str) -> dict[str, str]:
    found = {}
    for line in output.splitlines():
        level, check, message = line[:5].strip(), line[5:26].strip(), line[26:]
        assert level in ("OK", "WARN", "FAIL"), line
        found[check] = f"{level} {message}"
    return found


def test_doctor_on_this_machine(tmp_path: Path, broker: Mosquitto, sock_dir: Path) -> None:
    config = write_config(tmp_path, broker.port)
    out = CliRunner().invoke(doctor, ["--config", str(config), "--socket", str(sock_dir / "none.sock")])
    assert out.exit_code == 1, out.output  # no I2C bus, no serial bridge here
    checks = lines_by_check(out.stdout)
    assert checks["config"].startswith("OK")
    assert checks["daemon"].startswith("WARN") and "systemctl start edge-agent" in checks["daemon"]
    assert checks["i2c i2c1"].startswith("FAIL /dev/i2c-1 does not exist; enable I2C")
    assert checks["devices"].startswith("FAIL") or checks["devices"].startswith("WARN")
    assert checks["serial bridge"].startswith("FAIL /dev/ttyUSB0 does not exist")
    assert checks["broker"] == f"OK connected to 127.0.0.1:{broker.port} anonymously"
    assert checks["tls"].startswith("OK not used")
    assert checks["clock"].split()[0] in ("OK", "WARN")
    assert checks["disk"].startswith(("OK", "WARN"))
    assert checks["write rate"].startswith("WARN unknown: the daemon is not running")
    assert checks["systemd"].split()[0] in ("OK", "WARN", "FAIL") and len(checks["systemd"]) > 20
    doc = json.loads(CliRunner().invoke(doctor, ["--config", str(config), "--json", "--socket", "/nonexistent"]).stdout)
    assert {d["check"] for d in doc} >= {"broker", "i2c i2c1", "disk"}


def test_doctor_asks_the_running_daemon_for_devices(tmp_path: Path, broker: Mosquitto, served: ServedTarget,
                                                    target: FakeTarget) -> None:  # fmt: skip
    config = write_config(tmp_path, broker.port)
    out = CliRunner().invoke(doctor, ["--config", str(config), "--socket", str(served.path)])
    checks = lines_by_check(out.stdout)
    assert checks["daemon"].startswith("OK answering")
    assert checks["devices"] == "OK all 1 expected devices answer (probed by the daemon)"
    assert ("diagnostics", ()) in target.calls


def test_broker_down_and_bad_credentials_fail(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "tech", "right"], check=True, capture_output=True)
    passwd.chmod(0o644)
    with Mosquitto(tmp_path / "b", extra_conf=f"allow_anonymous false\npassword_file {passwd}\nuser root") as secured:
        for password, expected in (("right", "OK connected"), ("wrong", "FAIL 127.0.0.1")):
            creds = tmp_path / f"creds-{password}"
            creds.write_text(f"tech:{password}\n")
            config = write_config(tmp_path, secured.port, f'credentials_file = "{creds}"\n')
            out = CliRunner().invoke(doctor, ["--config", str(config), "--socket", "/nonexistent"])
            broker_line = lines_by_check(out.stdout)["broker"]
            assert broker_line.startswith(expected), broker_line
            if password == "right":
                assert "as tech" in broker_line
            else:
                assert "credentials refused" in broker_line
        port = secured.port
    config = write_config(tmp_path, port)  # the broker is gone now
    start = time.monotonic()
    out = CliRunner().invoke(doctor, ["--config", str(config), "--socket", "/nonexistent"])
    assert lines_by_check(out.stdout)["broker"].startswith(f"FAIL 127.0.0.1:{port}: cannot connect")
    assert time.monotonic() - start < 10


def make_cert(tmp_path: Path, days: int) -> Path:
    cert = tmp_path / f"cert-{days}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:1024", "-nodes", "-keyout", str(tmp_path / "k.pem"),
                    "-out", str(cert), "-days", str(days), "-subj", "/CN=edge-test"],
                   check=True, capture_output=True)  # fmt: skip
    return cert


def test_certificate_expiry_levels(tmp_path: Path) -> None:
    short, long_ = make_cert(tmp_path, 10), make_cert(tmp_path, 400)
    now = time.time()
    assert certificate_expiry(long_) == pytest.approx(now + 400 * 86400, abs=120)
    assert certificate_finding("tls ca", short, now).level == "WARN"
    assert "expires in 10 days" in certificate_finding("tls ca", short, now).message
    assert certificate_finding("tls ca", long_, now).level == "OK"
    expired = certificate_finding("tls ca", long_, now + 500 * 86400)
    assert expired.level == "FAIL" and "expired on" in expired.message
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    assert certificate_finding("tls ca", garbage, now).level == "FAIL"


def test_unit_check_gives_advice() -> None:
    (finding,) = check_unit()
    assert finding.check == "systemd"
    if finding.level != "OK":
        assert "edge-agent" in finding.message and ("start" in finding.message or "systemd" in finding.message)
