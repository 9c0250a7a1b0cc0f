"""Over-the-air firmware update of a node (PROTOCOL.md, "OTA").

The node keeps two flash slots (A/B). The gateway streams the image into the inactive slot,
resuming from whatever offset the node reports (a power cut or a closed laptop mid-update costs
nothing), then asks the node to commit. The node verifies the SHA-256 itself and boots the new
slot *on trial*: if the new firmware does not answer HELLO within the trial deadline, the boot
loader goes back to the old slot. So the update can fail, but it cannot brick a node.

Images start with a 16-byte :class:`ImageHeader` that the boot loader checks before jumping.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass

from drivers.errors import BridgeError, FrameError

from .link import BridgeLink, Priority
from .messages import (
    MsgType,
    NackCode,
    NodeNackError,
    OtaBegin,
    OtaChunk,
    OtaProgress,
    OtaResult,
    OtaState,
    OtaStatus,
)

IMAGE_MAGIC = b"EAFW"
IMAGE_HEADER = struct.Struct("<4sBBBBBBIH")  # magic, header version, kind, major, minor, patch, 0, length, 0
CHUNK_SIZE = 256
TRIAL_DEADLINE_S = 30.0  # the node's boot loader rolls back if no HELLO is answered by then


@dataclass(frozen=True, slots=True)
class ImageHeader:
    kind: int
    version: tuple[int, int, int]
    length: int

    @property
    def firmware(self) -> str:
        return ".".join(map(str, self.version))


def build_image(kind: int, version: tuple[int, int, int], body: bytes) -> bytes:
    """Prefix ``body`` with the header a node's boot loader expects (used by the build and the simulator)."""
    length = IMAGE_HEADER.size + len(body)
    return IMAGE_HEADER.pack(IMAGE_MAGIC, 1, kind, *version, 0, length, 0) + body


def parse_image_header(image: bytes) -> ImageHeader:
    """Read and check an image's header; FrameError if it is not a node image."""
    if len(image) < IMAGE_HEADER.size:
        raise FrameError(f"image of {len(image)} bytes is shorter than its header")
    magic, hver, kind, major, minor, patch, _, length, _ = IMAGE_HEADER.unpack_from(image)
    if magic != IMAGE_MAGIC or hver != 1:
        raise FrameError("not a node firmware image (bad magic or header version)")
    if length != len(image):
        raise FrameError(f"image header says {length} bytes but the image has {len(image)}")
    return ImageHeader(kind, (major, minor, patch), length)


class OtaError(BridgeError):
    """The update did not take; ``outcome`` says how it ended (the node keeps running its old slot)."""

    def __init__(self, message: str, *, node: int, outcome: str) -> None:
        super().__init__(message)
        self.node = node
        self.outcome = outcome


@dataclass(frozen=True, slots=True)
class OtaReport:
    node: int
    outcome: str  # updated | rolled-back
    firmware_before: str
    firmware_after: str
    slot: int
    resumed_from: int
    size: int


Progress = Callable[[int, int], None]


async def query_ota(link: BridgeLink, node: int) -> OtaStatus:
    reply = await link.request(node, MsgType.OTA_STATUS, priority=Priority.OTA, deadline_s=5.0)
    return OtaStatus.parse(reply.payload)


async def abort_ota(link: BridgeLink, node: int) -> OtaStatus:
    reply = await link.request(node, MsgType.OTA_ABORT, priority=Priority.OTA, deadline_s=5.0)
    return OtaStatus.parse(reply.payload)


async def send_image(
    link: BridgeLink,
    node: int,
    image: bytes,
    slot: int,
    *,
    progress: Progress | None = None,
    stop_at: int | None = None,
) -> int:
    """Stream ``image`` into ``slot``, resuming at the node's offset; returns the offset it resumed from.

    ``stop_at`` ends the transfer early (as an interruption would), leaving the node receiving.
    """
    sha = hashlib.sha256(image).digest()
    st = await query_ota(link, node)
    if not (st.state == OtaState.RECEIVING and st.sha256 == sha and st.size == len(image) and st.slot == slot):
        reply = await link.request(
            node, MsgType.OTA_BEGIN, OtaBegin(len(image), slot, sha).pack(), priority=Priority.OTA, deadline_s=5.0
        )
        st = OtaStatus.parse(reply.payload)
    resumed_from = offset = st.offset
    end = len(image) if stop_at is None else min(len(image), stop_at)
    stalls = 0
    while offset < end:
        data = image[offset : offset + CHUNK_SIZE]
        try:
            reply = await link.request(
                node, MsgType.OTA_CHUNK, OtaChunk(offset, data).pack(), priority=Priority.OTA, deadline_s=5.0
            )
            new = OtaProgress.parse(reply.payload).offset
        except NodeNackError as exc:
            if exc.code != NackCode.OTA_OFFSET:
                raise
            new = (await query_ota(link, node)).offset
        stalls = stalls + 1 if new <= offset else 0
        if stalls > 3 or new > len(image):
            raise OtaError(f"node {node}: OTA offset stuck at {offset}", node=node, outcome="stalled")
        offset = new
        if progress is not None:
            progress(offset, len(image))
    return resumed_from


async def update_firmware(
    link: BridgeLink,
    node: int,
    image: bytes,
    *,
    progress: Progress | None = None,
    hello_deadline_s: float = TRIAL_DEADLINE_S + 10.0,
    hello_poll_s: float = 0.5,
) -> OtaReport:
    """Update ``node`` to ``image``: resume or begin, stream, commit, then wait for the new slot's HELLO.

    Returns a report with outcome ``updated`` or ``rolled-back`` (the new firmware never
    answered and the node went back to the old slot). Raises OtaError when the node rejects the
    image at commit (hash mismatch): the old slot then stays active and nothing reboots.
    """
    parse_image_header(image)
    before = await link.hello(node, priority=Priority.OTA)
    target = 1 - before.active_slot
    resumed_from = await send_image(link, node, image, target, progress=progress)
    try:
        await link.request(node, MsgType.OTA_COMMIT, priority=Priority.OTA, deadline_s=10.0)
    except NodeNackError as exc:
        if exc.code == NackCode.HASH_MISMATCH:
            raise OtaError(
                f"node {node}: image hash did not verify; old slot kept", node=node, outcome="hash-mismatch"
            ) from exc
        raise
    loop = asyncio.get_running_loop()
    give_up = loop.time() + hello_deadline_s
    while loop.time() < give_up:
        await asyncio.sleep(hello_poll_s)
        try:
            after = await link.hello(node, priority=Priority.OTA, deadline_s=hello_poll_s)
        except BridgeError:
            continue
        if after.boot_id == before.boot_id:
            continue  # not rebooted yet
        if after.active_slot == target:
            outcome = "updated"
        elif after.ota_result == OtaResult.ROLLED_BACK_NO_HELLO:
            outcome = "rolled-back"
        else:
            raise OtaError(
                f"node {node}: came back on slot {after.active_slot}, result {after.ota_result}",
                node=node,
                outcome="unknown",
            )
        return OtaReport(node, outcome, before.firmware, after.firmware, after.active_slot, resumed_from, len(image))
    raise OtaError(f"node {node}: silent for {hello_deadline_s:.0f} s after commit", node=node, outcome="silent")
