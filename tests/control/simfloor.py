"""The real daemon on the simulated floor, on a virtual-time loop in a thread, for end-to-end CLI tests.

:class:`LiveFloor` runs :class:`edge_agent.simulate.Simulation` (world, simulated parts, nodes and
the daemon with its control socket) on a paced virtual-time loop (as fast as possible, never ahead
of ``speed`` simulated seconds per wall second), so a CLI started as a subprocess
talks to a daemon whose clock keeps moving. Tests own the truth of a few sensors through
:class:`HeldBinding`: once held, the world no longer writes that sensor's physics, and the test sets
it on the simulated part itself (``floor.on_loop(device.set_lux, 400.0)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard, TypeVar

import numpy as np
import numpy.typing as npt

from edge_agent.assembly import Gateway
from edge_agent.config import SiteConfig
from edge_agent.control.wire import state_dir_socket
from edge_agent.simulate import Simulation, SimulationOptions
from simulator.clock import VirtualTimeLoop
from simulator.world.binding import HardwareBinding

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

# Shorter polls than a day-long scenario uses, so a few wall seconds show several readings.
SCENARIO = """\
[scenario]
name = "cli-on-simulator"
floor = "{floor}"
date = 2025-03-11
weather = "overcast"
seed = 5
start = "07:30"
end = "21:00"

[sim]
amg8833_poll_s = 10
bh1750_poll_s = 5
sht31_poll_s = 10
sht4x_poll_s = 10
scd41_poll_s = 5
dwm1001_poll_s = 60
"""


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class HeldBinding(HardwareBinding):
    """The world's binding, except for held sensors and desks: their truth is the test's to set.

    A held desk (its actuator id) keeps what the test put on its load cell and hears only the
    test's presses of its button, whatever the world's patrons do there.
    """

    def __init__(self, cfg: SiteConfig, hardware: Any, nodes: Mapping[int, Any] | None = None) -> None:
        super().__init__(cfg, hardware, nodes)
        self.held: set[str] = set()

    def set_lux(self, sensor_id: str, lux: float) -> None:
        if sensor_id not in self.held:
            super().set_lux(sensor_id, lux)

    def set_environment(self, sensor_id: str, temperature_c: float, humidity_pct: float,
                        co2_ppm: float | None) -> None:
        if sensor_id not in self.held:
            super().set_environment(sensor_id, temperature_c, humidity_pct, co2_ppm)

    def set_thermal_frame(self, sensor_id: str, frame: npt.NDArray[np.float64]) -> None:
        if sensor_id not in self.held:
            super().set_thermal_frame(sensor_id, frame)

    # The world puts belongings on desks and presses their buttons through these (when its binding
    # has them): a held desk ignores it.
    def set_desk_load(self, actuator_id: str, grams: float) -> None:
        self._desk_unless_held("set_desk_load", actuator_id, grams)

    def press_button(self, actuator_id: str) -> None:
        self._desk_unless_held("press_button", actuator_id)

    def hold_button(self, actuator_id: str, seconds: float) -> None:
        self._desk_unless_held("hold_button", actuator_id, seconds)

    def _desk_unless_held(self, method: str, actuator_id: str, *args: float) -> None:
        world_side = getattr(super(), method, None)
        if actuator_id not in self.held and world_side is not None:
            world_side(actuator_id, *args)


def arrived(value: T | None) -> TypeGuard[T]:
    """What a waiting test takes for "it has happened": anything but None, False or an empty
    collection (a query that found no records yet is not an answer). Zero counts: a count may be it."""
    if value is None or value is False:
        return False
    return not (isinstance(value, (list, tuple, dict, set, frozenset, str, bytes)) and len(value) == 0)


@dataclass
class CliResult:
    """One finished CLI run."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, f"edge-agent {' '.join(self.args)} exited {self.code}: {self.stderr.strip()}"
        return json.loads(self.stdout)

    def error_line(self) -> str:
        """A refusal as docs/technician.md promises: non-zero, nothing on stdout, one line on stderr
        starting with ``Error:``."""
        assert self.code != 0, f"expected a refusal, got exit 0: {self.stdout}"
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), self.stderr
        return lines[0]


