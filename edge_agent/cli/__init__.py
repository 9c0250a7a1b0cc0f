"""The ``edge-agent`` command line.

Sub-commands live in their own modules and are imported only when invoked, so ``edge-agent
status`` on a Pi does not pay for onnxruntime or scikit-learn imports. Every failure a user can
cause ends with one clear line on stderr and a non-zero exit (2 for bad input), never a traceback.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from drivers.errors import EdgeError

# name -> "module:attribute" of a click command or group
COMMANDS: dict[str, str] = {
    "run": "edge_agent.cli.daemon_cmd:run",
    "demo": "edge_agent.cli.daemon_cmd:demo",
    "install-service": "edge_agent.cli.daemon_cmd:install_service",
    "config": "edge_agent.cli.config_cmd:config",
    "status": "edge_agent.cli.technician:status",
    "sensors": "edge_agent.cli.sensors_cmd:sensors",
    "calibrate": "edge_agent.cli.calibrate_cmd:calibrate",
    "actuators": "edge_agent.cli.technician:actuators",
    "seats": "edge_agent.cli.seats_cmd:seats",
    "doctor": "edge_agent.cli.doctor_cmd:doctor",
    "nodes": "edge_agent.cli.nodes_cmd:nodes",
    "uwb": "edge_agent.cli.uwb_cmd:uwb",
    "rules": "edge_agent.cli.rules_cmd:rules",
    "model": "edge_agent.cli.model_cmd:model",
    "dali": "edge_agent.cli.dali_cmd:dali",
    "bacnet": "edge_agent.cli.bacnet_cmd:bacnet",
    "federation": "edge_agent.cli.federation_cmd:federation",
    "keys": "edge_agent.cli.keys_cmd:keys",
    "audit": "edge_agent.cli.audit_cmd:audit",
}


SUMMARIES: dict[str, str] = {
    "run": "Run the daemon (real hardware, or --simulate SCENARIO).",
    "demo": "One simulated library day with an embedded broker, then a report.",
    "install-service": "Install the systemd unit, service user and venv (root).",
    "config": "Check a site configuration file; have the daemon reload it.",
    "status": "Gateway, broker, outbox, clock and sensor health at a glance.",
    "sensors": "List, read, watch and scan sensors.",
    "calibrate": "Calibrate a sensor against a reference, undo, history.",
    "actuators": "List actuators; test one with a timed override.",
    "seats": "Ghost seats and availability: list; release a seat staff cleared.",
    "doctor": "Check buses, devices, broker, TLS, clock, disk and the unit.",
    "nodes": "Firmware-bridge nodes: list, OTA update.",
    "uwb": "Solve UWB positions and range biases from recorded logs.",
    "rules": "Check a rule file; replay it over a recorded trace.",
    "model": "Train, evaluate and inspect the seat-demand model.",
    "dali": "Commission a DALI line: scan, assign short addresses, groups.",
    "bacnet": "Find BMS devices (Who-Is) and read their objects.",
    "federation": "Serve federated training of the forecast (Flower).",
    "keys": "Signing keys: generate, show, trust, revoke, sign an artefact.",
    "audit": "Verify and read the tamper-evident audit log.",
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUMMARIES.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        module = importlib.import_module(module_name)
        command: click.Command = getattr(module, attr)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edge-agent")
def cli() -> None:
    """Edge runtime for a smart-library floor gateway."""


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry: run the CLI, turning project errors into one line and exit code."""
    try:
        return cli.main(args=argv, prog_name="edge-agent", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        exc.show()
        sys.exit(2)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except EdgeError as exc:
        click.echo(f"error: {exc}", err=True)
        for line in getattr(exc, "problems", []) or []:
            click.echo(f"  {line}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
