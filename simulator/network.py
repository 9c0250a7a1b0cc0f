"""A cuttable network path between the gateway and its broker, for outage scenarios.

Stopping a broker someone else runs is not ours to do, and a broker outage is really a network
outage as the gateway sees it. :class:`NetworkPath` is a TCP forwarder on 127.0.0.1 that the
simulated daemon connects to instead of the broker; ``cut()`` drops every connection and refuses
new ones (the gateway sees resets and connection refusals, as with a dead uplink), ``restore()``
accepts again. It runs on the caller's event loop: real sockets work on the virtual-time loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger("simulator.network")


class NetworkPath:
    """127.0.0.1:<port> forwarding to ``upstream``; cut and restored on command."""

    def __init__(self, upstream: tuple[str, int], *, port: int = 0) -> None:
        self.upstream = upstream
        self._port = port
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.cut_count = 0
        self.bytes_forwarded = 0

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self._port

    @property
    def is_up(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self._port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError as exc:
            log.debug("upstream %s unreachable: %s", self.upstream, exc)
            writer.close()
            return
        self._writers.update((writer, up_writer))
        a = asyncio.create_task(self._pump(reader, up_writer))
        b = asyncio.create_task(self._pump(up_reader, writer))
        self._pipes.update((a, b))
        await asyncio.gather(a, b, return_exceptions=True)
        self._pipes.difference_update((a, b))
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                self.bytes_forwarded += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()

    async def cut(self) -> None:
        """Drop every connection and stop accepting: the broker is unreachable."""
        self.cut_count += 1
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            transport = w.transport
            if transport is not None:
                transport.abort()
        for task in list(self._pipes):
            task.cancel()

    async def restore(self) -> None:
        """Accept connections again on the same port."""
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self._port)

    async def aclose(self) -> None:
        await self.cut()
        await asyncio.sleep(0)
