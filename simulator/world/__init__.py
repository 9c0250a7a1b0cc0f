"""The simulated library floor: patrons, light, air and energy in a closed loop with the daemon.

The runtime's whole API::

    scenario = load_scenario("simulator/scenarios/normal-day.toml")
    cfg = load_config(scenario.floor_path)
    world = World(cfg, scenario, HardwareBinding(cfg, hardware, nodes), clock)
    world.set_daemon_probe(probe)
    for event in world.scheduled_events(): ...   # broker outage, power cut: the runtime's part
    await world.run(world.end_time)
    report = world.report({"wall_seconds": ..., "messages_produced": ...})
    world.render(directory)

See docs/simulator.md for every model and parameter.
"""

from simulator.world.binding import HardwareBinding, WorldBinding
from simulator.world.memory import MemoryBinding
from simulator.world.scenario import RUNTIME_EVENTS, Scenario, ScenarioEvent, load_scenario
from simulator.world.world import ScheduledEvent, World

__all__ = [
    "RUNTIME_EVENTS",
    "HardwareBinding",
    "MemoryBinding",
    "Scenario",
    "ScenarioEvent",
    "ScheduledEvent",
    "World",
    "WorldBinding",
    "load_scenario",
]
