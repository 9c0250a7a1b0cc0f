"""Benchmark: wall seconds per simulated hour of the world alone (no daemon), on the 120-seat floor.

A stub controller plays the daemon (lights full in zones where a seat is held, checked each
simulated second) so the closed loop and the latency bookkeeping are exercised as in a real run.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from edge_agent.config import load_config
from simulator.clock import VirtualClock, run_virtual
from simulator.world import MemoryBinding, World, load_scenario

ROOT = Path(__file__).resolve().parents[1]


def _day(scenario: str) -> tuple[float, float, float]:
    sc = load_scenario(ROOT / "simulator" / "scenarios" / scenario)
    cfg = load_config(sc.floor_path)
    zone_lights = {z.id: [a.id for a in cfg.actuators if a.kind == "light" and a.zone == z.id] for z in cfg.zones}

    async def main() -> tuple[float, float, float]:
        clock = VirtualClock(asyncio.get_running_loop(), sc.wall_start(ZoneInfo(cfg.site.timezone)))
        binding = MemoryBinding()
        world = World(cfg, sc, binding, clock)

        async def stub() -> None:
            for _ in range(100_000):
                for zone, lights in zone_lights.items():
                    on = 1.0 if world.people_in_zone(zone) > 0 else 0.0
                    for a in lights:
                        binding.lights[a] = on
                await asyncio.sleep(5.0)

        task = asyncio.create_task(stub())
        started = time.perf_counter()
        await world.run()
        wall = time.perf_counter() - started
        task.cancel()
        hours = (world.end_time - world.t0) / 3600.0
        return wall, world.cpu_seconds, hours

    return run_virtual(main())


def run() -> list[tuple[str, float, str]]:
    """(name, value, unit) rows for the benchmark table."""
    rows: list[tuple[str, float, str]] = []
    for scenario in ("normal-day.toml", "exam-week.toml"):
        wall, cpu, hours = _day(scenario)
        name = scenario.removesuffix(".toml")
        rows.append((f"world {name}: wall per simulated hour", wall / hours, "s/h"))
        rows.append((f"world {name}: world handlers per simulated hour", cpu / hours, "s/h"))
        rows.append((f"world {name}: wall per simulated day", wall, "s"))
    return rows


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:60s} {value:8.3f} {unit}")
