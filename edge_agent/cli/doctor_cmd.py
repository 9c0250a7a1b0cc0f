"""``edge-agent doctor``: is this gateway fit to run? One line per check, each with what to do.

Checks run from cheapest to slowest and never stop at the first problem: a technician on a
ladder wants the whole list at once. Levels: OK, WARN (works, but fix it soon), FAIL (it will
not work). The exit code is 1 when any check FAILs, so scripts and provisioning can gate on it.

Device probes go through the daemon when it runs (it owns the buses; a second opener would
race it) and straight to the bus with smbus2 only when it does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import importlib
import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from drivers.errors import EdgeError
from edge_agent.cli.technician import CONFIG_ENV, DEFAULT_CONFIG, emit_json
from edge_agent.control.client import START_HINT, ControlClient, resolve_socket

#: Certificates closer than this to expiry are a WARN.
CERT_WARN_DAYS = 30
#: Less free space than this in the state dir is a FAIL (the outbox needs room during outages).
DISK_FAIL_BYTES = 100 * 1024 * 1024
DISK_WARN_BYTES = 1024 * 1024 * 1024
#: Daemon writes above this per day wear an SD card out within its service life.
WRITE_WARN_BYTES_PER_DAY = 1024**3
BROKER_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Finding:
    level: str  # OK | WARN | FAIL
    check: str
    message: str


def ok(check: str, message: str) -> Finding:
    return Finding("OK", check, message)


def warn(check: str, message: str) -> Finding:
    return Finding("WARN", check, message)


def fail(check: str, message: str) -> Finding:
    return Finding("FAIL", check, message)


@click.command()
@click.option("--config", "config_path", envvar=CONFIG_ENV, default=DEFAULT_CONFIG, show_default=True,
              type=click.Path(dir_okay=False), help="Site configuration to check against.")  # fmt: skip
@click.option("--socket", "socket_path", default=None, help="Control socket of the running daemon.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def doctor(config_path: str, socket_path: str | None, as_json: bool) -> None:
    """Check buses, devices, BLE, serial, broker, TLS, clock, disk and the systemd unit."""
    findings = run_checks(config_path, socket_path)
    if as_json:
        emit_json([asdict(f) for f in findings])
    else:
        for f in findings:
            click.echo(f"{f.level:<5}{f.check:<21}{f.message}")
    if any(f.level == "FAIL" for f in findings):
        raise SystemExit(1)


def run_checks(config_path: str, socket_path: str | None) -> list[Finding]:
    """Every check, in order; a check that crashes becomes a FAIL line instead of a traceback."""
    from edge_agent.config import load_config

    try:
        site = load_config(config_path)
    except EdgeError as exc:
        problems = getattr(exc, "problems", [])
        return [fail("config", f"{exc}{': ' + problems[0] if problems else ''}; run: edge-agent config check")]
    findings = [ok("config", f"{config_path} is valid ({len(site.sensors)} sensors, {len(site.actuators)} actuators)")]
    diag = _daemon_diagnostics(socket_path, site.storage.state_dir, findings)
    checks: list[Callable[[], list[Finding]]] = [
        lambda: check_i2c_buses(site),
        lambda: check_devices(site, diag),
        lambda: check_ble(site),
        lambda: check_serial(site),
        lambda: _building_checks(site, socket_path, diag is not None),
        lambda: check_broker(site),
        lambda: check_certificates(site),
        check_clock,
        lambda: check_disk(site.storage.state_dir, diag),
        check_unit,
    ]
    for check in checks:
        try:
            findings.extend(check())
        except Exception as exc:  # a doctor must finish its round
            findings.append(fail(getattr(check, "__name__", "check"), f"check crashed: {type(exc).__name__}: {exc}"))
    return findings


def _building_checks(site: Any, socket_path: str | None, daemon_answers: bool) -> list[Finding]:
    from edge_agent.cli.building_doctor import check_building  # DALI and BACnet, only when configured

    return check_building(site, socket_path, daemon_answers)


def _daemon_diagnostics(socket_path: str | None, state_dir: Path, findings: list[Finding]) -> dict[str, Any] | None:
    try:
        with ControlClient(resolve_socket(socket_path, state_dir), timeout_s=10) as client:
            diag: dict[str, Any] = client.request("diagnostics")
            diag["_uptime_s"] = client.request("status").get("uptime_s")
    except EdgeError as exc:
        findings.append(warn("daemon", f"{exc}"))
        return None
    findings.append(ok("daemon", f"answering on its control socket (pid {diag.get('pid')})"))
    return diag


def _local_buses(site: Any) -> list[Any]:
    return [b for b in site.buses if b.kind == "linux"]


def check_i2c_buses(site: Any) -> list[Finding]:
    """The gateway's own I2C buses exist and this user may open them."""
    out = []
    for bus in _local_buses(site):
        dev = Path(bus.device)
        if not dev.exists():
            advice = "enable I2C (sudo raspi-config nonint do_i2c 0, or dtparam=i2c_arm=on in config.txt) and reboot"
            out.append(fail(f"i2c {bus.id}", f"{dev} does not exist; {advice}"))
        elif not os.access(dev, os.R_OK | os.W_OK):
            out.append(fail(f"i2c {bus.id}", f"{dev} is not readable/writable by {_me()}; "
                                             f"add the user to group i2c (sudo usermod -aG i2c {_me()})"))  # fmt: skip
        else:
            out.append(ok(f"i2c {bus.id}", f"{dev} present and permitted"))
    return out or [ok("i2c", "no local I2C buses configured")]


