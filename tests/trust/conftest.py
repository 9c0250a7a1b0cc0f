"""Keys in every role, a settable clock, and a gateway's trust over real SQLite files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.trust.gateway import GatewayTrust
from edge_agent.trust.keys import KeyFile, new_key
from edge_agent.trust.policy import AuditConf, SecurityConf

SITE, GATEWAY = "central-library", "gw-floor-3"
AUDIENCE = f"{SITE}/{GATEWAY}"
NOW = 1_741_083_362.0


class SettableClock:
    """Wall time the test sets, synchronised or not."""

    def __init__(self, t: float = NOW, synced: bool = True) -> None:
        self.t = t
        self.synced = synced

    def time(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture(scope="session")
def keys() -> dict[str, KeyFile]:
    """One key per role, plus a stranger nobody trusts and a revoked operator."""
    return {name: new_key(name) for name in ("central", "operator", "technician", "publisher", "stranger", "old")}


def security(keys: dict[str, KeyFile], **extra: Any) -> SecurityConf:
    roles = {"central": "central", "operator": "operator", "technician": "technician", "publisher": "model-publisher",
             "old": "operator"}
    listed = [{"id": k, "role": r, "public_key": keys[k].public, "revoked": k == "old"} for k, r in roles.items()]
    return SecurityConf.model_validate({"keys": listed, **extra})


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
async def trust(tmp_path: Path, keys: dict[str, KeyFile], clock: SettableClock) -> AsyncIterator[GatewayTrust]:
    gt = await GatewayTrust(tmp_path, SITE, GATEWAY, security(keys), AuditConf(), clock).open()
    yield gt
    await gt.close()
