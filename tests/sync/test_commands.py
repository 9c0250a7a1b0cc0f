"""Command validation, dispatch, the replay cache and model chunk reassembly (real SQLite, no broker)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge_agent.sync.commands import CommandProcessor, ModelTransfer, ResultCache, SetOverride
from edge_agent.sync.outbox import Outbox
from tests.sync.conftest import RecordingTarget


@pytest.fixture
async def processor(tmp_path: Path, target: RecordingTarget) -> AsyncIterator[CommandProcessor]:
    async with Outbox(tmp_path / "o.sqlite3") as ob:
        cache = ResultCache(ob.call)
        await cache.open()
        yield CommandProcessor(target, cache, max_request_bytes=4096, transfer=ModelTransfer(max_bytes=10_000))


def req(rid: str, **args: object) -> bytes:
    return json.dumps({"id": rid, "args": args}).encode()


@pytest.mark.parametrize(
    ("name", "raw", "code", "fragment"),
    [
        ("set_override", b"{not json", "bad_json", "not valid JSON"),
        ("set_override", b"\xff\xfe", "bad_json", "not valid JSON"),
        ("set_override", b"[1, 2]", "bad_request", "Input should be a valid dictionary"),
        ("set_override", b'{"args": {}}', "bad_request", "id: Field required"),
        ("set_override", b'{"id": 5}', "bad_request", "id: Input should be a valid string"),
        ("set_override", b'{"id": "a/b"}', "bad_request", "id: String should match pattern"),
        ("set_override", b'{"id": "c1", "extra": 1}', "bad_request", "extra: Extra inputs are not permitted"),
        ("launch_rockets", b'{"id": "c2"}', "unknown_command", "unknown command 'launch_rockets'"),
        ("set_override", req("c3", target_kind="zone", target="z1", level="bright"), "bad_request", "args.level"),
        ("set_override", req("c4", target_kind="room", target="z1", level=0.5), "bad_request", "args.target_kind"),
        ("set_override", req("c5", target_kind="zone", target="z1", level=1.5), "bad_request", "less than or equal"),
        ("reload_rules", req("c6", now=True), "bad_request", "args.now: Extra inputs"),
        ("set_override", b'{"id": "c7", "args": {"pad": "' + b"x" * 5000 + b'"}}', "too_large", "the limit is 4096"),
    ],
)
async def test_malformed_requests_get_clear_errors_and_change_nothing(
    processor: CommandProcessor, target: RecordingTarget, name: str, raw: bytes, code: str, fragment: str
) -> None:
    outcome = await processor.handle(name, raw)
    assert not outcome.ok
    assert outcome.error_code == code
    assert fragment in (outcome.error or ""), outcome.error
    assert target.calls == []


async def test_valid_command_executes_once_and_replay_is_answered_from_cache(
    processor: CommandProcessor, target: RecordingTarget
) -> None:
    raw = req("ov-1", target_kind="zone", target="z1", level=0.3, duration_s=600)
    first = await processor.handle("set_override", raw)
    again = await processor.handle("set_override", raw)
    assert first.ok and first.result == {"done": "set_override"} and not first.replayed
    assert again.ok and again.result == first.result and again.replayed
    assert target.calls == [("set_override", SetOverride(target_kind="zone", target="z1", level=0.3, duration_s=600))]


async def test_replay_cache_survives_a_restart(tmp_path: Path, target: RecordingTarget) -> None:
    for _ in range(2):
        async with Outbox(tmp_path / "o.sqlite3") as ob:
            cache = ResultCache(ob.call)
            await cache.open()
            outcome = await CommandProcessor(target, cache).handle("reload_rules", req("r-1"))
    assert outcome.replayed and outcome.ok
    assert [c[0] for c in target.calls] == ["reload_rules"]


async def test_project_error_becomes_a_failed_result(processor: CommandProcessor, target: RecordingTarget) -> None:
    target.fail = "rules.toml: rule 'dim' has no condition"
    outcome = await processor.handle("reload_rules", req("r-2"))
    assert not outcome.ok and outcome.error_code == "failed"
    assert outcome.error == "rules.toml: rule 'dim' has no condition"


async def test_result_with_private_data_is_withheld(processor: CommandProcessor, target: RecordingTarget) -> None:
    async def leaky() -> dict[str, object]:
        return {"seats": [{"tag_id": "abc"}]}

    target.reload_config = leaky  # type: ignore[method-assign]
    outcome = await processor.handle("reload_config", req("r-3"))
    assert not outcome.ok and outcome.error_code == "privacy"
    assert "abc" not in json.dumps(outcome.to_fields())


def chunks(data: bytes, size: int, transfer: str = "t1") -> list[bytes]:
    digest = hashlib.sha256(data).hexdigest()
    parts = [data[i : i + size] for i in range(0, len(data), size)]
    return [
        req(
            f"{transfer}-{i}",
            transfer_id=transfer,
            index=i,
            count=len(parts),
            total_size=len(data),
            sha256=digest,
            data=base64.b64encode(p).decode(),
        )
        for i, p in enumerate(parts)
    ]


async def test_model_chunks_reassemble_out_of_order(processor: CommandProcessor, target: RecordingTarget) -> None:
    data = bytes(range(256)) * 20  # 5120 bytes
    requests = chunks(data, 1000)
    order = [3, 0, 5, 1, 4, 2]
    outcomes = [await processor.handle("update_model", requests[i]) for i in order]
    assert all(o.ok for o in outcomes)
    assert outcomes[0].result == {"transfer_id": "t1", "received": 1, "of": 6}
    assert outcomes[-1].result == {"transfer_id": "t1", "complete": True, "bytes": 5120}
    assert target.calls == [("update_model", (data, hashlib.sha256(data).hexdigest()))]


async def test_model_with_wrong_digest_or_size_is_refused(processor: CommandProcessor, target: RecordingTarget) -> None:
    data = b"model" * 100
    bad = [json.loads(r) for r in chunks(data, 200, "t2")]
    for r in bad:
        r["args"]["sha256"] = "0" * 64
    outcomes = [await processor.handle("update_model", json.dumps(r).encode()) for r in bad]
    assert not outcomes[-1].ok and "SHA-256" in (outcomes[-1].error or "")
    too_big = json.loads(chunks(b"x" * 100, 100, "t3")[0])
    too_big["args"]["total_size"] = 20_000
    outcome = await processor.handle("update_model", json.dumps(too_big).encode())
    assert outcome.error_code == "bad_request" and "exceeds the limit" in (outcome.error or "")
    not_b64 = json.loads(chunks(b"x" * 100, 100, "t4")[0])
    not_b64["args"]["data"] = "***"
    outcome = await processor.handle("update_model", json.dumps(not_b64).encode())
    assert outcome.error_code == "bad_request" and "base64" in (outcome.error or "")
    assert target.calls == []
