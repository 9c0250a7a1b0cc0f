"""Over-the-air firmware update of a node (PROTOCOL.md, "OTA").

The node keeps two flash slots (A/B). The gateway first checks the image against the node's
HELLO (hardware kind and revision: an image for other hardware is refused before a byte is
sent), streams it into the inactive slot, resuming from whatever offset the node reports (a
power cut or a closed laptop mid-update costs nothing), then asks the node to commit. The node
verifies the SHA-256 itself and boots the new slot *on trial*: if the new firmware does not
answer HELLO within the trial deadline, the boot loader goes back to the old slot. So the update
can fail, but it cannot brick a node.

A lost COMMIT (request or reply) is not a failure: the gateway polls HELLO, which tells whether
the node reset into the new slot (and confirms the trial) or never got the commit (it is asked
again). Every way an update can end other than ``updated`` is an :class:`OtaError` or a
``rolled-back`` report, so a caller never mistakes a failure for success.

Images start with a 16-byte :class:`ImageHeader` that the boot loader checks before jumping.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass

from drivers.errors import BridgeError, FrameError

from .link import BridgeLink, Priority
from .messages import (
    HardwareKind,
    HelloInfo,
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
IMAGE_HEADER = struct.Struct("<4sBBBBBBIH")  # magic, header version, kind, major, minor, patch, hw, length, 0
CHUNK_SIZE = 256
TRIAL_DEADLINE_S = 30.0  # the node's boot loader rolls back if no HELLO is answered by then


@dataclass(frozen=True, slots=True)
class ImageHeader:
    kind: int
    version: tuple[int, int, int]
    length: int
    hw_revision: int = 0  # 0: runs on every hardware revision of its kind

    @property
    def firmware(self) -> str:
        return ".".join(map(str, self.version))


def build_image(kind: int, version: tuple[int, int, int], body: bytes, *, hw_revision: int = 0) -> bytes:
    """Prefix ``body`` with the header a node's boot loader expects (used by the build and the simulator)."""
    length = IMAGE_HEADER.size + len(body)
    return IMAGE_HEADER.pack(IMAGE_MAGIC, 1, kind, *version, hw_revision, length, 0) + body


def parse_image_header(image: bytes) -> ImageHeader:
    """Read and check an image's header; FrameError if it is not a node image."""
    if len(image) < IMAGE_HEADER.size:
        raise FrameError(f"image of {len(image)} bytes is shorter than its header")
    magic, hver, kind, major, minor, patch, hw, length, _ = IMAGE_HEADER.unpack_from(image)
    if magic != IMAGE_MAGIC or hver != 1:
        raise FrameError("not a node firmware image (bad magic or header version)")
    if length != len(image):
        raise FrameError(f"image header says {length} bytes but the image has {len(image)}")
    return ImageHeader(kind, (major, minor, patch), length, hw)


def kind_name(kind: int) -> str:
    """``desk cluster``, ``dimmer``, ... (a number the protocol does not know is shown as such)."""
    if kind not in HardwareKind._value2member_map_:
        return f"kind {kind}"
    return HardwareKind(kind).name.lower().replace("_", " ")


def check_image(node: int, header: ImageHeader, hello: HelloInfo) -> None:
    """Refuse an image the node's HELLO says is not for it (kind, hardware revision)."""
    if header.kind != hello.kind:
        raise OtaError(f"node {node} is a {kind_name(hello.kind)} (its HELLO says so), but the image is built for a "
                       f"{kind_name(header.kind)}; nothing was sent", node=node, outcome="wrong-kind")  # fmt: skip
    if header.hw_revision and hello.revision < 2:
        raise OtaError(f"the image is built for hardware revision {header.hw_revision} only, and node {node} does not "
                       "report its hardware revision (its firmware follows protocol revision 1); nothing was sent",
                       node=node, outcome="wrong-hardware")  # fmt: skip
    if header.hw_revision and header.hw_revision != hello.hw_revision:
        raise OtaError(f"the image is built for hardware revision {header.hw_revision}, node {node} is revision "
                       f"{hello.hw_revision} (its HELLO says so); nothing was sent", node=node,
                       outcome="wrong-hardware")  # fmt: skip


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
    """Update ``node`` to ``image``: check it against HELLO, resume or begin, stream, commit, then
    wait for the node to come back and confirm the new slot with HELLO.

    Returns a report with outcome ``updated`` or ``rolled-back`` (the new firmware did not take
    and the node went back to the old slot). Raises OtaError when the image is not for this node
    (nothing is sent), when the node rejects it at commit (hash mismatch: the old slot stays
    active and nothing reboots), or when the node does not come back in time.
    """
    header = parse_image_header(image)
    before = await link.hello(node, priority=Priority.OTA)
    check_image(node, header, before)
    target = 1 - before.active_slot
    resumed_from = await send_image(link, node, image, target, progress=progress)
    await _commit(link, node)
    after = await _come_back(link, node, image, before, hello_deadline_s, hello_poll_s)
    if after.active_slot == target and after.ota_result == OtaResult.CONFIRMED and after.firmware == header.firmware:
        outcome = "updated"
    elif after.active_slot == before.active_slot and after.ota_result == OtaResult.ROLLED_BACK:
        outcome = "rolled-back"
    else:
        raise OtaError(
            f"node {node}: came back on slot {'AB'[after.active_slot]} with firmware {after.firmware}, "
            f"result {after.ota_result}; expected {header.firmware} on slot {'AB'[target]}",
            node=node,
            outcome="unknown",
        )
    return OtaReport(node, outcome, before.firmware, after.firmware, after.active_slot, resumed_from, len(image))


async def _commit(link: BridgeLink, node: int) -> None:
    """Ask the node to check the hash and reset into the new slot. A lost reply is not an error:
    the node may have reset already (a retry then finds it on trial: OTA_STATE); HELLO will tell."""
    try:
        await link.request(node, MsgType.OTA_COMMIT, priority=Priority.OTA, deadline_s=3.0, retries=1)
    except NodeNackError as exc:
        if exc.code == NackCode.HASH_MISMATCH:
            raise OtaError(
                f"node {node}: image hash did not verify; old slot kept", node=node, outcome="hash-mismatch"
            ) from exc
        if exc.code != NackCode.OTA_STATE:
            raise
    except BridgeError:
        pass


async def _come_back(
    link: BridgeLink, node: int, image: bytes, before: HelloInfo, deadline_s: float, poll_s: float
) -> HelloInfo:
    """Poll HELLO until the node answers with a new boot id (its first HELLO confirms a trial).

    The same boot id means it has not reset: still resetting, or the commit never reached it, in
    which case it is still receiving with the whole image and is asked to commit again.
    """
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline_s
    while loop.time() < give_up:
        await asyncio.sleep(poll_s)
        try:
            after = await link.hello(node, priority=Priority.OTA, deadline_s=poll_s)
        except BridgeError:
            if link.closed:
                raise
            continue
        if after.boot_id != before.boot_id:
            return after
        if after.ota_state == OtaState.IDLE and after.ota_result == OtaResult.HASH_MISMATCH:
            raise OtaError(f"node {node}: image hash did not verify; old slot kept", node=node, outcome="hash-mismatch")
        if after.ota_state == OtaState.RECEIVING:
            with contextlib.suppress(BridgeError):
                st = await query_ota(link, node)
                if st.offset == st.size == len(image):
                    await _commit(link, node)
    raise OtaError(f"node {node}: silent for {deadline_s:.0f} s after commit", node=node, outcome="silent")
