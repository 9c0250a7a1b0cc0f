"""``edge-agent config check FILE``: validate a site configuration without starting anything; ``config reload``:
ask the running daemon to apply it (the local way to rotate or revoke keys)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from drivers.errors import ConfigError, EdgeError
from edge_agent.config import load_config


@click.group()
def config() -> None:
    """Work with the site configuration file."""


@config.command("check")
@click.argument("file", type=click.Path(path_type=Path))
def check(file: Path) -> None:
    """Exit 0 when FILE is a valid configuration; otherwise list every problem and exit 2."""
    try:
        cfg = load_config(file)
    except ConfigError as exc:
        click.echo(f"{exc}", err=True)
        for line in exc.problems:
            click.echo(f"  {line}", err=True)
        sys.exit(2)
    click.echo(
        f"{file}: valid: site {cfg.site.id}, gateway {cfg.site.gateway}, {len(cfg.zones)} zones, "
        f"{len(cfg.seats)} seats, {len(cfg.sensors)} sensors, {len(cfg.actuators)} actuators"
    )


@config.command("reload")
@click.option("--config", "config_path", envvar="EDGE_AGENT_CONFIG", default="/etc/edge-agent/gateway.toml",
              show_default=True, type=click.Path(dir_okay=False), help="Site configuration (finds the socket).")
@click.option("--socket", "socket_path", default=None, help="Control socket of the running daemon.")
def reload(config_path: str, socket_path: str | None) -> None:
    """Ask the running daemon to re-read its config (keys rotated or revoked take effect); audited with your account."""
    from edge_agent.cli.technician import daemon

    with daemon(socket_path, config_path) as client:
        try:
            result = client.request("reload_config")
        except EdgeError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"reloading: config {result['config_hash']} replaces {result['previous_hash']}")
