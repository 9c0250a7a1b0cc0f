"""An embedded MQTT broker (amqtt) for ``edge-agent demo`` on a machine with no broker installed.

It runs in a child process on the real clock: the simulated floor runs on virtual time, and a
broker sharing that loop (or that interpreter) would time out keep-alives as simulated hours fly
by and fall behind. amqtt speaks MQTT 3.1.1 only, so the uplink falls back from MQTT 5 when it connects.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

log = logging.getLogger("edge_agent.embedded_broker")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(port: int, ready: Any) -> None:
    """The broker process: amqtt on its own event loop and its own interpreter (no shared GIL)."""
    from amqtt.broker import Broker

    for name in ("amqtt", "amqtt.broker", "amqtt.mqtt.protocol", "transitions"):
        logging.getLogger(name).setLevel(logging.ERROR)
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "sys_interval": 0,
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    broker = Broker(config, loop=loop)
    loop.run_until_complete(broker.start())
    ready.set()
    loop.run_forever()


class EmbeddedBroker:
    """amqtt on 127.0.0.1:<port> in a child process; ``start()`` returns once it listens.

    A process, not a thread: the simulated floor keeps the interpreter busy, and a broker
    sharing its GIL would fall behind and back the outbox up.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._proc: Any = None

    def start(self, timeout: float = 20.0) -> None:
        import importlib.util
        import multiprocessing

        if importlib.util.find_spec("amqtt") is None:
            raise RuntimeError("the embedded broker needs amqtt: pip install 'edge-agent[demo]'")
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Event()
        self._proc = ctx.Process(target=_serve, args=(self.port, ready), name="embedded-broker", daemon=True)
        self._proc.start()
        if not ready.wait(timeout):
            self.stop()
            raise RuntimeError(f"embedded broker did not start within {timeout}s")
        log.info("embedded MQTT broker (amqtt) on 127.0.0.1:%d", self.port)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)
        self._proc = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
