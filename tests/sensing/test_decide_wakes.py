"""What wakes the decide loop, and how soon: seat news is coalesced, motion is not.

The daemon's parts on a virtual-time loop, wired as ``build_components`` wires them: simulated
thermopiles on desk nodes behind a memory RS-485 line and PIRs on GPIO pins, the real link,
hardware, pollers, floor model, rules, arbiter and decide loop (edge_agent.controller). Patrons
sit down under every thermopile but one zone's at once; their seats turn occupied frame by frame, spread over
the thermopiles' staggered polls, and each is seat news. Seat news passes the loop no sooner than
``news_gap_s`` after its last pass; motion in a still, empty zone passes it at once, however
recent the last pass.
"""

from __future__ import annotations

import asyncio
import itertools
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.actuation.arbiter import Arbiter
from edge_agent.assembly import Tuning
from edge_agent.config import load_config, parse_config
from edge_agent.controller import FloorController
from edge_agent.desks import DeskInputs
from edge_agent.pollers import SensorPollers
from edge_agent.sensing.floor import FloorModel
from edge_agent.simulate import build_nodes, tuning_for
from edge_agent.supervisor import Supervisor
from rules import load_rules
from rules.state import SeatStatus
from simulator.clock import VirtualClock
from simulator.floorgen import floor_toml
from simulator.hw.floor import build_simulated_hardware
from simulator.world.scenario import load_scenario
from tests.drivers.conftest import on_virtual_time
from tests.sensing.frames import add_warm, block_at
from tests.sensing.memory_line import hardware_on_memory_line

ROOT = Path(__file__).resolve().parents[2]
GAP_S = 1.0
SIT_AT = 130.0  # the empty room is background by then
MOTION_AFTER_S = 0.2  # after a pass: well inside the gap


def test_seat_news_is_coalesced_into_one_pass_per_gap_and_motion_passes_at_once(tmp_path: Path) -> None:
    cfg = parse_config(tomllib.loads(floor_toml(zones=4, seats=32)))
    pir = [s for s in cfg.sensors if s.kind == "pir"][-1]  # its zone stays empty, still and dark
    thermopiles = [s for s in cfg.sensors if s.kind == "amg8833"]
    seats = {s.id: s for s in cfg.seats}
    sitting = [t.seats[0] for t in thermopiles if t.zone != pir.zone]  # a patron under each other thermopile

    async def body(clock: VirtualClock) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        hw = build_simulated_hardware(cfg, clock.monotonic)
        async with hardware_on_memory_line(cfg, hw, build_nodes(cfg, hw).values(), clock, tmp_path) as (hardware, _):
            assert hardware.link is not None
            floor = FloorModel(cfg)
            controller = FloorController(cfg, floor, load_rules(), Arbiter(hardware.outputs, clock), clock,
                                         interval_s=2.0, news_gap_s=GAP_S)
            seat_news: list[float] = []
            news: list[float] = []
            passes: list[float] = []

            def on_seat_news(sensor_id: str, t: float) -> None:
                seat_news.append(loop.time())
                controller.seat_news(sensor_id, t)

            def on_news(sensor_id: str, t: float) -> None:
                news.append(loop.time())
                controller.wake(sensor_id, t)

            supervisor = Supervisor()
            pollers = SensorPollers(hardware, floor, clock, supervisor, tag_salt=b"salt", on_news=on_news,
                                    on_seat_news=on_seat_news)
            desks = DeskInputs(cfg, floor, controller, read_now=pollers.read_now)
            hardware.link.add_listener(desks.on_node_event)
            controller.listeners.append(lambda _state: passes.append(loop.time()))
            pollers.start()
            supervisor.start("decide", controller.run)
            rng = np.random.default_rng(7)

            async def scenes() -> None:  # the room as the thermopiles see it, patrons seated from SIT_AT
                while True:
                    for sensor in thermopiles:
                        assert sensor.mount is not None
                        frame = np.full((8, 8), 22.0) + rng.normal(0.0, 0.1, (8, 8))
                        for seat in sitting if loop.time() >= SIT_AT else ():
                            if seat in sensor.seats:
                                frame = add_warm(frame, block_at(sensor.mount, seats[seat].x, seats[seat].y), 4.0)
                        hw.devices[sensor.id].set_frame(frame)
                    await clock.sleep(0.5)

            supervisor.start("scenes", scenes)
            await clock.sleep(SIT_AT + 70.0)
            taken = {seat: floor.seat_status(seat) for seat in sitting}
            # Motion in a still, empty zone just after a pass: the lights must not wait for the gap.
            quiet = passes[-1]
            await clock.sleep(passes[-1] + 2.5 - loop.time())  # the next periodic pass and a little
            last = passes[-1]
            assert last > quiet
            motion_at = last + MOTION_AFTER_S
            await clock.sleep(motion_at - loop.time())
            hw.devices[pir.id].sense(True)
            await clock.sleep(0.5)
            await supervisor.stop()
        hw.close()
        return {"seat_news": seat_news, "news": news, "passes": passes, "taken": taken, "motion_at": motion_at,
                "last": last}

    got = on_virtual_time(body)
    assert all(status is SeatStatus.OCCUPIED for status in got["taken"].values()), got["taken"]
    seat_news = [t for t in got["seat_news"] if t >= SIT_AT]
    assert len(seat_news) >= 4, got["seat_news"]  # frames of different thermopiles turned the seats
    passes = [t for t in got["passes"] if SIT_AT <= t < got["motion_at"]]
    # Seat news passes the loop no sooner than the gap after the previous pass...
    gaps = [b - a for a, b in itertools.pairwise(passes)]
    assert min(gaps) >= GAP_S - 1e-6, (passes, seat_news)
    # ... and no later: every piece of seat news is followed by a pass within the gap.
    for t in seat_news:
        assert any(t <= p <= t + GAP_S + 1e-6 for p in got["passes"]), (t, got["passes"])
    # Fewer passes than pieces of news and periods would have made at once.
    periodic = (got["motion_at"] - SIT_AT) / 2.0
    assert len(passes) < periodic + len(seat_news)
    # Motion: news (the PIR's own settling and debounce take a few tenths), and a pass in the same
    # instant, though the previous pass was less than the gap before.
    motion = [t for t in got["news"] if t >= got["motion_at"]]
    assert motion, got["news"]
    after = [p for p in got["passes"] if p >= motion[0]]
    assert after and after[0] - motion[0] < 1e-6, (motion, after)
    assert after[0] - got["last"] < GAP_S, (got["last"], after)


def test_the_gateway_coalesces_seat_news_and_the_simulated_day_wakes_at_once() -> None:
    """A gateway's tuning coalesces seat news; the simulated day's keeps waking at once, so its
    report (the seats' and lights' timing) stays comparable with the days recorded before."""
    scenario = load_scenario(ROOT / "simulator" / "scenarios" / "normal-day.toml")
    assert Tuning().seat_news_gap_s == GAP_S
    assert tuning_for(scenario, load_config(scenario.floor_path)).seat_news_gap_s == 0.0
