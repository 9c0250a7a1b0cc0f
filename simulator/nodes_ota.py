"""A simulated node's flash: two application slots, the boot loader's record, the OTA receiver.

What PROTOCOL.md section 5.8 asks of a node, as a state machine the node (:mod:`simulator.nodes`)
drives: BEGIN starts erasing the target slot in the background, one 4 KiB sector after another
(``sector_erase_s`` each, as a serial NOR flash does), so a CHUNK that lands in a sector not
erased yet is answered BUSY and retried by the gateway; COMMIT checks the SHA-256 and hands the
new slot to the boot loader, which checks the image header before it starts a trial.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from drivers.errors import FrameError
from firmware_bridge.messages import (
    MsgType,
    NackCode,
    OtaBegin,
    OtaChunk,
    OtaProgress,
    OtaResult,
    OtaState,
    OtaStatus,
)
from firmware_bridge.ota import CHUNK_SIZE, IMAGE_HEADER, build_image, parse_image_header

SLOT_SIZE = 1024 * 1024  # one application slot of a 2 MiB flash (the rest: boot loader, settings)
SECTOR = 4096  # erase granularity of a serial NOR flash
SECTOR_ERASE_S = 0.03  # typical 4 KiB sector erase time of such a part
HANG_MARKER = b"HANG"  # an image whose body starts with this boots but never talks (firmware that hangs)


class Refusal(Exception):
    """Answer with a NACK carrying ``code`` and ``detail``."""

    def __init__(self, code: NackCode, detail: int = 0) -> None:
        super().__init__(code.name)
        self.code = code
        self.detail = detail & 0xFF


@dataclass(slots=True)
class Transfer:
    """The OTA receiver's state. ``slot`` is the target; ``erase_t0`` when erasing began."""

    state: OtaState = OtaState.IDLE
    slot: int = 0
    size: int = 0
    sha256: bytes = bytes(32)
    data: bytearray = field(default_factory=bytearray)
    result: OtaResult = OtaResult.NONE
    erase_t0: float = 0.0


