"""The DWM1001 listener: its POS lines parsed, and the shell driven over a real pty against the simulated node."""

from __future__ import annotations

import asyncio

import pytest

from drivers.dwm1001 import Dwm1001Listener, parse_listener_line
from drivers.errors import BusTimeoutError, DriverError
from drivers.serial import SerialStream
from edge_agent.clock import SystemClock
from simulator.hw.bus import Fault
from simulator.hw.dwm1001 import SimDwm1001Listener
from simulator.hw.uart import SimListenerUart


def test_a_pos_line_gives_the_tag_and_its_position() -> None:
    report = parse_listener_line(b"POS,3,2a7f,12.34,-0.56,1.10,87,x1C\r\n", t=5.0)
    assert report is not None and report.tag_id == "2A7F" and report.t == 5.0
    assert report.position is not None
    assert (report.position.x_m, report.position.y_m, report.position.z_m) == (12.34, -0.56, 1.10)
    assert report.position.quality == 87
    short = parse_listener_line("POS,0,DW1C8F,1,2,0.5,100")  # without the trailing field
    assert short is not None and short.tag_id == "DW1C8F"


@pytest.mark.parametrize("line", [b"dwm> ", b"lec\r\n", b"\r\n", b"DWM1001 TWR Real Time Location System\r\n",
                                  b"DIST,4,AN0,1151,0.00,0.00,0.00,3.26,POS,1.53,0.81,1.70,55\r\n"])
def test_lines_that_are_not_position_reports_are_skipped(line: bytes) -> None:
    assert parse_listener_line(line) is None


def test_a_tag_without_a_fix_is_reported_without_a_position() -> None:
    for line in (b"POS,0,2A7F,nan,nan,nan,0,x10", b"POS,0,2A7F,1.0,2.0,1.0,0,x10"):
        report = parse_listener_line(line)
        assert report is not None and report.tag_id == "2A7F" and report.position is None


@pytest.mark.parametrize(("line", "why"), [
    (b"POS,0,2A7F,1.0,2.0", "fields"),
    (b"POS,zero,2A7F,1.0,2.0,1.0,50,x1", "index"),
    (b"POS,0,2A-7F,1.0,2.0,1.0,50,x1", "tag id"),
    (b"POS,0,2A7F,one,2.0,1.0,50,x1", "not numbers"),
    (b"POS,0,2A7F,1.0,2.0,1.0,150,x1", "quality"),
])
def test_a_malformed_pos_line_is_an_error_that_names_the_field(line: bytes, why: str) -> None:
    with pytest.raises(DriverError, match=why):
        parse_listener_line(line)


async def test_listener_over_a_pty_resets_opens_the_shell_and_streams_every_tag() -> None:
    node = SimDwm1001Listener("sim")
    sim = SimListenerUart(node)
    await sim.start()
    clock = SystemClock()
    stream = SerialStream(sim.port, 115200)
    listener = Dwm1001Listener(stream, clock, timeout_s=1.0, reset_wait_s=0.05)
    try:
        node.shell, node.streaming = True, True  # left streaming by a previous life: the reset copes
        await listener.start()
        for _ in range(100):  # the pty hands "lec" over a moment later
            if node.streaming:
                break
            await asyncio.sleep(0.01)
        assert node.commands[-2:] == ["reset", "lec"] and node.streaming
        for tag, x in (("2001", 3.5), ("2002", 7.25), ("2001", 3.6)):
            node.hear(tag, x, 4.0, 1.1, 90)
        got = [await listener.next_report(timeout_s=1.0) for _ in range(3)]
        assert [(r.tag_id, r.position.x_m if r.position else None) for r in got] == [
            ("2001", 3.5), ("2002", 7.25), ("2001", 3.6)]
        node.inject(Fault.CORRUPT_CRC, count=1)
        node.hear("2003", 1.0, 1.0, 1.1, 90)
        node.hear("2003", 1.5, 1.0, 1.1, 90)
        report = await listener.next_report(timeout_s=1.0)
        assert report.tag_id == "2003" and report.position is not None and report.position.x_m == 1.5
        assert listener.rejected == 1 and listener.reports == 4 and listener.health.healthy
        with pytest.raises(BusTimeoutError):  # an empty floor is silent: a timeout, for the caller to judge
            await listener.next_report(timeout_s=0.2)
    finally:
        listener.close()
        sim.close()


async def test_a_node_that_never_prompts_is_reported() -> None:
    node = SimDwm1001Listener("dead")
    node.inject(Fault.ABSENT)
    sim = SimListenerUart(node)
    await sim.start()
    listener = Dwm1001Listener(SerialStream(sim.port, 115200), SystemClock(), timeout_s=0.3, reset_wait_s=0.05)
    try:
        with pytest.raises(BusTimeoutError, match="dwm> prompt"):
            await listener.start()
        assert not listener.started and listener.health.consecutive_failures == 1
    finally:
        listener.close()
        sim.close()
