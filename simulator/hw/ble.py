"""A bleak backend for simulated DWM1001 tags (pass it with ``backend=``, as bleak documents).

:class:`SimBleAir` is the radio environment: the tags in range, by address. Its
``client_backend`` / ``scanner_backend`` are subclasses of bleak's ``BaseBleakClient`` /
``BaseBleakScanner`` bound to that environment, so the real ``bleak.BleakClient`` and
``BleakScanner`` run unchanged on top: characteristic resolution, ``async with``, notify
callbacks. A connected client gets location notifications every ``tag.period_s`` seconds from
an asyncio task, so on the virtual-time loop they follow simulated time.

Link faults: :meth:`SimBleAir.drop` disconnects every client of a tag (its disconnected
callback fires, as when a tag walks out of range); ``tag.reachable = False`` makes connects fail
until it is set back.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError

from simulator.hw.dwm1001 import SimDwm1001Tag

SERVICE_UUID = "680c21d9-c946-4c1f-9c11-baa1c21329e7"
CHARACTERISTICS = {  # uuid -> properties
    "3f0afd88-7770-46b0-b5e7-9fc099598964": ["read", "write"],  # operation mode
    "a02b947e-df97-4516-996a-1882521e0ead": ["read", "write"],  # location data mode
    "003bbdf2-c634-4b3d-ab56-7ec889b89a37": ["read", "notify"],  # location data
    "1e63b1eb-d4ed-444e-af54-c1e965192501": ["read"],  # device info
}
LOCATION_DATA = "003bbdf2-c634-4b3d-ab56-7ec889b89a37"
LOCATION_MODE = "a02b947e-df97-4516-996a-1882521e0ead"


class SimBleAir:
    """Tags in radio range, and bleak backend classes bound to them."""

    def __init__(self) -> None:
        self.tags: dict[str, SimDwm1001Tag] = {}
        self.clients: list[SimBleakClientBase] = []
        air = self
        self.client_backend: type[SimBleakClientBase] = type("SimBleakClient", (SimBleakClientBase,), {"air": air})
        self.scanner_backend: type[SimBleakScannerBase] = type("SimBleakScanner", (SimBleakScannerBase,), {"air": air})

    def add(self, tag: SimDwm1001Tag) -> SimDwm1001Tag:
        self.tags[tag.address] = tag
        return tag

    def drop(self, address: str) -> int:
        """Break every live link to the tag; returns how many were dropped."""
        dropped = 0
        for client in list(self.clients):
            if client.address.upper() == address.upper() and client.is_connected:
                client.lose_link()
                dropped += 1
        return dropped


class SimBleakClientBase(BaseBleakClient):
    """BaseBleakClient for a simulated tag; subclassed per :class:`SimBleAir`."""

    air: SimBleAir

    def __init__(self, address_or_ble_device: Any, **kwargs: Any) -> None:
        super().__init__(
            address_or_ble_device,
            disconnected_callback=kwargs.get("disconnected_callback"),
            timeout=kwargs.get("timeout", 10.0),
        )
        self._connected = False
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._tag: SimDwm1001Tag | None = None

    @property
    def name(self) -> str:
        return f"DW{self.address.replace(':', '')[-4:]}"

    @property
    def mtu_size(self) -> int:
        return 23  # what BlueZ reports

    @property
    def is_connected(self) -> bool:
        return self._connected

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        await asyncio.sleep(0.05)  # connection set-up takes a few connection intervals
        tag = self.air.tags.get(self.address.upper())
        if tag is None or not tag.reachable:
            raise BleakDeviceNotFoundError(self.address, f"Device with address {self.address} was not found.")
        services = BleakGATTServiceCollection()
        service = BleakGATTService(None, 1, SERVICE_UUID)
        services.add_service(service)
        for handle, (uuid, props) in enumerate(CHARACTERISTICS.items(), start=2):
            char = BleakGATTCharacteristic(None, handle, uuid, props, lambda: 244, service)  # type: ignore[arg-type]
            services.add_characteristic(char)
        self.services = services
        self._tag = tag
        self._connected = True
        self.air.clients.append(self)

    def _close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()
        self._connected = False
        if self in self.air.clients:
            self.air.clients.remove(self)

    async def disconnect(self) -> None:
        self._close()

    def lose_link(self) -> None:
        """The radio link dropped: stop notifying and tell bleak's user."""
        self._close()
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """The DWM1001 BLE API needs no pairing."""

    async def unpair(self) -> None:
        """Nothing to undo."""

    def _live_tag(self) -> SimDwm1001Tag:
        if not self._connected or self._tag is None:
            raise BleakError("Not connected")
        return self._tag

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, **kwargs: Any) -> bytearray:
        tag = self._live_tag()
        if characteristic.uuid == LOCATION_DATA:
            return bytearray(tag.ble_location())
        if characteristic.uuid == LOCATION_MODE:
            return bytearray([tag.mode])
        return bytearray(8)

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, **kwargs: Any) -> bytearray:
        raise BleakError("the simulated tag has no descriptors")

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: Any, response: bool) -> None:
        tag = self._live_tag()
        if characteristic.uuid == LOCATION_MODE:
            mode = bytes(data)[0]
            if mode not in (0, 1, 2):
                raise BleakError(f"location data mode {mode} rejected")
            tag.mode = mode

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        raise BleakError("the simulated tag has no descriptors")

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        tag = self._live_tag()
        if characteristic.uuid != LOCATION_DATA:
            raise BleakError(f"{characteristic.uuid} does not notify")
        self._tasks[characteristic.handle] = asyncio.create_task(self._notify(tag, callback))

    async def _notify(self, tag: SimDwm1001Tag, callback: NotifyCallback) -> None:
        while self._connected:
            await asyncio.sleep(tag.period_s)
            tag.notifications += 1
            callback(bytearray(tag.ble_location()))

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        task = self._tasks.pop(characteristic.handle, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class SimBleakScannerBase(BaseBleakScanner):
    """BaseBleakScanner that 'hears' every reachable tag once per start."""

    air: SimBleAir

    def __init__(self, detection_callback: Any, service_uuids: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(detection_callback, service_uuids)

    async def start(self) -> None:
        for address, tag in self.air.tags.items():
            if not tag.reachable:
                continue
            name = f"DW{address.replace(':', '')[-4:]}"
            adv = AdvertisementData(name, {}, {}, [SERVICE_UUID], None, -60, ())
            device = self.create_or_update_device(address, address, name, None, adv)
            self.call_detection_callbacks(device, adv)

    async def stop(self) -> None:
        """Nothing runs between start and stop."""

    def set_scanning_filter(self, **kwargs: Any) -> None:
        """Filters are not simulated."""