def check_devices(site: Any, diag: dict[str, Any] | None) -> list[Finding]:
    """Expected devices answer: asked of the daemon, or probed directly when no daemon runs."""
    if diag is not None:
        probes = diag.get("devices") or []
        silent = [p for p in probes if not p.get("answered")]
        if not silent:
            return [ok("devices", f"all {len(probes)} expected devices answer (probed by the daemon)")]
        names = ", ".join(f"{p['sensor']} ({p.get('detail') or 'no answer'})" for p in silent[:5])
        more = f" and {len(silent) - 5} more" if len(silent) > 5 else ""
        return [fail("devices", f"{len(silent)} of {len(probes)} silent: {names}{more}; check wiring and addresses "
                                "(edge-agent sensors list)")]  # fmt: skip
    buses = {b.id: b for b in site.buses}
    local = [s for s in site.sensors if s.bus in buses and _root(buses, s.bus).kind == "linux"]
    remote = len([s for s in site.sensors if s.bus in buses]) - len(local)
    out: list[Finding] = []
    if local:
        out.extend(_probe_directly(local, buses))
    if remote:
        out.append(warn("devices", f"{remote} sensors on node buses not checked: they are reached through the "
                                   f"bridge by the daemon; {START_HINT}, then run doctor again"))  # fmt: skip
    return out or [ok("devices", "no I2C sensors configured")]


def _root(buses: dict[str, Any], bus_id: str) -> Any:
    bus = buses[bus_id]
    return buses.get(bus.parent, bus) if bus.kind == "mux" else bus


def _probe_directly(sensors: list[Any], buses: dict[str, Any]) -> list[Finding]:
    from smbus2 import SMBus

    silent: list[str] = []
    for root_id in sorted({_root(buses, s.bus).id for s in sensors}):
        root = buses[root_id]
        try:
            smbus = SMBus(int(str(root.device).rsplit("-", 1)[-1]))
        except (OSError, ValueError) as exc:
            return [fail("devices", f"cannot probe: {root.device} cannot be opened ({getattr(exc, 'strerror', exc)});"
                                    " fix the i2c line above first")]  # fmt: skip
        with contextlib.closing(smbus):
            for s in sensors:
                bus = buses[s.bus]
                if _root(buses, s.bus).id != root_id:
                    continue
                try:
                    if bus.kind == "mux":
                        smbus.write_byte(bus.address, 1 << bus.channel)  # select the TCA9548A channel
                    smbus.write_quick(s.address)  # address-only probe, as i2cdetect does
                except OSError:
                    silent.append(f"{s.id}@0x{s.address:02x}")
    if silent:
        return [fail("devices", f"no answer (probed directly, no daemon): {', '.join(silent[:6])}; check wiring, "
                                "power and addresses")]  # fmt: skip
    return [ok("devices", f"{len(sensors)} local devices answer (probed directly; no daemon running)")]