class NodeFlash:
    """Slots A and B, which one runs, and the transfer into the other one."""

    def __init__(
        self, kind: int, firmware: tuple[int, int, int], *, hw_revision: int = 1, sector_erase_s: float = SECTOR_ERASE_S
    ) -> None:
        self.kind = kind
        self.hw_revision = hw_revision
        self.sector_erase_s = sector_erase_s
        self.slots: list[bytes | None] = [build_image(kind, firmware, b"\x00" * 64), None]
        self.active_slot = 0
        self.ota = Transfer()
        self.trial_from: int | None = None  # the slot to go back to while the active one is on trial

    # ---- the boot loader -------------------------------------------------------------------
    def reset_into_new_slot(self) -> bool:
        """After a commit: start the new slot on trial if its header is valid for this hardware,
        else stay on the old slot (result ROLLED_BACK). Returns whether a trial started."""
        target = self.ota.slot
        try:
            header = parse_image_header(self.slots[target] or b"")
            valid = header.kind == self.kind and header.hw_revision in (0, self.hw_revision)
        except FrameError:
            valid = False
        if not valid:
            self.ota = Transfer(result=OtaResult.ROLLED_BACK)
            return False
        self.trial_from, self.active_slot = self.active_slot, target
        self.ota.state = OtaState.TRIAL
        return True

    def roll_back(self) -> None:
        """The trial deadline passed without a HELLO answered: the boot loader starts the old slot."""
        assert self.trial_from is not None
        self.active_slot, self.trial_from = self.trial_from, None
        self.ota = Transfer(result=OtaResult.ROLLED_BACK)

    def confirm(self) -> None:
        """The first HELLO answered by a trial firmware keeps it."""
        if self.ota.state == OtaState.TRIAL:
            self.trial_from = None
            self.ota = Transfer(result=OtaResult.CONFIRMED)

    def running(self) -> tuple[bool, tuple[int, int, int]]:
        """Whether the active slot's firmware talks on the line, and its version."""
        image = self.slots[self.active_slot] or b""
        header = parse_image_header(image)
        return not image[IMAGE_HEADER.size :].startswith(HANG_MARKER), header.version

    # ---- the OTA requests ------------------------------------------------------------------
    def status(self) -> OtaStatus:
        o = self.ota
        if o.state == OtaState.IDLE:  # where the next BEGIN must go; nothing received
            return OtaStatus(o.state, 1 - self.active_slot, self.active_slot, o.result, 0, 0, bytes(32))
        return OtaStatus(o.state, o.slot, self.active_slot, o.result, o.size, len(o.data), o.sha256)

    def handle(self, mtype: int, p: bytes, now: float, busy: bool) -> bytes:
        """One OTA request, checked in PROTOCOL.md's order; raises Refusal for a NACK."""
        if mtype == MsgType.OTA_BEGIN:
            return self._begin(p, now, busy)
        if mtype == MsgType.OTA_CHUNK:
            return self._chunk(p, now, busy)
        if p:
            raise Refusal(NackCode.BAD_LENGTH)
        o = self.ota
        if mtype == MsgType.OTA_COMMIT:
            if o.state != OtaState.RECEIVING or len(o.data) != o.size:
                raise Refusal(NackCode.OTA_STATE)
            if busy:
                raise Refusal(NackCode.BUSY)
            if hashlib.sha256(o.data).digest() != o.sha256:
                self.ota = Transfer(result=OtaResult.HASH_MISMATCH)
                raise Refusal(NackCode.HASH_MISMATCH)
            self.slots[o.slot] = bytes(o.data)
            o.state = OtaState.REBOOTING
        elif mtype == MsgType.OTA_ABORT and o.state == OtaState.RECEIVING:
            if busy:
                raise Refusal(NackCode.BUSY)
            self.ota = Transfer(result=OtaResult.ABORTED)
        return self.status().pack()

    def _begin(self, p: bytes, now: float, busy: bool) -> bytes:
        if len(p) != OtaBegin.FORMAT.size:
            raise Refusal(NackCode.BAD_LENGTH)
        size, slot, sha = OtaBegin.FORMAT.unpack(p)
        if slot > 1 or not IMAGE_HEADER.size <= size <= SLOT_SIZE:
            raise Refusal(NackCode.BAD_VALUE)
        o = self.ota
        if slot == self.active_slot or o.state in (OtaState.REBOOTING, OtaState.TRIAL):
            raise Refusal(NackCode.OTA_STATE)
        if busy:
            raise Refusal(NackCode.BUSY)
        if not (o.state == OtaState.RECEIVING and (o.size, o.slot, o.sha256) == (size, slot, sha)):
            self.ota = Transfer(OtaState.RECEIVING, slot, size, sha, result=o.result, erase_t0=now)
        return self.status().pack()

    def _chunk(self, p: bytes, now: float, busy: bool) -> bytes:
        if not 5 <= len(p) <= 4 + CHUNK_SIZE:
            raise Refusal(NackCode.BAD_LENGTH)
        chunk = OtaChunk.parse(p)
        o = self.ota
        if o.state != OtaState.RECEIVING:
            raise Refusal(NackCode.OTA_STATE)
        end = chunk.offset + len(chunk.data)
        if chunk.offset > len(o.data) or end > o.size:
            raise Refusal(NackCode.OTA_OFFSET)
        erased_at = o.erase_t0 + ((end - 1) // SECTOR + 1) * self.sector_erase_s
        if chunk.offset == len(o.data) and (busy or now < erased_at):  # still erasing the sector it lands in
            raise Refusal(NackCode.BUSY)
        if chunk.offset == len(o.data):
            o.data += chunk.data
        return OtaProgress(len(o.data)).pack()
