"""Every part kind the drivers declare round-trips through config, daemon, simulator and CLI.

The table is complete when each kind has its simulated part and its feed has a handler in the
daemon's pollers; then, for each kind, a config file naming one sensor of it (wired as the kind's
own example says) is validated, the simulated floor is built from it, the daemon's hardware and
pollers read the sensor on virtual time, and ``edge-agent sensors read`` reads it without a
daemon, with the simulated bus injected as the port the gateway's own code opens.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.kinds import FEEDS, PartKind, part_kinds
from edge_agent.backend import SimulatedBackend
from edge_agent.cli.technician import sensors_read
from edge_agent.config import SiteConfig, load_config
from edge_agent.hardware import Hardware
from edge_agent.pollers import SensorPollers
from edge_agent.sensing.floor import FloorModel
from edge_agent.supervisor import Supervisor
from simulator.clock import VirtualClock
from simulator.hw.floor import SimHardware, build_simulated_hardware
from simulator.hw.parts import sim_parts
from simulator.hw.uart import LoopbackSerial
from tests.clirunner import CliRunner
from tests.drivers.conftest import on_virtual_time

KINDS = sorted(part_kinds())
POLLERS_SOURCE = Path(__file__).resolve().parents[2] / "edge_agent" / "pollers.py"


def test_every_kind_has_its_simulated_part_and_a_feed_handler() -> None:
    assert set(sim_parts()) == set(part_kinds()), "each driver kind needs a SIM_PARTS entry in simulator/hw/"
    source = POLLERS_SOURCE.read_text()
    for feed in FEEDS:
        assert feed == "readings" or f'"{feed}"' in source, f"the pollers have no handler for feed {feed!r}"
    for kind in part_kinds().values():
        assert kind.quantities and kind.wiring and kind.example, kind.name
        for c in kind.calibrations:
            assert c.quantity in {q.name for q in kind.quantities}, (kind.name, c.quantity)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return repr(value)


def write_config(path: Path, kind: PartKind, **override: Any) -> Path:
    entry = {"id": f"{kind.name}-1", "kind": kind.name, "zone": "z1", **kind.example, **override}
    tables = "".join(f"[{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in table.items()) + "\n"
                     for name, table in kind.example_tables.items())
    path.write_text(
        '[site]\nid = "lib"\nfloor = "1"\ngateway = "gw1"\n\n'
        f'[storage]\nstate_dir = "{path.parent / "state"}"\n\n' + tables +
        '[[buses]]\nid = "i2c1"\nkind = "linux"\ndevice = "/dev/i2c-1"\n\n'
        '[[zones]]\nid = "z1"\npolygon = [[0, 0], [10, 0], [10, 10], [0, 10]]\n\n'
        "[[sensors]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in entry.items())
    )
    return path


def set_truth(hw: SimHardware, kind: str, sensor_id: str) -> None:
    """Something for the part to see, where its default would read as nothing."""
    part: Any = hw.devices.get(sensor_id)
    if kind == "bacnet":  # the point's value is the simulated BMS's (simulator/building.py)
        for bms in hw.building.bms.values():
            bms.set_value("analog-input,1", 21.5)
    elif kind == "pir":
        part.sense(True)
    elif kind == "dwm1001":
        part.set_position(3.0, 4.0, 1.0, 90)


@pytest.mark.parametrize("name", KINDS)
def test_kind_round_trips_through_config_simulator_and_daemon(name: str, tmp_path: Path) -> None:
    kind = part_kinds()[name]
    cfg = load_config(write_config(tmp_path / "gateway.toml", kind))
    sensor = cfg.sensors[0]
    assert sensor.poll_interval_s == kind.poll_interval_s and sensor.part is kind

    async def body(clock: VirtualClock) -> tuple[dict[str, float], bool]:
        hw = build_simulated_hardware(cfg, clock.monotonic)
        if hw.building is not None:
            await hw.building.open()  # the BMS listens before the daemon's first request
        backend = SimulatedBackend(i2c_buses=hw.buses, pin_factory=hw.pin_factory, ble_backend=hw.ble_backend,
                                   transport=None,
                                   serial_streams={s: LoopbackSerial(t) for s, t in hw.uart_tags.items()},
                                   building_parts=hw.building)
        hardware = Hardware(cfg, backend, clock, tmp_path)
        await hardware.open()
        floor = FloorModel(cfg)
        supervisor = Supervisor()
        pollers = SensorPollers(hardware, floor, clock, supervisor, tag_salt=b"salt")
        pollers.start()
        await clock.sleep(1.0)
        set_truth(hw, name, sensor.id)
        await clock.sleep(4 * sensor.poll_interval_s + 6.0)
        last = pollers.last.get(sensor.id)
        located = bool(floor.tag_positions(clock.monotonic()))
        healthy = pollers.healthy(sensor.id)
        await supervisor.stop()
        await hardware.close()
        hw.close()
        assert healthy, hardware.sensors[sensor.id]
        return (dict(last.values) if last else {}), located

    values, located = on_virtual_time(body)
    if kind.feed == "locations":
        assert located  # the tag's position reached the floor model (it is never shown raw)
    elif kind.feed == "events":
        assert values == {"motion": 1.0}
    elif name == "bacnet":
        assert values == {"temperature": 21.5}  # a BMS point is the one quantity its config names
    else:
        assert set(values) == {q.name for q in kind.quantities}


@pytest.fixture
def injected(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, SimHardware]]:
    """Make the gateway's own port openers hand out the simulated floor's ports.

    ``smbus2.SMBus(device)`` (what the backend calls to open /dev/i2c-N) returns the simulated
    bus of that device; gpiozero's pin factory is the simulated one. Everything between (the
    backend, the hardware assembly, the drivers) is the gateway's code.
    """
    import gpiozero
    import smbus2

    holder: dict[str, SimHardware] = {}

    def open_bus(device: str) -> Any:
        return holder["hw"].sim_buses["i2c1"] if device == "/dev/i2c-1" else smbus2_open(device)

    smbus2_open = smbus2.SMBus
    monkeypatch.setattr(smbus2, "SMBus", open_bus)

    def use(hw: SimHardware) -> None:
        holder["hw"] = hw
        monkeypatch.setattr(gpiozero.Device, "pin_factory", hw.pin_factory)

    holder["use"] = use  # type: ignore[assignment]
    yield holder
    if "hw" in holder:
        holder["hw"].close()


class UartServer:
    """A simulated tag's UART served on its pty from a loop of its own, as a real tty would be."""

    def __init__(self, hw: SimHardware, sensor_id: str) -> None:
        self.uart = hw.uwb_uart(sensor_id)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.loop.run_until_complete(self.uart.start())
        self.loop.run_forever()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


