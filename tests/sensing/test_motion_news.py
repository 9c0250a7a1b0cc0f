"""PIR motion wakes the decide loop only when it is news: the first motion in a still zone."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from edge_agent.config import SiteConfig
from edge_agent.sensing.floor import MOTION_NEWS_AFTER_S, FloorModel
from tests.sensing.test_floor import Z1_THERMAL, feed


def _pir_of(cfg: SiteConfig, zone: str) -> str:
    return next(s.id for s in cfg.sensors if s.kind == "pir" and s.zone == zone)


def test_first_motion_in_a_still_zone_is_news_and_fidgets_are_not(floor_config: SiteConfig) -> None:
    model = FloorModel(floor_config)
    pir = _pir_of(floor_config, "z1-quiet")
    assert model.on_motion(pir, 100.0) is True  # nothing moved here before
    assert model.on_motion(pir, 105.0) is False  # a reader shifting in their seat
    assert model.on_motion(pir, 105.0 + MOTION_NEWS_AFTER_S - 1.0) is False
    # After a still spell as long as the news threshold, motion is news again.
    assert model.on_motion(pir, 104.0 + 2 * MOTION_NEWS_AFTER_S) is True


def test_motion_in_one_zone_is_news_in_another(floor_config: SiteConfig) -> None:
    model = FloorModel(floor_config)
    assert model.on_motion(_pir_of(floor_config, "z1-quiet"), 10.0) is True
    other = next(z.id for z in floor_config.zones if z.id != "z1-quiet")
    assert model.on_motion(_pir_of(floor_config, other), 11.0) is True


def test_motion_where_people_are_seen_is_not_news(floor_config: SiteConfig) -> None:
    """Readers shifting in their chairs do not wake the decide loop; the same motion in a still,
    empty zone does."""
    model = FloorModel(floor_config)
    rng = np.random.default_rng(3)
    feed(model, floor_config, 0, 130, rng)  # the empty room, learnt as background
    feed(model, floor_config, 130, 170, rng, {"S002": Z1_THERMAL[0]})
    assert model.snapshot(170, datetime(2025, 3, 4, 10, 0)).zones["z1-quiet"].people.value == 1.0
    assert model.on_motion(_pir_of(floor_config, "z1-quiet"), 200.0) is False
    assert model.on_motion(_pir_of(floor_config, "z2-group"), 200.0) is True


def test_a_seat_turning_occupied_is_news_once(floor_config: SiteConfig) -> None:
    model = FloorModel(floor_config)
    rng = np.random.default_rng(44)
    feed(model, floor_config, 0, 130, rng)
    assert model.take_seat_news() is False  # seats settling to free are not news
    feed(model, floor_config, 130, 150, rng, {"S002": Z1_THERMAL[0]})
    assert model.take_seat_news() is False  # a warm blob for 20 s: not yet a seated patron
    feed(model, floor_config, 150, 170, rng, {"S002": Z1_THERMAL[0]})
    assert model.take_seat_news() is True  # 30 s of presence: someone sat down
    assert model.take_seat_news() is False  # told once
    feed(model, floor_config, 170, 400, rng)
    assert model.take_seat_news() is False  # leaving is judged over minutes: not news
