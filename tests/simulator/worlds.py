"""A world on a fresh virtual-time loop, for the simulator's own tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from edge_agent.config import SiteConfig
from simulator.clock import VirtualClock, run_virtual
from simulator.world import MemoryBinding, World
from simulator.world.scenario import Scenario

ROOT = Path(__file__).resolve().parents[2]
FLOOR = ROOT / "examples" / "floor-3.toml"


def in_world(cfg: SiteConfig, sc: Scenario, body: Callable[[World, MemoryBinding], Coroutine[Any, Any, Any]]) -> Any:
    """Build a world on a fresh virtual-time loop and run ``body`` with it."""

    async def main() -> Any:
        clock = VirtualClock(asyncio.get_running_loop(), sc.wall_start(ZoneInfo(cfg.site.timezone)))
        binding = MemoryBinding()
        return await body(World(cfg, sc, binding, clock), binding)

    return run_virtual(main())
