"""Shared fixtures: a private mosquitto per test, the example floor config, a scratch state dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.config import SiteConfig, load_config
from tests.mosquitto import Mosquitto

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_FLOOR = ROOT / "examples" / "floor-3.toml"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real mosquitto on a free loopback port, stopped after the test."""
    with Mosquitto(tmp_path / "broker") as b:
        yield b


@pytest.fixture(scope="session")
def floor_config() -> SiteConfig:
    return load_config(EXAMPLE_FLOOR)
