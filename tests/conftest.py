"""Shared fixtures: a private mosquitto per test, the example floor config, a scratch state dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.config import SiteConfig, load_config
from tests.mosquitto import Mosquitto

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_FLOOR = ROOT / "examples" / "floor-3.toml"
#: The simulated day every e2e test of the normal day reads: the single longest module.
LONGEST_FIRST = ("tests/e2e/test_normal_day.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long modules first, so that two workers (``-n 2 --dist loadfile``) end together.

    Files go to whichever worker is free, in collection order; a long end-to-end module collected
    last would leave one worker running it alone. The sort is stable: each file keeps its order.
    """

    def rank(item: pytest.Item) -> int:
        path = item.path.relative_to(ROOT).as_posix() if item.path.is_relative_to(ROOT) else ""
        return 0 if path in LONGEST_FIRST else 1 if item.get_closest_marker("slow") else 2

    items.sort(key=rank)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real mosquitto on a free loopback port, stopped after the test."""
    with Mosquitto(tmp_path / "broker") as b:
        yield b


@pytest.fixture(scope="session")
def floor_config() -> SiteConfig:
    return load_config(EXAMPLE_FLOOR)