class LiveFloor:
    """A running simulation (see module docstring); use as a context manager."""

    def __init__(self, state_dir: Path, *, speed: float, floor: Path = ROOT / "examples" / "floor-3.toml",
                 broker: tuple[str, int] | None = None, tag_interval_s: float = 30.0) -> None:
        self.state_dir = state_dir
        self.speed = speed
        scenario = state_dir / "scenario.toml"
        text = SCENARIO.format(floor=floor)
        if tag_interval_s != 30.0:  # tags report more often: the listener uses each tag every 5 s
            text = text.replace("dwm1001_poll_s = 60", f"dwm1001_poll_s = 5\ntag_interval_s = {tag_interval_s:g}")
        scenario.write_text(text)
        self.bindings: list[HeldBinding] = []
        # Without a broker the uplink keeps retrying and the outbox fills, which the CLI tests do not look
        # at; pointing it at a closed port keeps whatever listens on the config's 1883 out of it.
        options = SimulationOptions(scenario=scenario, state_dir=state_dir,
                                    broker=broker or ("127.0.0.1", _closed_port()), binding=self._binding)
        self.sim = Simulation(options)
        self.socket = state_dir_socket(state_dir)
        self.loop = VirtualTimeLoop(pace=speed)
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="simulated-floor", daemon=True)

    def _binding(self, cfg: SiteConfig, hw: Any, nodes: Mapping[int, Any]) -> HeldBinding:
        binding = HeldBinding(cfg, hw, nodes)
        self.bindings.append(binding)
        return binding

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:
            self._error = exc
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            asyncio.set_event_loop(None)
            self.loop.close()

    async def _main(self) -> None:
        """Run the scenario until the test is done; cancelling run() stops the daemon cleanly."""
        self._stop = asyncio.Event()
        run = asyncio.create_task(self.sim.run())
        stop = asyncio.create_task(self._stop.wait())
        await asyncio.wait({run, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not run.done():
            run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run

    def __enter__(self) -> LiveFloor:
        self._thread.start()
        deadline = time.monotonic() + 30.0
        while not (self.socket.exists() and self._gateway() is not None):
            if not self._thread.is_alive():
                raise AssertionError(f"the simulation ended before serving the control socket: {self._error!r}")
            assert time.monotonic() < deadline, "the simulated daemon did not open its control socket in 30 s"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)
        assert not self._thread.is_alive(), "the simulated floor did not stop within 20 s"
        if self._error is not None:
            raise AssertionError(f"the simulation failed: {self._error!r}") from self._error

    # -- reaching into the simulated floor -------------------------------------------------------
    def _gateway(self) -> Gateway | None:
        daemon = self.sim.daemon
        return daemon.gateway if daemon is not None else None

    @property
    def gateway(self) -> Gateway:
        gw = self._gateway()
        assert gw is not None, "the daemon is not running"
        return gw

    @property
    def binding(self) -> HeldBinding:
        return self.bindings[-1]

    def device(self, sensor_id: str) -> Any:
        """The simulated part behind ``sensor_id`` (its test controls: set_lux, set_error, inject ...)."""
        assert self.sim.hardware is not None
        return self.sim.hardware.devices[sensor_id]

    def on_loop(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` on the simulation's loop thread (where the parts and the daemon live) and return its result."""

        async def call() -> T:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout=10)

    def hold(self, sensor_id: str) -> Any:
        """Take ``sensor_id``'s truth away from the world; returns its simulated part."""
        self.on_loop(self.binding.held.add, sensor_id)
        return self.device(sensor_id)

    def hold_desk(self, seat_id: str) -> tuple[Any, int]:
        """Take the desk of ``seat_id`` away from the world (its load cell and its button); returns its
        simulated node and channel, whose ``set_desk_load``, ``press_button`` and ``hold_button`` are the
        test's to use."""
        desk = next(a for a in self.sim.cfg.actuators if a.kind == "desk" and seat_id in a.seats)
        assert desk.node is not None, f"{desk.id} is not on a node"
        self.on_loop(self.binding.held.add, desk.id)
        return self.sim.nodes[desk.node], desk.channel

    def sim_time(self) -> float:
        """Simulated monotonic seconds (the daemon's clock)."""
        return self.loop.time()

    def wait_sim(self, seconds: float) -> None:
        """Let ``seconds`` of simulated time pass."""
        until = self.sim_time() + seconds
        self.wait_for(f"{seconds:g} simulated seconds", lambda: self.sim_time() >= until,
                      wall_s=5.0 + 2.0 * seconds / self.speed, every_s=0.05)

    # -- the technician's side -------------------------------------------------------------------
    def cli(self, *args: str, json_output: bool = True, timeout: float = 30.0) -> CliResult:
        """``edge-agent ARGS --socket <control.sock> [--json]`` as a subprocess, as a technician runs it."""
        argv = [*args, "--socket", str(self.socket), *(["--json"] if json_output else [])]
        env = {k: v for k, v in os.environ.items() if k not in ("SUDO_USER", "EDGE_AGENT_SOCKET")}
        done = subprocess.run([sys.executable, "-m", "edge_agent.cli", *argv], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=ROOT, check=False)  # fmt: skip
        return CliResult(tuple(argv), done.returncode, done.stdout, done.stderr)

    def wait_for(self, what: str, check: Callable[[], T | None], *, wall_s: float = 15.0, every_s: float = 0.2) -> T:
        """Poll ``check`` until it returns something (see :func:`arrived`); fail after ``wall_s``."""
        deadline = time.monotonic() + wall_s
        while True:
            value = check()
            if arrived(value):
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(every_s)
