"""Firmware updates of bridge nodes as a daemon operation, for ``edge-agent nodes ota``.

A line has one master: the daemon holds the serial device's lock, so a technician's update goes
through the daemon (edge_agent.control.nodes describes the three requests). The daemon takes the
image in pieces, checks it whole (size, SHA-256, header), and runs
:func:`firmware_bridge.update_firmware` on its own link, where the update's OTA traffic takes
its turn behind actuation, sensing and polls. The CLI follows progress with ``node_ota_status``;
the update goes on if the CLI is interrupted, and a second update of the same node is refused
while one runs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from drivers.errors import BridgeError, TrustError
from edge_agent.control.nodes import NodeOtaState
from edge_agent.control.protocol import ControlRefused
from firmware_bridge import BridgeLink, OtaError, update_firmware
from firmware_bridge.ota import parse_image_header

if TYPE_CHECKING:
    from edge_agent.daemon import Daemon

log = logging.getLogger("edge_agent.nodes")


@dataclass
class NodeUpdate:
    """One node's update in this daemon's life: the image as it is uploaded, then the run."""

    node: int
    size: int
    sha256: str
    user: str
    image: bytearray = field(default_factory=bytearray)
    state: str = "uploading"  # uploading | running | updated | rolled-back | failed
    sent: int = 0
    message: str = ""
    firmware_before: str = ""
    firmware_after: str = ""
    slot: str = ""
    resumed_from: int = 0
    signed_by: str = ""  # the model-publisher key that signed the image ("" while signatures are off)
    task: asyncio.Task[None] | None = None

    def view(self) -> NodeOtaState:
        return {"node": self.node, "state": self.state, "sent": self.sent, "total": self.size,
                "message": self.message, "firmware_before": self.firmware_before,
                "firmware_after": self.firmware_after, "slot": self.slot, "resumed_from": self.resumed_from,
                "user": self.user}  # fmt: skip


class NodeOperations:
    """The daemon's side of ``node_ota_*`` (mixed into edge_agent.operations.GatewayOperations)."""

    daemon: Daemon

    @property
    def _node_updates(self) -> dict[int, NodeUpdate]:
        return self.daemon.node_updates  # the daemon's life, not one configuration's: kept across reloads

    def _bridge(self) -> BridgeLink:
        gw = self.daemon.gateway
        link = gw.hardware.link if gw is not None else None
        if gw is None:
            raise ControlRefused("the daemon is starting; try again in a few seconds")
        if not isinstance(link, BridgeLink):
            raise ControlRefused("this gateway has no [bridge] line in its configuration, so no nodes to update")
        return link

    def _running(self, node: int) -> NodeUpdate | None:
        up = self._node_updates.get(node)
        return up if up is not None and up.state == "running" else None

    async def node_ota_upload(self, node: int, size: int, sha256: str, offset: int, data: str,
                              user: str) -> NodeOtaState:  # fmt: skip
        self._bridge()
        busy = self._running(node)
        if busy is not None:
            raise ControlRefused(f"node {node} is being updated already (started by {busy.user}, "
                                 f"{busy.sent} of {busy.size} bytes); wait for it to finish")  # fmt: skip
        up = self._node_updates.get(node)
        if up is None or offset == 0 or (up.size, up.sha256, up.state) != (size, sha256, "uploading"):
            up = self._node_updates[node] = NodeUpdate(node, size, sha256, user)
        if offset != len(up.image):
            raise ControlRefused(f"node {node}: a piece at byte {offset}, but the daemon holds {len(up.image)} "
                                 "bytes of this image; send the pieces in order from 0")  # fmt: skip
        try:
            piece = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ControlRefused(f"node {node}: the piece at byte {offset} is not valid base64 ({exc})") from exc
        if len(up.image) + len(piece) > size:
            raise ControlRefused(f"node {node}: the pieces add up to more than the {size} bytes announced")
        up.image += piece
        up.message = f"{len(up.image)} of {size} bytes uploaded"
        return up.view()

    async def node_ota_start(self, node: int, sha256: str, user: str, port: str | None = None, *,
                             signature: dict[str, Any] | None = None) -> NodeOtaState:
        link = self._bridge()
        bridge = self.daemon.cfg.bridge
        if port is not None and bridge is not None and not await asyncio.to_thread(_same_device, port, bridge.port):
            raise ControlRefused(f"the daemon drives the line on {bridge.port}, not {port}; node {node} there is "
                                 "another node. Leave out --port to update the daemon's node")  # fmt: skip
        up = self._node_updates.get(node)
        if up is not None and up.state == "running":
            raise ControlRefused(f"node {node} is being updated already (started by {up.user})")
        if up is None or up.state != "uploading" or up.sha256 != sha256:
            raise ControlRefused(f"node {node}: upload the image first (node_ota_upload), then start")
        if len(up.image) != up.size:
            raise ControlRefused(f"node {node}: only {len(up.image)} of {up.size} bytes were uploaded")
        if hashlib.sha256(up.image).hexdigest() != sha256:
            del self._node_updates[node]
            raise ControlRefused(f"node {node}: the uploaded image does not match its SHA-256; upload it again")
        try:  # before a byte goes to the node: a model-publisher's signature over this image
            signer = self.daemon.check_artefact("firmware", sha256, up.size, signature, actor=user)
        except TrustError as exc:
            raise ControlRefused(f"node {node}: firmware refused ({exc.reason}): {exc}") from exc
        up.signed_by = signer or ""
        try:
            parse_image_header(bytes(up.image))
        except BridgeError as exc:
            del self._node_updates[node]
            raise ControlRefused(f"node {node}: {exc}") from exc
        up.state, up.user, up.message = "running", user, "starting"
        up.task = asyncio.get_running_loop().create_task(self._run_update(link, up), name=f"node-ota-{node}")
        log.info("node %d: firmware update started by %s (%d bytes)", node, user, up.size)
        return up.view()

    async def node_ota_status(self, node: int) -> NodeOtaState:
        up = self._node_updates.get(node)
        if up is None:
            raise ControlRefused(f"no update of node {node} in this daemon's life; start one with: "
                                 f"edge-agent nodes ota {node} IMAGE")  # fmt: skip
        return up.view()

    async def _run_update(self, link: BridgeLink, up: NodeUpdate) -> None:
        def progress(done: int, total: int) -> None:
            up.sent = done
            up.message = f"{done} of {total} bytes sent"

        image, up.image = bytes(up.image), bytearray()
        try:
            report = await update_firmware(link, up.node, image, progress=progress)
        except (OtaError, BridgeError) as exc:
            up.state, up.message = "failed", str(exc)
            log.warning("node %d: firmware update failed: %s", up.node, exc)
            self.daemon.audit("firmware", {"node": up.node, "sha256": up.sha256, "outcome": "failed",
                                           "message": str(exc)[:300], "signed_by": up.signed_by}, actor=up.user)
            return
        up.state, up.resumed_from = report.outcome, report.resumed_from
        up.firmware_before, up.firmware_after = report.firmware_before, report.firmware_after
        up.slot = "AB"[report.slot]
        up.sent = up.size
        up.message = {"updated": "the node runs the new firmware and confirmed it",
                      "rolled-back": "the new firmware did not start; the node went back to the old one"}.get(
                          report.outcome, report.outcome)  # fmt: skip
        log.info("node %d: firmware update %s: %s -> %s", up.node, report.outcome, report.firmware_before,
                 report.firmware_after)  # fmt: skip
        self.daemon.audit("firmware", {"node": up.node, "sha256": up.sha256, "outcome": report.outcome,
                                       "firmware": up.firmware_after, "signed_by": up.signed_by}, actor=up.user)


def _same_device(a: str, b: str) -> bool:
    """Two names of one serial device (a udev symlink such as /dev/serial/by-id/... and /dev/ttyUSB0)."""
    return os.path.realpath(a) == os.path.realpath(b)
