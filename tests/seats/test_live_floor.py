"""Seats on the live simulated floor, through the real daemon: the floor page, the desk button, releases.

One floor serves the module: the daemon on the simulated floor with ``[display]`` configured, a
"back soon" hold of four simulated minutes (so a held seat turns ghost within the test), and a real
mosquitto whose every message is checked against docs/schemas. The floor opens at 08:00; the
tests run before then, so no patron sits where a test presses a button.

- The floor display page in a real headless browser (Debian's chromium, driven by playwright): the
  floor plan, the zones' free seats and comfort, and a change shown by itself (server-sent events)
  when a patron presses "back soon". The test saves its screenshot in its own temporary directory;
  with ``EDGE_AGENT_SAVE_FLOOR_PAGE=1`` it writes docs/images/floor-page.png instead (the picture in
  docs/technician.md), so an ordinary run leaves the checkout as it was. It needs the ``playwright``
  package (the dev extra) and ``/usr/bin/chromium`` (CI installs Debian's package; run as root, the
  test installs it itself). Playwright never downloads a browser here: it is pointed at chromium's
  executable.
- A ghost seat dispatched (``ghost_seat``, the indicator blinking) and released by staff holding
  the desk's button for 3 s (``seat_released``, source ``desk_button``), then free in the
  availability; a hold on a seat that is not ghost is a press.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from drivers.ports import IndicatorColour
from tests.contract.outside import TOPIC_ROOT, Message, Observer, event_of
from tests.control.simfloor import ROOT, LiveFloor
from tests.mosquitto import Mosquitto

pytestmark = [pytest.mark.slow, pytest.mark.mqtt]

CHROMIUM = Path("/usr/bin/chromium")
DOCS_SCREENSHOT = ROOT / "docs" / "images" / "floor-page.png"


def screenshot_path(tmp_path: Path) -> Path:
    """Where the page's picture goes: the docs' copy only when asked for, never as a side effect of a run."""
    return DOCS_SCREENSHOT if os.environ.get("EDGE_AGENT_SAVE_FLOOR_PAGE") == "1" else tmp_path / "floor-page.png"


def chromium() -> Path:
    """Debian's chromium; installed here when it is missing and we are root, else a clear skip."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False, env=env, timeout=1200)
    if not CHROMIUM.exists():
        pytest.skip("no browser: the floor page test needs Debian's chromium; run: sudo apt-get install chromium")
    return CHROMIUM


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class SeatFloor:
    live: LiveFloor
    port: int  # the floor page's
    wire: Observer  # everything the gateway published


BREAK_LIMIT_S = 240.0


@pytest.fixture(scope="module")
def floor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeatFloor]:
    state = tmp_path_factory.mktemp("seats")
    port = free_port()
    config = state / "floor.toml"
    text = (ROOT / "examples" / "floor-3.toml").read_text().replace(
        "\n[sensing]\n", f"\n[sensing]\nbreak_limit_s = {BREAK_LIMIT_S:g}\n", 1)
    config.write_text(text + f'\n[display]\nbind = "127.0.0.1"\nport = {port}\ntitle = "Floor 3, central library"\n')
    with Mosquitto(state / "broker") as broker:
        wire = Observer(broker.port)
        wire.start()
        try:
            with LiveFloor(state, speed=30.0, floor=config, broker=("127.0.0.1", broker.port)) as live:
                yield SeatFloor(live, port, wire)
        finally:
            wire.stop()
    assert not wire.problems, "\n".join(wire.problems[:10])


def test_the_floor_page_shows_free_seats_and_follows_a_change(floor: SeatFloor, tmp_path: Path) -> None:
    exe = chromium()
    shot = screenshot_path(tmp_path)
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
    live, port = floor.live, floor.port
    gw = live.gateway
    live.wait_for("free seats", lambda: any(a.free for a in gw.availability.snapshot().values()), wall_s=60.0)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(exe), headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
            page.wait_for_function("document.querySelector('circle.seat.free') !== null", timeout=20_000)
            text = page.inner_text("body")
            assert "seats free" in text and "North reading" in text and "lux" in text
            assert page.locator("circle.seat").count() == len(live.sim.cfg.seats)
            seat = _a_free_seat(page)
            assert seat is not None, "no seat shows free on the page"
            assert seat != BUTTON_SEAT
            for forbidden in ("tag", "consent", "pseudonym"):
                assert forbidden not in page.content().lower().replace("tagname", "")
            node, channel = _desk_of(live, seat)
            live.on_loop(live.sim.nodes[node].press_button, channel)  # "back soon" on that desk
            page.wait_for_function(
                f"document.querySelector('circle.seat[data-seat=\"{seat}\"]').classList.contains('away')",
                timeout=30_000)
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000


# -- the desk's button ---------------------------------------------------------------------------------

BUTTON_SEAT = "S058"  # z3-silent, far from the page's first free seat


def _status(live: LiveFloor, seat: str) -> str:
    return str(live.on_loop(live.gateway.floor.seat_status, seat).value)


def _indicator(live: LiveFloor, seat: str) -> int:
    return int(live.on_loop(live.binding.seat_indicator, f"desk-{seat}"))


