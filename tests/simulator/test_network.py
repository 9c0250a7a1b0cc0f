"""The cuttable network path used by outage scenarios: forwards, cuts, restores."""

from __future__ import annotations

import asyncio

from simulator.network import NetworkPath


async def _echo_server() -> asyncio.Server:
    async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while data := await r.read(1024):
            w.write(data)
            await w.drain()
        w.close()

    return await asyncio.start_server(echo, "127.0.0.1", 0)


async def test_forward_cut_restore() -> None:
    server = await _echo_server()
    port = server.sockets[0].getsockname()[1]
    path = NetworkPath(("127.0.0.1", port))
    await path.start()
    try:
        r, w = await asyncio.open_connection(*path.address)
        w.write(b"ping")
        assert await asyncio.wait_for(r.read(4), 5) == b"ping"
        await path.cut()
        assert await asyncio.wait_for(r.read(4), 5) == b""  # the connection was dropped
        w.close()
        try:
            await asyncio.open_connection(*path.address)
            refused = False
        except OSError:
            refused = True
        assert refused, "a cut path must refuse new connections"
        await path.restore()
        r2, w2 = await asyncio.open_connection(*path.address)
        w2.write(b"back")
        assert await asyncio.wait_for(r2.read(4), 5) == b"back"
        w2.close()
        assert path.cut_count == 1 and path.bytes_forwarded >= 16
    finally:
        await path.aclose()
        server.close()
