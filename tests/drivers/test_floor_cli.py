"""The simulated floor backend from the example config, `sensors scan`, and drivers on smbus2.SMBus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from smbus2 import SMBus

from drivers.amg8833 import Amg8833
from drivers.bh1750 import Bh1750
from drivers.i2c import I2CDevice, SmbusPort
from drivers.mux import Tca9548a
from drivers.scd41 import Scd41
from drivers.sht import Sht4x, Sht31
from edge_agent.cli.sensors_cmd import sensors
from edge_agent.clock import SystemClock
from edge_agent.config import SiteConfig
from simulator.clock import VirtualClock
from simulator.hw.floor import build_simulated_hardware
from simulator.hw.scd41 import SimSCD41
from tests.clirunner import CliRunner
from tests.conftest import EXAMPLE_FLOOR
from tests.drivers.conftest import on_virtual_time


def test_every_configured_i2c_sensor_answers_through_its_port(floor_config: SiteConfig) -> None:
    async def body(clock: VirtualClock) -> None:
        hw = build_simulated_hardware(floor_config, clock.monotonic)
        try:
            await clock.sleep(1.0)  # SCD41 power-up
            kinds = {"amg8833": Amg8833, "bh1750": Bh1750, "sht31": Sht31, "sht4x": Sht4x, "scd41": Scd41}
            seen: dict[str, float] = {}
            for s in floor_config.sensors:
                if s.kind not in kinds or s.bus is None or s.address is None:
                    continue
                driver = kinds[s.kind](hw.buses[s.bus], clock, address=s.address, name=s.id)
                if isinstance(driver, Amg8833):
                    await driver.start()
                    value = float((await driver.read_frame()).pixels.mean())
                else:
                    value = (await driver.readings())[0].value
                seen[s.kind] = value
            assert seen["amg8833"] == pytest.approx(21.5, abs=0.3)
            assert seen["bh1750"] == pytest.approx(300, abs=5)
            assert seen["sht31"] == pytest.approx(22.0, abs=0.2)
            assert seen["scd41"] == pytest.approx(450, abs=30)
            assert hw.node_buses[1] is hw.buses["node1"]
            assert isinstance(hw.devices["co2-z1-quiet"], SimSCD41)
            assert any(k.kind == "dwm1001" and k.ble_address for k in floor_config.sensors)
            uart_ids = [*hw.uart_tags, *hw.uart_listeners]
            assert uart_ids and hw.uwb_uart(uart_ids[0]).port.startswith("/dev/")
        finally:
            hw.close()

    on_virtual_time(body)


def test_sensors_scan_simulated_json() -> None:
    result = CliRunner().invoke(sensors, ["scan", "--config", str(EXAMPLE_FLOOR), "--simulate", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["bus"]: row for row in json.loads(result.output)}
    assert rows["i2c1"]["found"] == ["0x70"]
    assert rows["mux-ch0"]["found"] == ["0x23", "0x44", "0x62"] and rows["mux-ch0"]["missing"] == {}


def test_sensors_scan_without_device_gives_one_clear_line(tmp_path: Path) -> None:
    cfg = EXAMPLE_FLOOR.read_text().replace('device = "/dev/i2c-1"', f'device = "{tmp_path}/i2c-9"')
    path = tmp_path / "gw.toml"
    path.write_text(cfg)
    result = CliRunner().invoke(sensors, ["scan", "--config", str(path)])
    assert result.exit_code != 0
    assert "no such device" in str(result.exception)


def test_drivers_accept_a_real_smbus_object() -> None:
    bus = SmbusPort(SMBus())  # no bus number: opens nothing
    clock = SystemClock()
    built = [
        Amg8833(bus, clock),
        Bh1750(bus, clock),
        Sht31(bus, clock),
        Sht4x(bus, clock),
        Scd41(bus, clock),
        I2CDevice(Tca9548a(bus, 0x70).channel(2), 0x44),
    ]
    assert [type(d).__name__ for d in built] == ["Amg8833", "Bh1750", "Sht31", "Sht4x", "Scd41", "I2CDevice"]