def check_ble(site: Any) -> list[Finding]:
    adapters = sorted(Path(p).name for p in glob.glob("/sys/class/bluetooth/hci*"))
    needed = [s.id for s in site.sensors if s.ble_address]
    if adapters:
        return [ok("ble", f"adapter {', '.join(adapters)} present")]
    if needed:
        return [fail("ble", f"no Bluetooth adapter but {len(needed)} BLE sensors are configured; check `rfkill list` "
                            "and `systemctl status bluetooth`")]  # fmt: skip
    return [ok("ble", "no BLE sensors configured (no adapter present)")]


def check_serial(site: Any) -> list[Finding]:
    ports = {}
    if site.bridge is not None:
        ports[site.bridge.port] = "bridge"
    for s in site.sensors:
        if s.serial_port:
            ports[s.serial_port] = s.id
    out = []
    for port, user in ports.items():
        check = f"serial {user}"
        if not Path(port).exists():
            out.append(fail(check, f"{port} does not exist; check the USB cable and `ls -l /dev/serial/by-id/`"))
        elif not os.access(port, os.R_OK | os.W_OK):
            out.append(fail(check, f"{port} not accessible by {_me()}; sudo usermod -aG dialout {_me()}"))
        else:
            out.append(ok(check, f"{port} present and permitted"))
    return out or [ok("serial", "no serial ports configured")]


def check_broker(site: Any) -> list[Finding]:
    """A real MQTT connect with the configured TLS and credentials, with a short timeout."""
    b = site.broker
    where = f"{b.host}:{b.port}"
    try:
        username, password = _credentials(b.credentials_file)
        tls = _tls_context(b.tls) if b.tls is not None else None
    except (OSError, ValueError, ssl.SSLError) as exc:
        return [fail("broker", f"{exc}")]
    try:
        asyncio.run(_mqtt_connect(b.host, b.port, username, password, tls))
    except TimeoutError:
        return [fail("broker", f"{where}: no answer within {BROKER_TIMEOUT_S:.0f} s; check the network and firewall")]
    except Exception as exc:
        text = str(exc)
        if any(w in text.lower() for w in ("authoriz", "password", "bad user")):
            return [fail("broker", f"{where}: credentials refused ({text}); check {b.credentials_file}")]
        return [fail("broker", f"{where}: cannot connect ({text}); is the broker running and reachable?")]
    auth = f" as {username}" if username else " anonymously"
    return [ok("broker", f"connected to {where}{' with TLS' if tls else ''}{auth}")]


async def _mqtt_connect(host: str, port: int, username: str | None, password: str | None,
                        tls: ssl.SSLContext | None) -> None:  # fmt: skip
    import aiomqtt

    client = aiomqtt.Client(host, port, username=username, password=password, tls_context=tls,
                            timeout=BROKER_TIMEOUT_S, identifier=f"edge-agent-doctor-{os.getpid()}")  # fmt: skip
    async with asyncio.timeout(BROKER_TIMEOUT_S + 1), client:
        pass


def _credentials(path: Path | None) -> tuple[str | None, str | None]:
    if path is None:
        return None, None
    try:
        line = path.read_text().strip().splitlines()[0]
    except (OSError, IndexError) as exc:
        raise ValueError(f"credentials file {path} cannot be read ({exc}); it holds user:password on one line") from exc
    user, sep, password = line.partition(":")
    if not sep or not user:
        raise ValueError(f"credentials file {path} must hold user:password on one line")
    return user, password


def _tls_context(tls: Any) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(tls.ca_file))
    if tls.cert_file is not None:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    return ctx


def check_certificates(site: Any) -> list[Finding]:
    tls = site.broker.tls
    if tls is None:
        local = site.broker.host in ("127.0.0.1", "localhost", "::1")
        if local:
            return [ok("tls", "not used (broker on loopback)")]
        return [warn("tls", f"broker {site.broker.host} is reached without TLS; add [broker.tls] ca_file")]
    out = []
    for label, path in (("ca", tls.ca_file), ("client cert", tls.cert_file)):
        if path is not None:
            out.append(certificate_finding(f"tls {label}", Path(path), time.time()))
    return out


def certificate_finding(check: str, path: Path, now: float) -> Finding:
    """WARN under CERT_WARN_DAYS left, FAIL when expired or unreadable."""
    try:
        expires = certificate_expiry(path)
    except (OSError, ValueError) as exc:
        return fail(check, f"{path}: cannot read the certificate ({exc})")
    days = (expires - now) / 86400
    when = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%d")
    if days < 0:
        return fail(check, f"{path} expired on {when}; install a renewed certificate")
    if days < CERT_WARN_DAYS:
        return warn(check, f"{path} expires in {days:.0f} days ({when}); renew it soon")
    return ok(check, f"{path} valid until {when} ({days:.0f} days)")


