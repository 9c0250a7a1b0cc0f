"""The whole daemon at steady state: CPU share and memory for a 200-seat floor.

The real daemon runs on the simulated floor with the configuration's own poll rates (thermopiles
every 2 s, light every 5 s, CO2 every 5 s, the decide loop every 2 s) for ten simulated minutes
at midday. The CPU it uses, less the simulated world's own share, divided by the simulated time,
is the share of one core it would use on a gateway as fast as this machine (a Pi 4 core is
several times slower). RSS is the process peak, with onnxruntime and the forecast model loaded.
"""

from __future__ import annotations

import logging
import resource
import tempfile
import time
from pathlib import Path

from simulator.floorgen import floor_toml

SCENARIO = """[scenario]
name = "bench-midday"
floor = "{floor}"
date = 2025-03-11
day_type = "normal"
seed = 3
start = "12:00"
end = "12:10"
"""


def run() -> list[tuple[str, float, str]]:
    from edge_agent import simulate
    from edge_agent.assembly import Tuning
    from simulator.clock import run_virtual

    logging.disable(logging.WARNING)
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        floor = root / "floor-200.toml"
        floor.write_text(floor_toml(zones=10, seats=200))
        scenario = root / "bench.toml"
        scenario.write_text(SCENARIO.format(floor=floor.as_posix()))
        cpu0, wall0 = time.process_time(), time.monotonic()
        gateway_rates = Tuning(decide_interval_s=2.0, arbiter_interval_s=0.5, node_poll_interval_s=1.0,
                               mqtt_timeout_s=1800.0)
        sim = simulate.Simulation(simulate.SimulationOptions(scenario=scenario, state_dir=root / "state",
                                                             broker=("127.0.0.1", 9), tuning=gateway_rates))
        report = run_virtual(sim.run())
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    sim_s = 600.0
    world_cpu = float(report.get("world_cpu_seconds") or 0.0)
    rows.append(("200 seats, gateway poll rates: daemon CPU share", 100.0 * (cpu - world_cpu) / sim_s,
                 "% of one core"))
    rows.append(("200 seats: wall time for 10 simulated minutes", wall, "s"))
    rows.append(("peak RSS (daemon + simulator + onnxruntime)",
                 resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, "MiB"))
    return rows


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:<60} {value:>10.3g} {unit}")
