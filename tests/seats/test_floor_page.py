"""The floor display page in a real headless browser: Debian's chromium, driven by playwright.

The daemon runs on the simulated floor with ``[display]`` configured; the page must show the
floor plan, the zones' free seats and comfort, and change by itself (server-sent events) when a
seat changes: here a patron presses "back soon" on a free desk and the seat turns away. The test
saves docs/images/floor-page.png (referenced from docs/technician.md).

What it needs: the ``playwright`` package (the dev extra) and ``/usr/bin/chromium`` (CI installs
Debian's package; run as root, the test installs it itself). Playwright never downloads a
browser here: it is pointed at chromium's executable.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.control.simfloor import ROOT, LiveFloor

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = ROOT / "docs" / "images" / "floor-page.png"


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


@pytest.fixture(scope="module")
def floor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveFloor, int]]:
    state = tmp_path_factory.mktemp("page")
    port = free_port()
    config = state / "floor.toml"
    config.write_text((ROOT / "examples" / "floor-3.toml").read_text()
                      + f'\n[display]\nbind = "127.0.0.1"\nport = {port}\ntitle = "Floor 3, central library"\n')
    with LiveFloor(state, speed=30.0, floor=config) as live:
        yield live, port


@pytest.mark.slow
def test_the_floor_page_shows_free_seats_and_follows_a_change(floor: tuple[LiveFloor, int]) -> None:
    exe = chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
    live, port = floor
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
            for forbidden in ("tag", "consent", "pseudonym"):
                assert forbidden not in page.content().lower().replace("tagname", "")
            node, channel = _desk_of(live, seat)
            live.on_loop(live.sim.nodes[node].press_button, channel)  # "back soon" on that desk
            page.wait_for_function(
                f"document.querySelector('circle.seat[data-seat=\"{seat}\"]').classList.contains('away')",
                timeout=30_000)
            page.screenshot(path=str(SCREENSHOT))
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000


def _a_free_seat(page: Any) -> str | None:
    seat: str | None = page.evaluate(
        "() => { const el = document.querySelector('circle.seat.free'); return el ? el.dataset.seat : null; }")
    return seat


def _desk_of(live: LiveFloor, seat: str) -> tuple[int, int]:
    desk = next(a for a in live.sim.cfg.actuators if a.kind == "desk" and seat in a.seats)
    assert desk.node is not None
    return desk.node, desk.channel
