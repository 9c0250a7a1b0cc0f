"""The control socket: how the technicians' CLI talks to the running daemon.

:mod:`.protocol` defines the requests, results and the :class:`ControlTarget` the daemon
implements; :mod:`.server` serves it on a unix socket; :mod:`.client` is the CLI's side, and
:mod:`.wire` what both sides share (the socket's place, the line limit).

The names below are imported on first use: a CLI command that only talks to the daemon imports
:mod:`.client` and :mod:`.wire`, not the server and its request models (pydantic and most of the
configuration), which would cost every call a few tenths of a second of CPU.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_agent.control.client import ControlClient, ControlRequestError, DaemonNotRunning, resolve_socket
    from edge_agent.control.protocol import ControlRefused, ControlTarget, UnknownIdError
    from edge_agent.control.server import ControlServer
    from edge_agent.control.wire import unknown_id_message

_HOMES = {
    "ControlClient": "client", "ControlRequestError": "client", "DaemonNotRunning": "client",
    "resolve_socket": "client", "ControlRefused": "protocol", "ControlTarget": "protocol",
    "UnknownIdError": "protocol", "ControlServer": "server", "unknown_id_message": "wire",
}

__all__ = [
    "ControlClient",
    "ControlRefused",
    "ControlRequestError",
    "ControlServer",
    "ControlTarget",
    "DaemonNotRunning",
    "UnknownIdError",
    "resolve_socket",
    "unknown_id_message",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
