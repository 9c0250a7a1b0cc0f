"""Upstream over MQTT: message models and topics, the durable outbox, commands, the uplink.

The daemon builds ``Outbox`` (in the state dir) and ``Uplink`` and calls the uplink's
``publish_*`` methods; see docs/mqtt.md for the wire contract.
"""

from edge_agent.sync.commands import CommandTarget
from edge_agent.sync.messages import PrivacyError, assert_minimum_necessary
from edge_agent.sync.outbox import MessageClass, Outbox, OutboxStats, open_path
from edge_agent.sync.uplink import Uplink

__all__ = [
    "CommandTarget",
    "MessageClass",
    "Outbox",
    "OutboxStats",
    "PrivacyError",
    "Uplink",
    "assert_minimum_necessary",
    "open_path",
]
