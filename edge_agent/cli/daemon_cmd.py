"""``edge-agent run``, ``edge-agent demo`` and ``edge-agent install-service``."""

from __future__ import annotations

import faulthandler
import logging
import os
import subprocess
import sys
from pathlib import Path

import click

from drivers.errors import ConfigError
from edge_agent.config import load_config
from edge_agent.logs import setup_logging

log = logging.getLogger("edge_agent.cli")

REPO_ROOT = Path(__file__).resolve().parents[2]


def parse_broker(value: str | None) -> tuple[str, int] | None:
    """HOST:PORT (or [v6]:PORT) -> tuple; a clear usage error otherwise."""
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{value!r}: write it as HOST:PORT, e.g. 127.0.0.1:1883", param_hint="--broker")
    return host.strip("[]"), int(port)


def print_stacks_on_crash() -> None:
    """A crash in an extension (SQLite, onnxruntime, numpy) kills the process without a Python
    traceback; with this, every thread's Python stack goes to stderr (the journal) first.

    Left as it is when already on (``PYTHONFAULTHANDLER``, a test runner), and skipped when
    stderr is no file (an in-process test runner's capture)."""
    if faulthandler.is_enabled():
        return
    try:
        faulthandler.enable()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both OSError and ValueError
        pass


@click.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              default=Path("/etc/edge-agent/gateway.toml"), show_default=True, help="Site configuration (TOML).")
@click.option("--state-dir", type=click.Path(path_type=Path), help="Where the outbox, registry and calibration live.")
@click.option("--broker", help="Override the configured broker, HOST:PORT.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
@click.option("--simulate", "scenario", type=click.Path(path_type=Path),
              help="Run on the simulated floor described by SCENARIO (a TOML file in simulator/scenarios/).")
@click.option("--as-fast-as-possible", "fast", is_flag=True, help="With --simulate: no waiting between events.")
@click.option("--speed", type=click.FloatRange(min=0.001),
              help="With --simulate: at most this many simulated seconds per wall second (fewer on a busy machine).")
@click.option("--report", type=click.Path(path_type=Path), help="With --simulate: write the JSON report here.")
@click.option("--render", type=click.Path(path_type=Path), help="With --simulate: write SVG floor maps here.")
@click.option("--seed", type=int, help="With --simulate: override the scenario's seed.")
@click.option("--baseline", is_flag=True,
              help="With --simulate: the conventional floor alone (no gateway, no daemon); reports its baseline_ "
                   "figures, which every gateway run also reports beside its own.")
def run(config_path: Path, state_dir: Path | None, broker: str | None, log_format: str, log_level: str,
        scenario: Path | None, fast: bool, speed: float | None, report: Path | None, render: Path | None,
        seed: int | None, baseline: bool) -> None:
    """Run the daemon: on real hardware, or with --simulate on the simulated floor."""
    print_stacks_on_crash()
    setup_logging(log_format, log_level)
    broker_addr = parse_broker(broker)
    if scenario is None:
        if fast or speed or report or render or seed is not None or baseline:
            raise click.UsageError("--as-fast-as-possible, --speed, --report, --render, --seed and --baseline need "
                                   "--simulate")
        from edge_agent.runner import run_gateway

        sys.exit(run_gateway(config_path, state_dir=state_dir, broker=broker_addr))
    if fast and speed:
        raise click.UsageError("choose one of --as-fast-as-possible and --speed")
    if baseline and render:
        raise click.UsageError("--render draws the gateway's floor; a --baseline run has none: drop one of them")
    if os.environ.get("PYTHONHASHSEED") is None:
        # A seeded day must repeat exactly: set and dict-of-set iteration order depends on string
        # hashing, which Python randomises per process unless told otherwise.
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, "-m", "edge_agent.cli", *sys.argv[1:]])
    from edge_agent.simulate import SimulationOptions, run_simulation

    result = run_simulation(SimulationOptions(
        scenario=scenario, state_dir=state_dir, broker=broker_addr, speed=None if fast or speed is None else speed,
        report=report, render=render, seed=seed, baseline=baseline,
    ))
    sys.exit(result)


@click.command()
@click.option("--broker", help="Use this broker (HOST:PORT) instead of starting an embedded one.")
@click.option("--scenario", type=click.Path(path_type=Path), default=None,
              help="Scenario to run (default: simulator/scenarios/normal-day.toml).")
@click.option("--report", type=click.Path(path_type=Path), help="Also write the JSON report here.")
def demo(broker: str | None, scenario: Path | None, report: Path | None) -> None:
    """One simulated library day on the example floor, with an embedded MQTT broker, then a report."""
    print_stacks_on_crash()
    setup_logging("text", "warning")
    from edge_agent.demo import run_demo

    sys.exit(run_demo(broker=parse_broker(broker), scenario=scenario, report=report))


@click.command("install-service")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="Config to install (if none yet).")
@click.option("--prefix", type=click.Path(path_type=Path), default=Path("/opt/edge-agent"), show_default=True)
def install_service(config_path: Path | None, prefix: Path) -> None:
    """Create the service user, install into a venv under /opt, install and enable the unit (root)."""
    if os.geteuid() != 0:
        raise click.ClickException("install-service must run as root (try: sudo edge-agent install-service)")
    if config_path is not None:
        try:
            load_config(config_path)
        except ConfigError as exc:
            raise click.ClickException(f"{exc}; fix it before installing") from None
    script = REPO_ROOT / "systemd" / "install.sh"
    env = dict(os.environ, PREFIX=str(prefix), SOURCE=str(REPO_ROOT))
    if config_path is not None:
        env["CONFIG"] = str(config_path)
    sys.exit(subprocess.call(["bash", str(script)], env=env))


