"""Control-socket operations on firmware-bridge nodes: a firmware update run by the daemon.

The daemon owns the RS-485 line (it holds the serial device's lock), so ``edge-agent nodes ota``
asks the daemon to do the update instead of opening the port itself. A request line is at most
:data:`~edge_agent.control.wire.MAX_LINE` bytes, so the image goes up in base64 pieces:

1. ``node_ota_upload`` ``{node, size, sha256, offset, data}``, once per piece, in order; the
   daemon keeps the pieces for that node and answers how many bytes it holds;
2. ``node_ota_start`` ``{node, sha256[, port][, signature]}``: the daemon checks the whole image
   (hash, the model-publisher's ``signature`` when the site has keys, header, the node's HELLO)
   and starts the update in the background; with ``port``, it first refuses if that is not the
   line it drives (a node address is only unique on its own line);
3. ``node_ota_status`` ``{node}``, as often as the CLI likes: state, bytes sent, and at the end
   the outcome (:class:`NodeOtaState`). The update goes on if the CLI goes away.

A daemon that has no bridge line refuses these with one line saying so.
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol, TypedDict, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

MAX_IMAGE = 1024 * 1024  # one application slot of a node's flash
UPLOAD_PIECE = 9 * 1024  # raw bytes per upload request: 12 KiB of base64, inside a request line

NodeAddress = Annotated[int, Field(ge=1, le=247)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeArgs(_Args):
    node: NodeAddress


class NodeOtaUploadArgs(_Args):
    node: NodeAddress
    size: int = Field(gt=0, le=MAX_IMAGE)
    sha256: Sha256
    offset: int = Field(ge=0, le=MAX_IMAGE)
    data: str = Field(min_length=4, max_length=(UPLOAD_PIECE + 2) // 3 * 4)  # base64


class NodeOtaStartArgs(_Args):
    node: NodeAddress
    sha256: Sha256
    port: str | None = Field(default=None, max_length=256)  # the line the technician meant, if named
    signature: dict[str, Any] | None = None  # the image's signature document (edge_agent.trust.artefacts)


class NodeOtaState(TypedDict):
    node: int
    state: str  # uploading | running | updated | rolled-back | failed
    sent: int  # bytes of the image the node holds
    total: int
    message: str  # why it failed, or what it is doing
    firmware_before: str
    firmware_after: str
    slot: str  # A | B | "" (not known yet)
    resumed_from: int
    user: str


@runtime_checkable
class NodeTarget(Protocol):
    """What a daemon with a bridge line implements for these operations (refuse with ControlRefused)."""

    async def node_ota_upload(
        self, node: int, size: int, sha256: str, offset: int, data: str, user: str
    ) -> NodeOtaState: ...

    async def node_ota_start(self, node: int, sha256: str, user: str, port: str | None = None, *,
                             signature: dict[str, Any] | None = None) -> NodeOtaState: ...

    async def node_ota_status(self, node: int) -> NodeOtaState: ...
