"""The control socket: how the technicians' CLI talks to the running daemon.

:mod:`.protocol` defines the requests, results and the :class:`ControlTarget` the daemon
implements; :mod:`.server` serves it on a unix socket; :mod:`.client` is the CLI's side.
"""

from edge_agent.control.client import ControlClient, ControlRequestError, DaemonNotRunning, resolve_socket
from edge_agent.control.protocol import ControlRefused, ControlTarget, UnknownIdError, unknown_id_message
from edge_agent.control.server import ControlServer

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
