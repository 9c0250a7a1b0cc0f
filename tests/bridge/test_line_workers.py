"""The line's own tasks never die silently: a dead reader, sender or poller is reported and started again.

Each worker is made to hit a bug once (an exception no worker expects, raised by the transport or
the registry); then the requests that depended on it must fail at once instead of waiting for
ever, :meth:`BridgeLink.supervise` must raise the error (as the daemon's supervisor runs it), and
once supervise runs again the line must work as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest

from drivers.errors import BridgeError
from firmware_bridge import BridgeLink
from simulator.nodes import SimNode
from simulator.nodes_line import SimLine

from .harness import on_line


class Bug(RuntimeError):
    """What no worker of the line expects."""


def fail_once(obj: Any, method: str) -> None:
    """Make ``obj.method`` raise Bug on its next call only."""
    real = getattr(obj, method)

    async def broken(*args: Any, **kwargs: Any) -> Any:
        setattr(obj, method, real)
        raise Bug(f"{method} hit a bug")

    setattr(obj, method, broken)


def supervising(link: BridgeLink) -> asyncio.Task[None]:
    """supervise() as the daemon's supervisor runs it: watching from the start."""
    return asyncio.create_task(link.supervise())


async def death(watch: asyncio.Task[None]) -> BridgeError:
    async with asyncio.timeout(5.0):
        with pytest.raises(BridgeError) as raised:
            await watch
    return raised.value


def test_a_dead_sender_fails_its_request_at_once_and_is_started_again(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        watch = supervising(link)
        await link.status(3)
        fail_once(link.transport, "write")
        with caplog.at_level(logging.ERROR, logger="firmware_bridge.link"):
            queued = asyncio.create_task(link.status(3))  # waits behind the request the bug hits
            async with asyncio.timeout(5.0):  # before: both callers waited for ever
                with pytest.raises(BridgeError, match="sender stopped"):
                    await link.get_output(3, 0, 0)
                with pytest.raises(BridgeError, match="sender stopped"):
                    await queued
            dead = await death(watch)
        assert "bridge-sender" in str(dead) and isinstance(dead.__cause__, Bug)
        assert any("bridge-sender died" in r.getMessage() and r.exc_info for r in caplog.records)
        watch = supervising(link)  # the supervisor's next run starts the sender again, then watches
        status = await link.status(3)
        assert status.boot_id == line.node(3).boot_id
        assert not watch.done()
        watch.cancel()

    on_line(scenario, [SimNode(3)])


def test_a_dead_reader_is_reported_and_started_again() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        watch = supervising(link)
        await link.status(3)
        fail_once(link.transport, "read")  # the reader waits in the read before: the one after it fails
        with contextlib.suppress(BridgeError):
            await link.status(3)
        assert "bridge-reader" in str(await death(watch))
        with pytest.raises(BridgeError):  # nobody reads the line: the answer is never seen
            await link.status(3, retries=0, deadline_s=0.2)
        watch = supervising(link)
        await link.status(3)
        watch.cancel()

    on_line(scenario, [SimNode(3)])


def test_a_dead_poller_is_reported_and_polls_again() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        watch = supervising(link)
        link.watch(3, 1.0)
        await asyncio.sleep(2.5)
        fail_once(link, "status")
        assert "bridge-poll-3" in str(await death(watch))
        polled = link.registry.get(3).requests
        await asyncio.sleep(5.0)
        assert link.registry.get(3).requests == polled  # dead: nobody polls node 3
        watch = supervising(link)
        await asyncio.sleep(5.0)
        assert link.registry.get(3).requests > polled
        watch.cancel()

    on_line(scenario, [SimNode(3)])


def test_closing_the_link_is_no_death() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        link.watch(3, 1.0)
        await link.status(3)
        watch = supervising(link)
        await link.aclose()
        await asyncio.sleep(1.0)
        assert not watch.done()
        watch.cancel()

    on_line(scenario, [SimNode(3)])
