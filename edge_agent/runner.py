"""Running the daemon on a real gateway: real clock, systemd notify, signals, exit codes."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from drivers.errors import ConfigError, EdgeError
from edge_agent.clock import SystemClock
from edge_agent.config import load_config
from edge_agent.daemon import Daemon, DaemonOptions, check_daemon_paths, install_signal_handlers, serve

log = logging.getLogger("edge_agent.runner")


def run_gateway(config_path: Path, *, state_dir: Path | None = None, broker: tuple[str, int] | None = None) -> int:
    """Start the daemon on the real hardware backend; returns the process exit code."""
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        log.critical("%s", exc)
        for line in exc.problems:
            log.critical("  %s", line)
        return 2
    options = DaemonOptions(config_path=config_path, state_dir=state_dir, broker=broker)
    try:
        check_daemon_paths(state_dir or cfg.storage.state_dir, options)
    except ConfigError as exc:
        log.critical("cannot start: %s", exc)
        return 2

    async def main() -> int:
        from edge_agent.assembly import build_components

        daemon = Daemon(options, cfg, clock=SystemClock(), build=build_components)
        install_signal_handlers(daemon)
        try:
            await serve(daemon)
        except EdgeError:
            return 1
        return 0

    return asyncio.run(main())
