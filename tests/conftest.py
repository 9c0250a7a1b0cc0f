"""Shared fixtures: a private mosquitto per test, the example floor config, a scratch state dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.config import SiteConfig, load_config
from tests.mosquitto import Mosquitto

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_FLOOR = ROOT / "examples" / "floor-3.toml"
#: The modules that take longest, longest first (wall seconds under ``-n 3`` on the 2-core machine,
#: 2026-12-06: the normal day about 250 s, the rest 40-130 s). Whichever worker is free takes the next
#: file, so a long file met last would run alone at the end; started first, the short ones fill in
#: around them. Re-measure with ``--durations`` when a module grows.
LONGEST_FIRST = (
    "tests/e2e/test_normal_day.py",  # the simulated day every e2e test of the normal day reads
    "tests/control/test_cli_on_simulator.py",
    "tests/federation/test_mixture.py",
    "tests/seats/test_live_floor.py",
    "tests/e2e/test_demo.py",
    "tests/contract/test_dead_daemon.py",
    "tests/e2e/test_sensor_failure.py",
    "tests/contract/test_signed.py",
    "tests/federation/test_daemon_federation.py",
    "tests/contract/test_commands.py",
    "tests/models/test_training_target.py",
    "tests/e2e/test_other_days.py",
    "tests/e2e/test_broker_outage.py",
    "tests/federation/test_federated_run.py",
    "tests/contract/test_fuzz.py",
    "tests/models/test_history_store.py",
)


def pytest_configure(config: pytest.Config) -> None:
    """Keep the order below under ``--dist loadfile``.

    pytest-xdist (3.5 and later) otherwise hands out files by how many tests each holds, most first,
    which put the one-test simulated days (a sensor failure, the demo) last, alone on one worker;
    3.8 lets that be turned off (``--no-loadscope-reorder``), which this does for every run.
    """
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long modules first, so that the workers (``-n 3 --dist loadfile``) end together.

    Files go to whichever worker is free, in collection order; a long end-to-end module collected
    last would leave one worker running it alone. The measured longest come first, in their order,
    then the other slow (end-to-end) modules, then the rest; the sort is stable: each file keeps
    its order.
    """

    def rank(item: pytest.Item) -> tuple[int, int]:
        path = item.path.relative_to(ROOT).as_posix() if item.path.is_relative_to(ROOT) else ""
        if path in LONGEST_FIRST:
            return 0, LONGEST_FIRST.index(path)
        return (1 if item.get_closest_marker("slow") else 2), 0

    items.sort(key=rank)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real mosquitto on a free loopback port, stopped after the test."""
    with Mosquitto(tmp_path / "broker") as b:
        yield b


@pytest.fixture(scope="session")
def floor_config() -> SiteConfig:
    return load_config(EXAMPLE_FLOOR)