@pytest.mark.parametrize("name", KINDS)
def test_sensors_read_without_daemon_reads_every_kind(name: str, tmp_path: Path, injected: Any) -> None:
    kind = part_kinds()[name]
    path = write_config(tmp_path / "gateway.toml", kind)
    cfg: SiteConfig = load_config(path)
    sensor = cfg.sensors[0]
    hw = build_simulated_hardware(cfg, time.monotonic)
    injected["use"](hw)
    server = None
    if sensor.serial_port is not None:
        server = UartServer(hw, sensor.id)
        write_config(path, kind, serial_port=server.uart.port)  # the tty the gateway would open
    if sensor.bacnet is None:
        set_truth(hw, name, sensor.id)
    time.sleep(1.0 if name == "scd41" else 0.0)  # the SCD41 listens 1 s after power-up
    env = {"EDGE_AGENT_SOCKET": str(tmp_path / "none.sock")}
    try:
        result = CliRunner(env=env).invoke(sensors_read, [sensor.id, "--config", str(path), "--json"])
        # A bit-banged part's clock (the HX711's PD_SCK) is timed on the wall clock: on a loaded test
        # machine the scheduler can void every attempt of one read, and the CLI then says to read
        # again, which is what a technician does.
        for _ in range(3):
            if result.exit_code == 0 or "read again" not in result.stderr:
                break
            result = CliRunner(env=env).invoke(sensors_read, [sensor.id, "--config", str(path), "--json"])
    finally:
        if server is not None:
            server.stop()
    if sensor.bacnet is not None:  # a BMS point: read over the daemon's BACnet link, never directly
        assert result.exit_code == 1 and "only the daemon reads it" in result.stderr, result.stderr
        return
    assert result.exit_code == 0, (result.output, result.stderr)
    assert "daemon not running; read directly" in result.stderr
    reading = json.loads(result.stdout)
    expected = {q.name for q in kind.quantities}
    assert reading["kind"] == name and set(reading["raw"]) <= expected and reading["raw"]
    assert reading["units"] == {q: kind.unit(q) for q in reading["raw"]}
    if name == "pir":
        assert reading["raw"] == {"motion": 1.0}
    if name == "dwm1001":  # a badge's position is shown only by the daemon, on a technician's ask
        assert not {"x", "y", "z"} & set(reading["raw"]), reading
        shown = CliRunner(env=env).invoke(sensors_read, [sensor.id, "--config", str(path), "--show-position"])
        assert shown.exit_code == 1 and "--show-position needs the running daemon" in shown.stderr, shown.stderr


def test_sensors_read_without_daemon_reports_a_silent_part_as_a_failed_read(tmp_path: Path, injected: Any) -> None:
    kind = part_kinds()["sht31"]
    path = write_config(tmp_path / "gateway.toml", kind)
    hw = build_simulated_hardware(load_config(path), time.monotonic)
    hw.sim_buses["i2c1"].detach(0x44)  # the bus opens; nothing answers at the address
    injected["use"](hw)
    env = {"EDGE_AGENT_SOCKET": str(tmp_path / "none.sock")}
    result = CliRunner(env=env).invoke(sensors_read, ["sht31-1", "--config", str(path)])
    assert result.exit_code == 1
    assert "direct read of sht31-1 on /dev/i2c-1 failed" in result.stderr
    assert "cannot be opened" not in result.stderr


def test_sensors_kinds_lists_the_table() -> None:
    from edge_agent.cli.sensors_cmd import sensors

    result = CliRunner().invoke(sensors, ["kinds", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["kind"]: row for row in json.loads(result.output)}
    assert set(rows) == set(part_kinds())
    for name, kind in part_kinds().items():
        assert rows[name]["quantities"] == {q.name: q.unit for q in kind.quantities}
        assert rows[name]["wiring"] == [list(alt) for alt in kind.wiring]
    text = CliRunner().invoke(sensors, ["kinds"]).output
    assert all(f"{name} " in text for name in part_kinds())
