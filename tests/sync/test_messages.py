"""Payload models, topics, the privacy guard and the schema drift check (pure, no broker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drivers.errors import SyncError
from edge_agent.sync import schemas
from edge_agent.sync.messages import UPSTREAM_MODELS, Event, PrivacyError, Topics, assert_minimum_necessary
from edge_agent.sync.stream import mark_backfill


@pytest.mark.parametrize(
    "payload",
    [
        {"x": 1.0},
        {"zone": "z1", "data": {"Tag_ID": "abc"}},
        {"data": {"seats": [{"seat": "s1"}, {"position": [1, 2]}]}},
        {"data": {"frame": [[20.5] * 8] * 8}},
        {"a": {"b": {"c": {"pixels": []}}}},
        {"ranges": {"anchor-1": 3.2}},
        {"data": [{"y": 2}]},
    ],
)
def test_privacy_guard_rejects_raw_or_identifying_keys_at_any_depth(payload: dict[str, object]) -> None:
    with pytest.raises(PrivacyError) as info:
        assert_minimum_necessary(payload)
    assert "never leaves the gateway" in str(info.value)
    assert isinstance(info.value, SyncError)


def test_privacy_guard_names_the_path() -> None:
    with pytest.raises(PrivacyError) as info:
        assert_minimum_necessary({"data": {"list": [{"ok": 1}, {"tag": "t"}]}})
    assert info.value.path == "data.list[1].tag"


def test_privacy_guard_accepts_aggregates() -> None:
    assert_minimum_necessary({"zone": "z1", "people": {"value": 4, "quality": "good"}, "seat_x_count": 3})


def test_no_model_has_a_field_for_positions_tags_or_frames() -> None:
    def fields(schema: dict[str, object]) -> set[str]:
        found: set[str] = set()
        for value in schema.values():
            if isinstance(value, dict):
                found |= fields(value)
        props = schema.get("properties")
        if isinstance(props, dict):
            found |= set(props)
        return found

    for name, model in UPSTREAM_MODELS.items():
        names = {f.lower() for f in fields(model.model_json_schema())}
        assert not names & {"x", "y", "position", "tag", "tag_id", "pixels", "frame", "ranges"}, name


def test_topics_refuse_wildcards_and_separators() -> None:
    t = Topics("site", "gw")
    assert t.zone_summary("z1") == "library/v1/site/gw/zone/z1/summary"
    for bad in ("a/b", "+", "#", "", "z 1"):
        with pytest.raises(SyncError):
            t.zone_summary(bad)


def test_mark_backfill_flips_only_the_envelope_flag() -> None:
    msg = Event(seq=3, msg_id="gw:e:3", ts="2024-01-01T00:00:00.000Z", clock_synced=True, kind="k",
                data={"backfill": False})  # fmt: skip
    out = json.loads(mark_backfill(msg.model_dump_json().encode()))
    assert out["backfill"] is True
    assert out["data"] == {"backfill": False}


def test_checked_in_schemas_match_the_models() -> None:
    stale = schemas.drift()
    assert stale == [], f"run `python -m edge_agent.sync.schemas --write`; stale: {stale}"


def test_drift_check_notices_a_changed_schema(tmp_path: Path) -> None:
    assert schemas.main(["--write", "--dir", str(tmp_path)]) == 0
    assert schemas.drift(tmp_path) == []
    doc = json.loads((tmp_path / "health.json").read_text())
    doc["properties"].pop("dropped")
    (tmp_path / "health.json").write_text(json.dumps(doc))
    (tmp_path / "old.json").write_text("{}")
    assert schemas.drift(tmp_path) == ["health.json", "old.json"]
