"""Where the control socket lives and how long a line may be: what both ends of it need.

The technicians' CLI starts once per command, so what it imports is paid on every call. The
request models of :mod:`edge_agent.control.protocol` (pydantic, and through the building and node
arguments most of the daemon's configuration) are the server's business; the client needs only the
socket's place, the line limit and the wording of an unknown id, which live here.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

#: Longest request line the server accepts (bytes, newline included). Requests are tiny.
MAX_LINE = 16 * 1024

#: Default socket path on a gateway (systemd ``RuntimeDirectory=edge-agent``).
DEFAULT_SOCKET = "/run/edge-agent/control.sock"

#: Environment variable that overrides the socket path for the CLI.
SOCKET_ENV = "EDGE_AGENT_SOCKET"

#: The longest path a unix socket can be bound at: ``sun_path`` holds 108 bytes with its final NUL.
SOCKET_PATH_MAX = 107

#: Where a deep state directory's socket goes instead (one directory per user, short on purpose).
SHORT_RUNTIME_ROOT = Path("/tmp")


def socket_path_bytes(path: str | os.PathLike[str]) -> int:
    return len(os.fsencode(os.path.abspath(path)))


def state_dir_socket(state_dir: str | os.PathLike[str]) -> Path:
    """Where a daemon without a runtime directory of its own serves its socket, for a state dir.

    ``<state_dir>/control.sock`` when that path fits a unix socket; otherwise a short path named
    after the state directory (``/tmp/edge-agent-<uid>/<digest>.sock``), so a simulated run in a
    deep temporary directory still has a socket, and the CLI, given the same state directory
    (``--config``), computes the same place.
    """
    state = Path(os.path.abspath(state_dir))
    path = state / "control.sock"
    if socket_path_bytes(path) <= SOCKET_PATH_MAX:
        return path
    digest = hashlib.sha256(os.fsencode(state)).hexdigest()[:16]
    return SHORT_RUNTIME_ROOT / f"edge-agent-{os.getuid()}" / f"{digest}.sock"


def unknown_id_message(what: str, wanted: str, known: Iterable[str]) -> str:
    """``unknown sensor 'x'; closest: a, b, c`` (difflib), or the first few ids when none is close."""
    ids = sorted(known)
    close = difflib.get_close_matches(wanted, ids, n=3, cutoff=0.5)
    if close:
        hint = f"closest: {', '.join(close)}"
    elif ids:
        more = f" (+{len(ids) - 5} more)" if len(ids) > 5 else ""
        hint = f"known: {', '.join(ids[:5])}{more}"
    else:
        hint = f"no {what}s are configured"
    return f"unknown {what} {wanted!r}; {hint}"
