"""The CLI's side of the control socket: a small blocking JSON-lines client.

The CLI is synchronous (click), and a request is one line out and one line back, so a plain
blocking socket with a timeout is the simplest thing that is robust. One client keeps one
connection open, so ``sensors watch`` reuses it for every read.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import tomllib
from pathlib import Path
from types import TracebackType
from typing import Any

from drivers.errors import EdgeError
from edge_agent.control.wire import DEFAULT_SOCKET, MAX_LINE, SOCKET_ENV, state_dir_socket

START_HINT = "start it with: sudo systemctl start edge-agent"


class DaemonNotRunning(EdgeError):
    """No daemon answers on the control socket."""


class ControlRequestError(EdgeError):
    """The daemon answered ``ok: false``; the message is its one-line reason."""


def socket_candidates(explicit: str | None = None, state_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where to look, in order: --socket, $EDGE_AGENT_SOCKET, the runtime dir, then the state dir's socket
    (``<state_dir>/control.sock``, or its short stand-in when that path is too long for a socket)."""
    if explicit:
        return [Path(explicit)]
    if os.environ.get(SOCKET_ENV):
        return [Path(os.environ[SOCKET_ENV])]
    found = [Path(DEFAULT_SOCKET)]
    if state_dir is not None:
        found.append(state_dir_socket(state_dir))
    return found


def configured_state_dir(config_path: str | os.PathLike[str] | None) -> Path | None:
    """``[storage] state_dir`` of a config file, read leniently: a technician editing a config that
    does not validate (yet) must still reach the daemon that runs the old one."""
    if not config_path:
        return None
    try:
        doc = tomllib.loads(Path(config_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    storage = doc.get("storage")
    value = storage.get("state_dir") if isinstance(storage, dict) else None
    return Path(value) if isinstance(value, str) and value else Path("/var/lib/edge-agent")


def resolve_socket(explicit: str | None = None, state_dir: str | os.PathLike[str] | None = None) -> Path:
    """The first candidate that exists; raise DaemonNotRunning naming every place looked at."""
    candidates = socket_candidates(explicit, state_dir)
    for path in candidates:
        if path.exists():
            return path
    tried = ", ".join(str(c) for c in candidates)
    raise DaemonNotRunning(f"daemon not running (no control socket at {tried}); {START_HINT}")


class ControlClient:
    """``with ControlClient(path) as c: c.request("read_sensor", sensor="lux-1")``."""

    def __init__(self, path: str | os.PathLike[str], *, timeout_s: float = 35.0) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._file: Any = None
        self._ids = itertools.count(1)
        self.on_behalf_of = os.environ.get("SUDO_USER") or None

    def connect(self) -> None:
        """Open the connection; translate the ways it fails into one actionable line."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout_s)
        try:
            sock.connect(str(self.path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise DaemonNotRunning(f"daemon not running (nothing listens on {self.path}); {START_HINT}") from exc
        except PermissionError as exc:
            sock.close()
            raise ControlRequestError(
                f"permission denied on {self.path}; ask an admin to add you to the edge-agent group "
                "(sudo usermod -aG edge-agent $USER), then log in again"
            ) from exc
        except OSError as exc:
            sock.close()
            raise DaemonNotRunning(f"cannot connect to {self.path}: {exc.strerror or exc}; {START_HINT}") from exc
        self._sock = sock
        self._file = sock.makefile("rb")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> ControlClient:
        self.connect()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def request(self, op: str, **args: Any) -> Any:
        """Send one request and return its ``result``; raise ControlRequestError with the daemon's reason."""
        response = self.exchange({"id": next(self._ids), "op": op, "args": args})
        if response.get("ok") is True:
            return response.get("result")
        raise ControlRequestError(str(response.get("error") or "the daemon refused the request"))

    def exchange(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send a raw request object, return the raw response object (tests use it for bad requests)."""
        if self._sock is None:
            self.connect()
        assert self._sock is not None
        if self.on_behalf_of and "on_behalf_of" not in request and "auth" not in request:  # a signature covers it all
            request = {**request, "on_behalf_of": self.on_behalf_of}
        try:
            self._sock.sendall(json.dumps(request).encode() + b"\n")
            return self.receive()
        except TimeoutError as exc:
            raise ControlRequestError(f"no answer from the daemon within {self.timeout_s:.0f} s") from exc
        except (BrokenPipeError, ConnectionResetError) as exc:
            try:  # a refused peer is told why before the server hangs up
                return self.receive()
            except (OSError, ValueError, EdgeError):
                pass
            raise DaemonNotRunning(f"the daemon closed the connection on {self.path}; {START_HINT}") from exc

    def receive(self) -> dict[str, Any]:
        """Read one response line."""
        line = self._file.readline(MAX_LINE * 64)
        if not line:
            raise DaemonNotRunning(f"the daemon closed the connection on {self.path}")
        doc = json.loads(line)
        if not isinstance(doc, dict):
            raise ControlRequestError("malformed response from the daemon")
        return doc
