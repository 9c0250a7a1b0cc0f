"""The Python a central system copies from docs/mqtt.md works against the gateway's own code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from edge_agent.cli import cli
from edge_agent.trust.audit import AuditLog
from edge_agent.trust.canonical import b64
from edge_agent.trust.envelope import check
from edge_agent.trust.gateway import GatewayTrust
from edge_agent.trust.keys import new_key
from edge_agent.trust.policy import Keyring, SecurityConf

DOC = (Path(__file__).resolve().parents[2] / "docs" / "mqtt.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", DOC, re.S)


class Client:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def publish(self, topic: str, payload: str, qos: int = 0) -> None:
        self.sent.append((topic, payload))


def test_the_signing_example_makes_a_request_the_gateway_accepts() -> None:
    key = new_key("central-2025")
    client = Client()
    exec(BLOCKS[0], {"SECRET_KEY": b64(bytes(key.signing)), "client": client})
    topic, payload = client.sent[0]
    assert topic.endswith("/cmd/set_override")
    ring = Keyring(SecurityConf.model_validate({"keys": [{"id": "central-2025", "role": "central",
                                                          "public_key": key.public}]}))
    request = json.loads(payload)
    verdict = check(ring, "set_override", "central-library/gw-floor-3", request, now=request["auth"]["issued_at"],
                    synced=True, time_floor=0)
    assert verdict.accepted and verdict.reason is None, verdict


async def test_the_anchoring_example_accepts_a_log_that_extends_the_heads_and_refuses_one_that_does_not(
        trust: GatewayTrust, tmp_path: Path) -> None:
    namespace: dict[str, Any] = {}
    exec(BLOCKS[0].split("key = SigningKey")[0] + BLOCKS[1], namespace)
    heads = []
    for i in range(6):
        trust.record("command", "central-1", {"n": i, "level": i / 3, "note": "é"})
        await trust.flush()
        heads.append(trust.head_document())
    for head in heads:
        namespace["head_is_signed"](head, heads[0]["public_key"])
    kept = [(h["audit_seq"], h["hash"]) for h in heads[1::2]]
    db = str(tmp_path / "audit.sqlite3")
    export = CliRunner().invoke(cli, ["audit", "show", "--db", db, "--json", "--from-seq", str(kept[0][0])]).output
    namespace["extends"](kept, export.splitlines())
    rewritten = [json.loads(line) for line in export.splitlines()]
    rewritten[-1]["data"]["n"] = 99
    try:
        namespace["extends"](kept, [json.dumps(r) for r in rewritten])
    except AssertionError as exc:
        assert "was changed" in str(exc)
    else:
        raise AssertionError("a changed record passed the documented check")
    assert AuditLog(tmp_path / "audit.sqlite3", readonly=True).head.seq == heads[-1]["audit_seq"]
