"""A simulated node's reply booked on the memory line ahead of its start (``MemoryEndpoint.send_later``)
arrives when it would have without the booking, and gives way to whatever takes the line first."""

from __future__ import annotations

import asyncio

import pytest

from firmware_bridge.transport import MemoryLine
from simulator.clock import run_virtual

BYTE_S = 10 / 115200


async def arrivals(line: MemoryLine, until: float) -> list[tuple[float, bytes]]:
    """What the master end hears until ``until`` (loop time), with the arrival times."""
    heard: list[tuple[float, bytes]] = []
    loop = asyncio.get_running_loop()
    listening = asyncio.ensure_future(line.master.listen(lambda data: heard.append((loop.time(), data))))
    await asyncio.sleep(until - loop.time())
    listening.cancel()
    return heard


def test_a_booked_reply_arrives_after_its_delay_and_its_bytes() -> None:
    async def main() -> list[tuple[float, bytes]]:
        line = MemoryLine()
        t0 = asyncio.get_running_loop().time()
        line.slave.send_later(0.002, b"R" * 20)
        heard = await arrivals(line, t0 + 0.01)
        assert line.bytes_carried == 20
        return [(round(t - t0, 9), data) for t, data in heard]

    assert run_virtual(main()) == [(round(0.002 + 20 * BYTE_S, 9), b"R" * 20)]


@pytest.mark.parametrize("how", ["write", "transmit", "sooner"])
def test_what_takes_the_line_before_a_booked_reply_starts_goes_first(how: str) -> None:
    """The reply was booked for 2 ms; 1 ms in, the same end starts another transmission of 30
    bytes (2.6 ms): it goes first, and the reply follows when it is over, as without a booking."""

    async def main() -> list[tuple[float, bytes]]:
        line = MemoryLine()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        line.slave.send_later(0.002, b"R" * 20)
        writing: asyncio.Future[None] | None = None
        if how == "sooner":  # another reply, set later but due sooner
            line.slave.send_later(0.001, b"S" * 30)
        else:
            await asyncio.sleep(0.001)
            if how == "write":
                writing = asyncio.ensure_future(line.slave.write(b"S" * 30))
            else:
                line.slave.transmit(b"S" * 30)
        heard = await arrivals(line, t0 + 0.02)
        assert writing is None or writing.done()
        return [(round(t - t0, 9), data) for t, data in heard]

    first_end = 0.001 + 30 * BYTE_S
    assert run_virtual(main()) == [
        (round(first_end, 9), b"S" * 30),
        (round(first_end + 20 * BYTE_S, 9), b"R" * 20),
    ]


def test_a_booked_reply_on_the_wire_holds_the_line() -> None:
    """Once the booked reply has started, a write of the same end queues behind it."""

    async def main() -> list[tuple[float, bytes]]:
        line = MemoryLine()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        line.slave.send_later(0.001, b"R" * 20)
        await asyncio.sleep(0.001 + 5 * BYTE_S)
        writing = asyncio.ensure_future(line.slave.write(b"S" * 30))
        heard = await arrivals(line, t0 + 0.02)
        assert writing.done()
        return [(round(t - t0, 9), data) for t, data in heard]

    reply_end = 0.001 + 20 * BYTE_S
    assert run_virtual(main()) == [
        (round(reply_end, 9), b"R" * 20),
        (round(reply_end + 30 * BYTE_S, 9), b"S" * 30),
    ]


def test_a_closed_end_delivers_no_booked_reply() -> None:
    async def main() -> list[tuple[float, bytes]]:
        line = MemoryLine()
        t0 = asyncio.get_running_loop().time()
        line.slave.send_later(0.002, b"R" * 20)
        await line.slave.aclose()
        return await arrivals(line, t0 + 0.01)

    assert run_virtual(main()) == []