def test_staff_hold_the_desk_button_3_s_to_release_a_ghost_seat(floor: SeatFloor) -> None:
    live, wire, seat = floor.live, floor.wire, BUTTON_SEAT
    node, channel = live.hold_desk(seat)
    live.hold(next(s.id for s in live.sim.cfg.sensors if s.kind == "amg8833" and seat in s.seats))
    live.wait_for(f"{seat} free", lambda: _status(live, seat) == "free", wall_s=60.0)
    zone = next(s.zone for s in live.sim.cfg.seats if s.id == seat)

    mark = wire.mark()
    live.on_loop(node.press_button, channel)  # a patron's "back soon"
    live.wait_for(f"{seat} away", lambda: _status(live, seat) == "away")
    shown = wire.wait_for(f"{zone}'s availability with {seat} ready soon", lambda m: m.topic == f"{TOPIC_ROOT}/zone/"
                          f"{zone}/availability" and seat in m.json()["ready_soon_ids"], after=mark).json()
    assert seat not in shown["free_seat_ids"]  # held for its patron, who said so

    # Nobody comes back within the break limit: the seat turns ghost and staff are sent.
    ghost = wire.wait_for("ghost_seat", event_of("ghost_seat", seat=seat), after=mark,
                          timeout=20.0 + 2.0 * BREAK_LIMIT_S / live.speed).json()
    assert ghost["severity"] == "warning" and ghost["data"]["zone"] == zone
    listed = live.cli("seats", "list").json()
    assert seat in listed["ghost_seats"] and listed["ghosts"]["open"] >= 1
    table = live.cli("seats", "list", json_output=False)
    # The floor's own staff may have cleared other seats' ghosts meanwhile: counts are read relative.
    cleared_before = sum(listed["ghosts"]["cleared_by"].values())
    # ... and between the two reads: the table is checked for this seat and its own shape.
    waiting_line = next(line for line in table.stdout.splitlines() if line.startswith("ghost seats waiting: "))
    waiting = waiting_line.removeprefix("ghost seats waiting: ").split(";")[0].split(", ")
    assert table.code == 0 and seat in waiting and "; cleared " in waiting_line, table.stdout
    by_button = listed["ghosts"]["cleared_by"].get("desk_button", 0)
    row = next(line.split() for line in table.stdout.splitlines() if line.startswith(zone))
    assert row[1].isdigit() and int(row[5]) >= 1  # FREE, GHOST columns
    live.wait_for("the indicator blinking", lambda: _indicator(live, seat) == IndicatorColour.GHOST)

    # Staff take the bag to lost property and hold the desk's button for 3 s.
    mark = wire.mark()
    live.on_loop(node.hold_button, channel, 3.5)
    event = wire.wait_for("seat_released", event_of("seat_released", seat=seat), after=mark).json()
    released = event["data"]
    assert (released["source"], released["was"], released["zone"]) == ("desk_button", "ghost", zone)
    # From ghost to cleared: from the ghost's start to the end of the 3 s hold, as the two messages tell.
    assert released["ghost_to_release_s"] >= 3.0
    assert released["ghost_to_release_s"] == pytest.approx(_at(event["ts"]) - _at(ghost["data"]["since"]), abs=1.0)
    assert _status(live, seat) == "free"
    listed = live.cli("seats", "list").json()
    assert seat not in listed["ghost_seats"] and listed["ghosts"]["cleared_by"].get("desk_button", 0) >= by_button + 1
    assert sum(listed["ghosts"]["cleared_by"].values()) >= cleared_before + 1
    assert seat in listed["availability"][zone]["free_seat_ids"]
    health = wire.wait_for("a health message with the time from ghost to cleared", lambda m: m.topic == f"{TOPIC_ROOT}"
                           "/health" and m.json().get("ghost_to_release_s_p50") is not None, after=mark,
                           timeout=20.0 + 2.0 * live.sim.cfg.mqtt.health_interval_s / live.speed).json()
    # The floor's own staff keep clearing other ghosts, so the health message (sent at its own time) is
    # checked for what it must hold rather than against the listing read a moment apart.
    p50, p90 = health["ghost_to_release_s_p50"], health["ghost_to_release_s_p90"]
    assert 0.0 < p50 <= p90 and isinstance(health["ghost_seats"], int) and health["ghost_seats"] >= 0
    wire.wait_for(f"{zone}'s availability with {seat} free", shows_free(zone, seat), after=mark)
    live.wait_for("the indicator free", lambda: _indicator(live, seat) == IndicatorColour.FREE)

    # Held 3 s on a seat that is not ghost, the button is a press: a patron who held it a little long.
    live.on_loop(node.hold_button, channel, 3.5)
    live.wait_for(f"{seat} away again", lambda: _status(live, seat) == "away")
    # (away, not free: it was not taken as a release; the floor's own staff also hold buttons, so the
    # release counts are not compared here)
    # Staff may release an away seat too (the patron told the desk they had gone): free at once.
    mark = wire.mark()
    said = live.cli("seats", "release", seat, json_output=False)
    assert said.code == 0 and said.stdout.strip() == f"{seat} ({zone}) released: was away", said.stdout
    assert "unknown seat 'S0058'; closest: S058" in live.cli("seats", "release", "S0058").error_line()
    wire.wait_for(f"{zone}'s availability with {seat} free again", shows_free(zone, seat), after=mark)
    assert _status(live, seat) == "free"


def _a_free_seat(page: Any) -> str | None:
    seat: str | None = page.evaluate(
        "() => { const el = document.querySelector('circle.seat.free'); return el ? el.dataset.seat : null; }")
    return seat


def _desk_of(live: LiveFloor, seat: str) -> tuple[int, int]:
    desk = next(a for a in live.sim.cfg.actuators if a.kind == "desk" and seat in a.seats)
    assert desk.node is not None
    return desk.node, desk.channel


def shows_free(zone: str, seat: str) -> Callable[[Message], bool]:
    """An availability message of ``zone`` that shows ``seat`` free."""
    return lambda m: m.topic == f"{TOPIC_ROOT}/zone/{zone}/availability" and seat in m.json()["free_seat_ids"]


def _at(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
