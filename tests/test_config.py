"""Site configuration: the example validates; broken variants name their key path and exit 2."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from drivers.errors import ConfigError
from edge_agent.config import load_config, parse_config
from tests.conftest import EXAMPLE_FLOOR


def example() -> dict:
    return tomllib.loads(EXAMPLE_FLOOR.read_text())


def test_example_floor_is_valid_and_realistic() -> None:
    cfg = load_config(EXAMPLE_FLOOR)
    assert len(cfg.zones) == 6
    assert 110 <= len(cfg.seats) <= 130
    kinds = {s.kind for s in cfg.sensors}
    assert {"amg8833", "pir", "bh1750", "scd41", "dwm1001"} <= kinds
    assert {a.kind for a in cfg.actuators} == {"light", "desk", "hvac"}


def _sensor_index(doc: dict, kind: str) -> int:
    return next(i for i, s in enumerate(doc["sensors"]) if s["kind"] == kind)


def mutate_address(doc: dict) -> str:
    i = _sensor_index(doc, "bh1750")
    doc["sensors"][i]["address"] = 0x99
    return f"sensors[{i}].address: 0x99 is not a 7-bit I2C address (0x03-0x77)"


def mutate_unknown_key(doc: dict) -> str:
    doc["site"]["flor"] = "3"
    return "site.flor: unknown key"


def mutate_missing_site(doc: dict) -> str:
    del doc["site"]
    return "site: required key is missing"


def mutate_seat_zone(doc: dict) -> str:
    doc["seats"][3]["zone"] = "z9-nowhere"
    return "seats[3].zone: unknown zone 'z9-nowhere'"


def mutate_duplicate_seat(doc: dict) -> str:
    doc["seats"][5]["id"] = doc["seats"][4]["id"]
    return "seats[5].id: "


def mutate_sensor_bus(doc: dict) -> str:
    i = _sensor_index(doc, "scd41")
    doc["sensors"][i]["bus"] = "i2c9"
    return f"sensors[{i}].bus: unknown bus 'i2c9'"


def mutate_ble_address(doc: dict) -> str:
    i = next(i for i, s in enumerate(doc["sensors"]) if s.get("ble_address"))
    doc["sensors"][i]["ble_address"] = "not-a-mac"
    return f"sensors[{i}].ble_address: 'not-a-mac' is not a BLE address"


def mutate_polygon(doc: dict) -> str:
    doc["zones"][2]["polygon"] = [[0, 0], [1, 1]]
    return "zones[2].polygon:"


def mutate_port(doc: dict) -> str:
    doc["broker"]["port"] = 70000
    return "broker.port:"


def mutate_amg_without_mount(doc: dict) -> str:
    i = _sensor_index(doc, "amg8833")
    del doc["sensors"][i]["mount"]
    return f"sensors[{i}]: an amg8833 needs a mount table"


def mutate_address_clash(doc: dict) -> str:
    i = _sensor_index(doc, "scd41")
    doc["sensors"][i]["address"] = 0x23
    return f"sensors[{i}].address: 0x23 on bus"


def mutate_wrong_type(doc: dict) -> str:
    doc["sensing"]["ghost_after_s"] = "twenty minutes"
    return "sensing.ghost_after_s:"


def mutate_mux_channel(doc: dict) -> str:
    i = next(i for i, b in enumerate(doc["buses"]) if b["kind"] == "mux")
    doc["buses"][i]["channel"] = 9
    return f"buses[{i}].channel:"


MUTATIONS = [
    mutate_address, mutate_unknown_key, mutate_missing_site, mutate_seat_zone, mutate_duplicate_seat,
    mutate_sensor_bus, mutate_ble_address, mutate_polygon, mutate_port, mutate_amg_without_mount,
    mutate_address_clash, mutate_wrong_type, mutate_mux_channel,
]


@pytest.mark.parametrize("mutate", MUTATIONS, ids=lambda f: f.__name__.removeprefix("mutate_"))
def test_broken_variant_names_key_path(mutate) -> None:
    doc = example()
    expected = mutate(doc)
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    assert any(p.startswith(expected) or expected in p for p in info.value.problems), info.value.problems


def _write(tmp_path: Path, doc: dict) -> Path:
    import json

    # TOML writer not in the stdlib: emit JSON-compatible TOML via inline tables is overkill;
    # round-trip through a tiny writer good enough for these documents.
    lines: list[str] = []

    def val(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {val(x)}" for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return json.dumps(v)

    for key, section in doc.items():
        if isinstance(section, dict):
            lines.append(f"[{key}]")
            lines += [f"{k} = {val(v)}" for k, v in section.items()]
        else:
            for item in section:
                lines.append(f"[[{key}]]")
                lines += [f"{k} = {val(v)}" for k, v in item.items()]
    p = tmp_path / "gateway.toml"
    p.write_text("\n".join(lines))
    return p


def run_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "config", "check", str(path)],
        capture_output=True, text=True, timeout=60,
    )


def test_cli_check_ok() -> None:
    r = run_check(EXAMPLE_FLOOR)
    assert r.returncode == 0, r.stderr
    assert "valid" in r.stdout


def test_cli_check_lists_every_error_without_traceback(tmp_path: Path) -> None:
    doc = example()
    first = mutate_address(doc)
    second = mutate_seat_zone(doc)
    r = run_check(_write(tmp_path, doc))
    assert r.returncode == 2
    assert first in r.stderr and second in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("content", ["", "site = [unclosed", "\xff\xfe"])
def test_cli_check_unusable_file_one_line(tmp_path: Path, content: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_bytes(content.encode("latin-1"))
    r = run_check(p)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert str(p) in r.stderr


def test_cli_check_directory_and_missing(tmp_path: Path) -> None:
    r = run_check(tmp_path)
    assert r.returncode == 2 and "is a directory" in r.stderr
    r = run_check(tmp_path / "nope.toml")
    assert r.returncode == 2 and "no such file" in r.stderr
