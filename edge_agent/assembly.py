"""Assembling the daemon's components from the configuration and a hardware backend.

This is the one place where the layers meet: the backend's buses and outputs, the sensing
pipeline, the rules and arbiter, the MQTT uplink and the control socket. Each piece is a
:class:`edge_agent.daemon.Component` with a start and a stop, so a config reload rebuilds
exactly what the configuration describes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from edge_agent.daemon import Component

if TYPE_CHECKING:
    from edge_agent.daemon import Daemon

log = logging.getLogger("edge_agent.assembly")


async def build_components(daemon: Daemon) -> list[Component]:
    """The components of a running gateway, in start order."""
    return []
