"""The upstream is unreachable for an hour mid-day: every message produced meanwhile arrives, in order."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import run_observed

pytestmark = pytest.mark.slow


def test_outage_loses_nothing_and_replays_in_order(tmp_path: Path) -> None:
    report, capture = run_observed(tmp_path, "broker-outage")
    docs = [(t, d) for t, d in capture.json_docs() if isinstance(d, dict) and "msg_id" in d]
    produced = report["messages_produced"]
    assert produced > 100
    assert report["messages_dropped"] == 0
    assert produced - report["messages_delivered"] <= 20  # all but what was produced while stopping
    # Outbox messages (retained status and seat states are last-value state, not outbox rows).
    distinct = {d["msg_id"] for t, d in docs if not t.endswith("/status") and "/seat/" not in t}
    assert len(distinct) >= report["messages_delivered"]  # acknowledged ones all arrived (maybe more)
    backfilled = [d for _, d in docs if d.get("backfill")]
    assert backfilled, "messages produced during the outage must be replayed, flagged as backfill"
    # Per topic, the live stream and the backfill stream are each in sequence order.
    streams: dict[tuple[str, bool], list[int]] = defaultdict(list)
    for topic, d in docs:
        if "seq" in d and not topic.endswith("/status") and "/seat/" not in topic:
            streams[topic, bool(d.get("backfill"))].append(int(d["seq"]))
    disorder: list[Any] = [(k, s) for k, s in streams.items() if s != sorted(s)]
    assert disorder == []
