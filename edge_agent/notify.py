"""systemd's notify protocol (sd_notify) without libsystemd.

The unit is ``Type=notify``: the daemon says ``READY=1`` once it runs, ``STATUS=...`` lines for
``systemctl status``, ``STOPPING=1`` on the way down, and ``WATCHDOG=1`` pings from a task on the
event loop itself, so a blocked loop stops pinging and systemd restarts the service. The
protocol is one datagram per message to the unix socket named in ``$NOTIFY_SOCKET`` (a leading
``@`` means the abstract namespace). With no ``$NOTIFY_SOCKET`` every call is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

log = logging.getLogger("edge_agent.notify")


class SystemdNotifier:
    """Sends sd_notify datagrams; silent when not started by systemd."""

    def __init__(self, socket_path: str | None = None) -> None:
        path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET")
        self._address: str | None = None
        self._sock: socket.socket | None = None
        if path:
            self._address = "\0" + path[1:] if path.startswith("@") else path
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *fields: str) -> bool:
        """Send ``KEY=VALUE`` fields in one datagram; False when disabled or the send failed."""
        if self._sock is None or self._address is None:
            return False
        try:
            self._sock.sendto("\n".join(fields).encode(), self._address)
            return True
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", self._address, exc)
            return False

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def reloading(self) -> bool:
        return self.send("RELOADING=1")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval() -> float | None:
    """Half the watchdog timeout systemd asked for (``$WATCHDOG_USEC``), or None when not set."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(0.05, int(usec) / 1e6 / 2)
    except ValueError:
        return None


async def watchdog_loop(notifier: SystemdNotifier, interval: float) -> None:
    """Ping the watchdog from the event loop itself: if the loop blocks, the pings stop."""
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)
