"""The building blocks of the site configuration: strict sections, ids, and the sensor table.

Split from :mod:`edge_agent.config` (which re-exports everything here) because a sensor's table
is the part-kind registry's business: its kind, the wiring that kind needs, the keys of its own
and its poll default all come from :mod:`drivers.kinds`, so a new kind of part needs no change
to the config schema.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drivers.kinds import WIRING_KEYS, PartKind, part_kinds
from edge_agent.building.config import BacnetPoint, check_bacnet_sensor

Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Point = tuple[float, float]
HHMM = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def i2c_address(value: Any) -> int:
    """Accept 0x69, 105 or "0x69"; refuse what is not a 7-bit I2C address."""
    if isinstance(value, str):
        try:
            value = int(value, 0)
        except ValueError:
            raise ValueError(f"{value!r} is not a number; write it like 0x69") from None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("write the address as a number like 0x69")
    if not 0x03 <= value <= 0x77:
        raise ValueError(f"0x{value:02x} is not a 7-bit I2C address (0x03-0x77)")
    return value


class Mount(Strict):
    """Where a ceiling sensor hangs: centre of its view, height above the desk plane, rotation."""

    x: float
    y: float
    height_m: float = Field(default=2.6, gt=0.3, le=10)
    rotation_deg: float = 0.0
    fov_deg: float = Field(default=60.0, gt=10, lt=170)


#: How a missing wiring key is asked for in an error message.
WIRING_HELP = {
    "bus": 'bus (e.g. bus = "i2c1")', "address": "address (e.g. address = 0x44)", "pin": "pin (BCM number)",
    "node": "node (bridge address)", "ble_address": "ble_address", "serial_port": "serial_port",
    "mount": "a mount table (x, y, height_m) to map pixels to seats",
    "bacnet": 'bacnet = { device = "192.168.10.40", object = "analog-input,1" }', "quantity": "quantity",
}


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


class Sensor(Strict):
    """A sensor, where it is wired, and what it covers.

    ``kind`` is a part kind declared by a driver (:mod:`drivers.kinds`); the kind says which
    wiring keys it needs, its own extra keys (kept in ``settings``) and its poll default.
    """

    id: Id
    kind: str
    bus: Id | None = None
    address: int | None = None
    pin: int | None = Field(default=None, ge=0, le=53)
    node: int | None = Field(default=None, ge=1, le=247)
    ble_address: str | None = None
    serial_port: str | None = None
    zone: Id | None = None
    seats: list[Id] = []
    mount: Mount | None = None
    poll_interval_s: float = Field(default=5.0, gt=0, le=3600)
    bacnet: BacnetPoint | None = None  # kind "bacnet": a BMS value (edge_agent.building.config)
    quantity: str | None = None  # kind "bacnet": what the value is
    settings: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _kind_keys(cls, data: Any) -> Any:
        """Move the kind's own keys into ``settings`` and take the kind's poll default."""
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
            return data
        kind = part_kinds().get(data["kind"])
        if kind is None:
            return data
        data = dict(data)
        settings = dict(data.pop("settings", None) or {})
        for setting in kind.settings:
            if setting.name in data:
                settings[setting.name] = data.pop(setting.name)
        data["settings"] = settings
        data.setdefault("poll_interval_s", kind.poll_interval_s)
        return data

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v not in part_kinds():
            raise ValueError(f"unknown sensor kind {v!r}; one of: {', '.join(part_kinds())}")
        return v

    @field_validator("address", mode="before")
    @classmethod
    def _addr(cls, v: Any) -> int | None:
        return None if v is None else i2c_address(v)

    @field_validator("ble_address")
    @classmethod
    def _mac(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}", v):
            raise ValueError(f"{v!r} is not a BLE address; write it like 'E4:5F:01:2A:3B:4C'")
        return v

    @property
    def part(self) -> PartKind:
        """The declared kind of this sensor (drivers.kinds)."""
        return part_kinds()[self.kind]

    @model_validator(mode="after")
    def _wiring(self) -> Sensor:
        check_bacnet_sensor(self.kind, self.bacnet, self.quantity)
        kind = self.part
        if not any(all(getattr(self, key) is not None for key in keys) for keys in kind.wiring):
            if len(kind.wiring) == 1:
                needs = " and ".join(WIRING_HELP[k] for k in kind.wiring[0] if getattr(self, k) is None)
            else:
                needs = " or ".join(" and ".join(WIRING_HELP[k] for k in keys) for keys in kind.wiring)
            raise ValueError(f"{_article(kind.name)} {kind.name} needs {needs}")
        checked: dict[str, Any] = {}
        for setting in kind.settings:
            wired = setting.with_wiring is None or getattr(self, setting.with_wiring) is not None
            if setting.name in self.settings:
                if not wired:
                    raise ValueError(f"{setting.name} is for {_article(kind.name)} {kind.name} wired by "
                                     f"{setting.with_wiring}; remove it ({setting.help})")
                checked[setting.name] = setting.check(self.settings[setting.name])
            elif not wired:
                continue
            elif setting.default is None:
                raise ValueError(f"{_article(kind.name)} {kind.name} needs {setting.name} ({setting.help})")
            else:
                checked[setting.name] = setting.default
        unknown = sorted(set(self.settings) - set(checked))
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not a setting of {kind.name}; it takes "
                             f"{', '.join(s.name for s in kind.settings) or 'no settings of its own'}")
        object.__setattr__(self, "settings", checked)
        return self


assert set(WIRING_KEYS) <= set(Sensor.model_fields), "every wiring key a kind may need is a Sensor field"


