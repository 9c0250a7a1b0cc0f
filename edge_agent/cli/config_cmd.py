"""``edge-agent config check FILE``: validate a site configuration without starting anything."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from drivers.errors import ConfigError
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
