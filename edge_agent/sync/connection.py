"""Broker connection settings: credentials file, TLS context, reconnect backoff.

Kept apart from the uplink so ``edge-agent doctor`` can check credentials and TLS files with the
same rules the daemon applies, without connecting.
"""

from __future__ import annotations

import random
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path

from drivers.errors import SyncError
from edge_agent.config import TLS


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never print the password into a log
        return f"Credentials(username={self.username!r}, password=***)"


def read_credentials(path: Path) -> Credentials:
    """Read ``user:password`` from one line; refuse a file that other users can read."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SyncError(f"{path}: credentials file not found; write 'user:password' on one line into it") from None
    except OSError as exc:
        raise SyncError(f"{path}: cannot read the credentials file ({exc.strerror})") from None
    if mode & stat.S_IROTH:
        raise SyncError(
            f"{path}: the credentials file is world-readable; run 'chmod 600 {path}' (and chown it to the service user)"
        )
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if len(lines) != 1 or ":" not in lines[0]:
        raise SyncError(f"{path}: expected exactly one line 'user:password'")
    user, _, password = lines[0].partition(":")
    if not user:
        raise SyncError(f"{path}: the user name before ':' is empty")
    return Credentials(user, password)


def tls_context(tls: TLS) -> ssl.SSLContext:
    """A verifying client context from the configured CA and optional client certificate and key."""
    try:
        ctx = ssl.create_default_context(cafile=str(tls.ca_file))
        if tls.cert_file is not None:
            ctx.load_cert_chain(str(tls.cert_file), None if tls.key_file is None else str(tls.key_file))
    except FileNotFoundError as exc:
        raise SyncError(f"TLS file not found: {exc.filename}; check [broker.tls] in the config") from None
    except ssl.SSLError as exc:
        raise SyncError(f"TLS files cannot be used: {exc}; check [broker.tls] ca_file, cert_file, key_file") from None
    if tls.cert_file is None and tls.key_file is not None:
        raise SyncError("[broker.tls] key_file is set without cert_file; set both or neither")
    return ctx


class Backoff:
    """Backoff with jitter: ``base`` for the first ``steady`` failures, then 2x per failure, capped;
    reset after a good session.

    A broker restart or a short network cut (the common outages) is over within a minute: for
    those the gateway tries again every ``base`` seconds, so it is back within a second of the
    broker. Only a longer outage backs off exponentially, so a building's gateways do not
    hammer a broker that is down for good. Jitter (each delay drawn from [0.5, 1] of the
    nominal) keeps them from reconnecting in lockstep.
    """

    def __init__(self, base_s: float = 1.0, cap_s: float = 60.0, rng: random.Random | None = None,
                 steady: int = 45) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.steady = steady
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        doublings = max(0, self.failures - self.steady)
        nominal = min(self.cap_s, self.base_s * (2.0**doublings))
        self.failures += 1
        return nominal * self._rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.failures = 0
