"""The firmware bridge: a framed, checksummed RS-485 protocol between the gateway and MCU nodes.

The wire format and node behaviour are specified in ``PROTOCOL.md`` (next to this file), complete
enough to write a node's firmware from. On the gateway:

- :class:`BridgeLink` (one per serial port) sends requests in priority order with retries,
  polls nodes, keeps the :class:`NodeRegistry` and yields :class:`NodeEvent` objects;
- :class:`SerialTransport` (a tty) and :class:`MemoryLine` (in-process, virtual-time friendly)
  carry the bytes;
- :class:`BridgeI2CBus` and the outputs (:class:`DimmerChannel`, :class:`DeskHeight`,
  :class:`DeskLamp`, :class:`SeatIndicator`) are the ports drivers and the arbiter use;
- :func:`update_firmware` runs a resumable A/B OTA update.
"""

from .devices import BridgeI2CBus, DeskHeight, DeskLamp, DimmerChannel, NodeOutput, SeatIndicator
from .link import BridgeLink, LinkStats, NodeEvent, Priority
from .messages import CommandSuperseded, NodeNackError
from .ota import OtaError, OtaReport, build_image, parse_image_header, update_firmware
from .registry import NodeRecord, NodeRegistry, load_registry
from .transport import LineInUse, MemoryLine, SerialTransport, Transport

__all__ = [
    "BridgeI2CBus",
    "BridgeLink",
    "CommandSuperseded",
    "DeskHeight",
    "DeskLamp",
    "DimmerChannel",
    "LineInUse",
    "LinkStats",
    "MemoryLine",
    "NodeEvent",
    "NodeNackError",
    "NodeOutput",
    "NodeRecord",
    "NodeRegistry",
    "OtaError",
    "OtaReport",
    "Priority",
    "SeatIndicator",
    "SerialTransport",
    "Transport",
    "build_image",
    "load_registry",
    "parse_image_header",
    "update_firmware",
]
