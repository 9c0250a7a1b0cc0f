"""An embedded MQTT broker (amqtt) for ``edge-agent demo`` on a machine with no broker installed.

It runs in its own thread with its own event loop on the real clock: the simulated floor runs
on virtual time, and a broker sharing that loop would time out keep-alives as simulated hours
fly by. amqtt speaks MQTT 3.1.1 only, so the uplink falls back from MQTT 5 when it connects.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Any

log = logging.getLogger("edge_agent.embedded_broker")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """amqtt on 127.0.0.1:<port> in a daemon thread; ``start()`` returns once it listens."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Any = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 15.0) -> None:
        try:
            from amqtt.broker import Broker
        except ImportError as exc:
            raise RuntimeError("the embedded broker needs amqtt: pip install 'edge-agent[demo]'") from exc

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            config = {
                "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
                "sys_interval": 0,
                "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
            }
            try:
                self._broker = Broker(config, loop=loop)
                loop.run_until_complete(self._broker.start())
            except BaseException as exc:  # surfaced to the starting thread below
                self._error = exc
                self._started.set()
                return
            self._started.set()
            loop.run_forever()
            loop.run_until_complete(self._broker.shutdown())
            loop.close()

        for name in ("amqtt", "amqtt.broker", "amqtt.mqtt.protocol", "transitions"):
            logging.getLogger(name).setLevel(logging.ERROR)
        self._thread = threading.Thread(target=serve, name="embedded-broker", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError(f"embedded broker did not start within {timeout}s")
        if self._error is not None:
            raise RuntimeError(f"embedded broker failed to start: {self._error}") from self._error
        log.info("embedded MQTT broker (amqtt) on 127.0.0.1:%d", self.port)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = None
        self._thread = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
