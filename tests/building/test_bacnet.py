"""BACnet/IP on the loopback interface: a BMS device served by bacpypes3, the gateway's link and outputs.

The BMS holds commandable objects with real priority arrays; the tests check what the gateway
wrote, at which priority, that a higher priority of the BMS wins, and that a relinquish leaves
the object at the BMS's relinquish default.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.bacnet import BacnetLink, BacnetPoint, BacnetRefused, BacnetVentilation
from drivers.errors import BusError, BusTimeoutError
from simulator.bms import RELINQUISH_DEFAULT_PCT, BmsPoint, SimBms, free_udp_port

VENT = "analog-value,101"
FAN = "binary-value,7"
ZONE_T = "analog-input,1"


class LoopClock:
    def monotonic(self) -> float:
        return 0.0

    def time(self) -> float:
        return 0.0

    async def sleep(self, seconds: float) -> None:
        return None


@pytest.fixture
async def bms() -> AsyncIterator[SimBms]:
    device = SimBms([BmsPoint(VENT, commanded=True), BmsPoint(FAN, commanded=True),
                     BmsPoint(ZONE_T, quantity="temperature")])
    await device.open()
    yield device
    device.close()


@pytest.fixture
async def link() -> AsyncIterator[BacnetLink]:
    gateway = BacnetLink(f"127.0.0.1/32:{free_udp_port()}", device_instance=390003, apdu_timeout_s=0.3, retries=1)
    await gateway.open()
    yield gateway
    gateway.close()


async def test_who_is_finds_the_bms_device(bms: SimBms, link: BacnetLink) -> None:
    found = await link.who_is(address=bms.address, timeout_s=1.0)
    assert [(d.instance, d.address) for d in found] == [(1200, bms.address)]
    assert await link.read(bms.address, "device,1200", "object-name") == "bms"
    assert await link.who_is(address=f"127.0.0.1:{free_udp_port()}", timeout_s=0.3) == []


async def test_the_gateway_writes_at_its_priority_and_relinquishes(bms: SimBms, link: BacnetLink) -> None:
    vent = BacnetVentilation(link, bms.address, VENT, priority=12, name="ahu1-vent")
    assert bms.present_value(VENT) == RELINQUISH_DEFAULT_PCT
    await vent.set(0.6)
    assert bms.writes[-1] == (VENT, 12, 60.0)
    assert bms.slots(VENT) == {12: 60.0}
    assert bms.present_value(VENT) == 60.0
    assert await vent.read_back() == pytest.approx(0.6)
    await vent.relinquish()
    assert bms.writes[-1] == (VENT, 12, None)  # NULL at priority 12
    assert bms.slots(VENT) == {}
    assert bms.present_value(VENT) == RELINQUISH_DEFAULT_PCT


async def test_the_bms_operator_at_a_higher_priority_wins(bms: SimBms, link: BacnetLink) -> None:
    vent = BacnetVentilation(link, bms.address, VENT, priority=12)
    bms.command(VENT, 15.0, 16)  # the BMS's own schedule, below us
    await vent.set(1.0)
    assert bms.present_value(VENT) == 100.0
    bms.command(VENT, 20.0, 8)  # the operator's manual override, above us
    assert await vent.read_back() == pytest.approx(1.0)  # our request still stands in slot 12
    assert vent.overridden_by == 8
    assert bms.present_value(VENT) == 20.0
    await vent.relinquish()
    bms.command(VENT, None, 8)
    assert bms.present_value(VENT) == 15.0  # back to the BMS's schedule, not to the relinquish default


async def test_binary_objects_get_active_and_inactive(bms: SimBms, link: BacnetLink) -> None:
    fan = BacnetVentilation(link, bms.address, FAN, priority=10)
    await fan.set(0.7)
    assert bms.present_value(FAN) == 1.0
    assert await fan.read_back() == 1.0
    await fan.set(0.2)
    assert bms.present_value(FAN) == 0.0


async def test_a_bms_value_reads_as_a_sensor(bms: SimBms, link: BacnetLink) -> None:
    bms.set_value(ZONE_T, 22.75)
    point = BacnetPoint(link, bms.address, ZONE_T, quantity="temperature", unit="C", clock=LoopClock())
    assert await point.read_values() == {"temperature": (22.75, "C")}
    assert point.health.healthy


async def test_refusals_and_silence_are_translated(bms: SimBms, link: BacnetLink) -> None:
    with pytest.raises(BacnetRefused, match="unknown-object"):
        await link.read(bms.address, "analog-input,99")
    with pytest.raises(BacnetRefused, match="unknown-property"):
        await link.read(bms.address, ZONE_T, "priority-array")
    with pytest.raises(BusTimeoutError, match="no answer"):
        await link.read(f"127.0.0.1:{free_udp_port()}", ZONE_T)
    point = BacnetPoint(link, f"127.0.0.1:{free_udp_port()}", ZONE_T, quantity="temperature", unit="C",
                        clock=LoopClock())
    for _ in range(3):
        with pytest.raises(BusTimeoutError):
            await point.read_values()
    assert not point.health.healthy


async def test_a_busy_port_is_a_clear_error(bms: SimBms) -> None:
    host, port = bms.address.split(":")
    taken = BacnetLink(f"{host}/32:{port}", device_instance=5)
    with pytest.raises(BusError, match="in use"):
        await taken.open()
    assert taken.app is None


async def test_a_cleared_override_with_no_rule_behind_it_relinquishes(bms: SimBms, link: BacnetLink) -> None:
    from edge_agent.actuation.arbiter import Arbiter, Limits
    from rules.state import IntentKind
    from tests.actuation.fakes import ManualClock

    clock = ManualClock()
    vent = BacnetVentilation(link, bms.address, VENT, priority=12, name="ahu1-vent")
    arbiter = Arbiter({("ahu1-vent", IntentKind.VENTILATION): vent}, clock,
                      default_limits=Limits(min_interval_s=0.0))
    arbiter.set_override("ahu1-vent", 0.9, 600, kind=IntentKind.VENTILATION, source="cli")
    await arbiter.tick()
    assert bms.slots(VENT) == {12: 90.0}
    assert arbiter.clear_override("ahu1-vent") == 1
    await arbiter.tick()
    assert bms.writes[-1] == (VENT, 12, None)
    assert bms.present_value(VENT) == RELINQUISH_DEFAULT_PCT
    assert arbiter.status()[0]["target"] is None


BUILDING_FLOOR = Path(__file__).resolve().parents[2] / "examples" / "floor-3-building.toml"


async def test_a_clean_stop_relinquishes_and_a_power_cut_does_not() -> None:
    from edge_agent.building.devices import Building
    from edge_agent.clock import SystemClock
    from edge_agent.config import load_config
    from simulator.building import SimBuilding

    cfg = load_config(BUILDING_FLOOR)
    vent_cfg = next(a for a in cfg.actuators if a.id == "ahu1-vent")
    for abandon, expected in ((False, {}), (True, {12: 45.0})):
        parts = SimBuilding(cfg, lambda: 0.0)
        await parts.open()

        class Backend:
            building_parts = parts

        building = Building(cfg, Backend(), SystemClock())
        await building.open()
        await building.output(vent_cfg).set(0.45)
        if abandon:
            building.abandon()
        await building.close()
        (bms,) = parts.bms.values()
        assert bms.slots("analog-value,101") == expected
        parts.close()
