"""The uplink's reconnect backoff: quick retries through a short outage, exponential after."""

from __future__ import annotations

import random

from edge_agent.sync.connection import Backoff


def test_short_outages_retry_within_a_second_then_back_off_exponentially() -> None:
    backoff = Backoff(base_s=1.0, cap_s=60.0, rng=random.Random(1), steady=45)
    delays = [backoff.next_delay() for _ in range(52)]
    assert all(0.5 <= d <= 1.0 for d in delays[:46])  # a broker restart: back within a second
    assert 1.0 < delays[46] <= 2.0 and 2.0 < delays[47] <= 4.0
    assert 30.0 <= delays[51] <= 60.0  # capped
    backoff.reset()
    assert backoff.next_delay() <= 1.0
