"""The project's exception tree.

``drivers`` is the bottom of the import graph (every other package may import it, it imports
none of them), so the one root exception lives here and each layer hangs its subtree off it.
Where a built-in fits, the subclass inherits it too, so callers that only know the standard
library still catch the right thing (``except OSError`` catches a bus NACK).

::

    EdgeError
    ├── BusError(OSError)                  a bus port could not complete a transfer
    │   ├── NackError                      the device did not acknowledge (errno 121 / 5)
    │   ├── BusTimeoutError(TimeoutError)  no answer in time
    │   └── BleError                       bleak raised, or the link dropped
    ├── DriverError                        a device answered, but wrongly
    │   ├── ChecksumError(ValueError)      CRC mismatch on received data
    │   ├── DataNotReadyError              the part has no new data yet
    │   ├── SensorImplausibleError(ValueError)  out of physical range or stuck
    │   └── DeviceAbsentError(LookupError)  nothing answers at the address
    ├── ConfigError(ValueError)            edge_agent.config: with every problem listed
    ├── RulesError(ValueError)             rules: rule-file validation
    ├── ModelError                         models: a model that cannot be loaded or run
    ├── SyncError                          edge_agent.sync: MQTT and the outbox
    ├── TrustError                         edge_agent.trust: a signature, key or audit record refused
    ├── SensingError                       edge_agent.sensing: a refused sensing command
    │   └── LogFormatError(ValueError)     a recorded log (CSV) that cannot be read
    └── BridgeError                        firmware_bridge: framing, CRC, node timeouts
        ├── FrameError(ValueError)
        └── NodeTimeoutError(TimeoutError)

Exceptions carry data fields (``address``, ``device``) rather than only a message, so a caller
can mark the right device unhealthy without parsing text.
"""

from __future__ import annotations

import errno


class EdgeError(Exception):
    """Root of every error this project raises on purpose."""


class BusError(EdgeError, OSError):
    """A bus port could not complete a transfer (I2C, serial, BLE, GPIO)."""

    def __init__(self, message: str, *, bus: str = "", address: int | None = None) -> None:
        super().__init__(message)
        self.bus = bus
        self.address = address

    def __str__(self) -> str:  # OSError's own __str__ would show errno formatting
        return str(self.args[0]) if self.args else ""


class PortUnavailableError(BusError):
    """The port itself cannot be opened (no such device, no permission, no GPIO library)."""


class NackError(BusError):
    """The addressed device did not acknowledge: Linux reports EREMOTEIO (121) or EIO (5)."""


class BusTimeoutError(BusError, TimeoutError):
    """The transfer did not complete in time (clock stretching too long, link silent)."""


class BleError(BusError):
    """A BLE operation failed or the connection dropped."""


class DriverError(EdgeError):
    """A device answered but its answer cannot be used."""

    def __init__(self, message: str, *, device: str = "") -> None:
        super().__init__(message)
        self.device = device


class ChecksumError(DriverError, ValueError):
    """Received data failed its CRC."""


class DataNotReadyError(DriverError):
    """The part has no new measurement yet; try again after its conversion time."""


class SensorImplausibleError(DriverError, ValueError):
    """A value outside the part's physical range, or the same raw value for too long."""


class DeviceAbsentError(DriverError, LookupError):
    """Nothing answers at the configured address."""


class ConfigError(EdgeError, ValueError):
    """The site configuration is invalid; ``problems`` holds one line per error."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class RulesError(EdgeError, ValueError):
    """A rule file is invalid; ``problems`` holds one line per error."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class ModelError(EdgeError):
    """A forecast model could not be loaded, checked or run."""


class SyncError(EdgeError):
    """MQTT connection or outbox failure."""


class TrustError(EdgeError):
    """A signed request or artefact refused, or an audit log that does not verify.

    ``reason`` is the refusal code a sender sees (``unsigned``, ``unknown_key``, ``bad_signature``,
    ``expired``, ``replayed``, ``forbidden``).
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class SensingError(EdgeError):
    """A sensing command that cannot be carried out now (e.g. background capture with people in view)."""

    def __init__(self, message: str, *, sensor: str = "") -> None:
        super().__init__(message)
        self.sensor = sensor


class LogFormatError(SensingError, ValueError):
    """A recorded log (UWB ranges, anchors, truth CSV) whose header or content cannot be used."""

    def __init__(self, message: str, *, path: str = "", line: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line


class BridgeError(EdgeError):
    """Firmware-bridge failure: framing, checksum, node silence."""


class FrameError(BridgeError, ValueError):
    """A serial frame that cannot be decoded (bad COBS, bad CRC, truncated)."""


class NodeTimeoutError(BridgeError, TimeoutError):
    """A node did not answer within its retries."""


NACK_ERRNOS = frozenset({errno.EREMOTEIO, errno.EIO, errno.ENXIO})


def translate_oserror(exc: OSError, *, bus: str = "", address: int | None = None) -> BusError:
    """Map an OSError from smbus2 / the kernel to the project's bus errors (use with ``from``)."""
    where = f"{bus}@0x{address:02x}" if address is not None else bus
    if exc.errno in NACK_ERRNOS:
        return NackError(f"{where}: no acknowledge (errno {exc.errno})", bus=bus, address=address)
    if exc.errno == errno.ETIMEDOUT:
        return BusTimeoutError(f"{where}: bus timeout", bus=bus, address=address)
    return BusError(f"{where}: {exc.strerror or exc}", bus=bus, address=address)