def certificate_expiry(path: Path) -> float:
    """notAfter of a PEM certificate (wall seconds): the cryptography package if present, else openssl."""
    try:
        x509: Any = importlib.import_module("cryptography.x509")
    except ImportError:
        x509 = None
    if x509 is not None:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        return float(cert.not_valid_after_utc.timestamp())
    if shutil.which("openssl") is None:
        raise ValueError("neither the cryptography package nor openssl is installed")
    proc = subprocess.run(["openssl", "x509", "-enddate", "-noout", "-in", str(path)],
                          capture_output=True, text=True, timeout=10, check=False)  # fmt: skip
    if proc.returncode != 0 or "=" not in proc.stdout:
        raise ValueError(proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else "not a PEM certificate")
    stamp = proc.stdout.strip().split("=", 1)[1]  # e.g. "Jun  1 12:00:00 2031 GMT"
    return datetime.strptime(" ".join(stamp.split()), "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC).timestamp()


def check_clock() -> list[Finding]:
    from edge_agent.clock import SystemClock

    if SystemClock().synced:
        return [ok("clock", "synchronised")]
    return [warn("clock", "not synchronised: timestamps are marked unsynced; check `timedatectl` and enable "
                          "systemd-timesyncd (sudo timedatectl set-ntp true)")]  # fmt: skip


def check_disk(state_dir: Path, diag: dict[str, Any] | None) -> list[Finding]:
    existing = state_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    out: list[Finding] = []
    mb = free / 1024**2
    if free < DISK_FAIL_BYTES:
        out.append(fail("disk", f"{state_dir}: only {mb:.0f} MB free; the outbox needs room, free some space"))
    elif free < DISK_WARN_BYTES:
        out.append(warn("disk", f"{state_dir}: {mb:.0f} MB free; under 1 GB, clean up soon"))
    else:
        out.append(ok("disk", f"{state_dir}: {free / 1024**3:.1f} GB free"))
    if not state_dir.exists():
        out.append(warn("state dir", f"{state_dir} does not exist yet; sudo edge-agent install-service creates it"))
    out.append(_write_rate(diag))
    return out


def _write_rate(diag: dict[str, Any] | None) -> Finding:
    if diag is None or not diag.get("pid"):
        return warn("write rate", "unknown: the daemon is not running")
    try:
        io = dict(line.split(": ", 1) for line in Path(f"/proc/{diag['pid']}/io").read_text().splitlines())
        written = int(io["write_bytes"])
    except (OSError, KeyError, ValueError) as exc:
        return warn("write rate", f"unknown: cannot read /proc/{diag['pid']}/io ({exc}); run doctor with sudo")
    uptime = float(diag.get("_uptime_s") or 0)
    if uptime < 60:
        return ok("write rate", f"{written / 1024**2:.1f} MB written so far (daemon just started)")
    per_day = written / uptime * 86400
    text = f"{per_day / 1024**2:.0f} MB/day to storage by the daemon"
    if per_day > WRITE_WARN_BYTES_PER_DAY:
        return warn("write rate", f"{text}: wears the SD card; check outbox size and log level")
    return ok("write rate", text)


def check_unit() -> list[Finding]:
    if shutil.which("systemctl") is None:
        return [warn("systemd", "systemctl not found: run the daemon under systemd (sudo edge-agent install-service)")]
    try:
        proc = subprocess.run(["systemctl", "is-active", "edge-agent"], capture_output=True, text=True, timeout=5,
                              check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [warn("systemd", f"systemctl did not answer ({exc})")]
    state = proc.stdout.strip() or "unknown"
    if state == "active":
        return [ok("systemd", "edge-agent.service is active")]
    if not Path("/run/systemd/system").exists():  # containers, chroots: systemctl exists but PID 1 is not systemd
        return [warn("systemd", "this system was not booted with systemd; start the daemon by hand "
                                "(edge-agent run) or use a systemd host")]  # fmt: skip
    return [fail("systemd", f"edge-agent.service is {state}; {START_HINT} (logs: journalctl -u edge-agent -e)")]


def _me() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())
