"""OTA over the simulated line: a full 256 KiB update, resume after interruption, both rollbacks."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Awaitable, Callable

import pytest

from drivers.errors import FrameError, NodeTimeoutError
from firmware_bridge import BridgeLink, OtaError, build_image, update_firmware
from firmware_bridge.messages import HardwareKind, MsgType, NodeNackError, OtaBegin, OtaChunk, OtaResult, OtaState
from firmware_bridge.ota import query_ota, send_image
from simulator.clock import run_virtual
from simulator.nodes import HANG_MARKER, SimNode
from simulator.nodes_line import FrameFault, LineFaults, SimLine


def image(version: tuple[int, int, int], size: int = 256 * 1024, kind: int = HardwareKind.DESK_CLUSTER) -> bytes:
    body = random.Random(size).randbytes(size - 16)
    return build_image(kind, version, body)


def run(scenario: Callable[[BridgeLink], Awaitable[None]], node: SimNode, faults: LineFaults | None = None) -> None:
    async def main() -> None:
        line = SimLine([node], faults=faults, seed=3)
        async with line.on_memory_line(460800) as memory, BridgeLink(memory.master, baud=460800) as link:
            await scenario(link)

    run_virtual(main())


def test_update_256_kib_image_on_noisy_line() -> None:
    node = SimNode(5, trial_deadline_s=30)
    new = image((1, 1, 0))
    seen: list[int] = []

    async def scenario(link: BridgeLink) -> None:
        report = await update_firmware(link, 5, new, progress=lambda done, total: seen.append(done))
        assert (report.outcome, report.firmware_before, report.firmware_after) == ("updated", "1.0.0", "1.1.0")
        assert report.slot == 1 and report.resumed_from == 0
        # still on the new slot well after the trial deadline: the hello confirmed it
        await asyncio.sleep(40)
        info = await link.hello(5)
        assert (info.active_slot, info.ota_result, info.firmware) == (1, OtaResult.CONFIRMED, "1.1.0")

    run(scenario, node, LineFaults(byte_error_rate=0.001))
    assert node.slots[1] == new and hashlib.sha256(node.slots[1]).digest() == hashlib.sha256(new).digest()
    assert seen[-1] == len(new) and seen == sorted(seen)


def test_interrupted_update_resumes_from_node_offset() -> None:
    node = SimNode(6)
    new = image((2, 0, 0))

    async def scenario(link: BridgeLink) -> None:
        await send_image(link, 6, new, 1, stop_at=100_000)
        st = await query_ota(link, 6)
        assert st.state == OtaState.RECEIVING and 100_000 <= st.offset < len(new)
        sent_before = link.stats.frames_sent
        report = await update_firmware(link, 6, new)
        assert report.outcome == "updated" and report.resumed_from == st.offset
        chunks = link.stats.frames_sent - sent_before
        assert chunks < (len(new) - st.offset) // 256 + 30  # the first 100 kB were not sent again

    run(scenario, node)
    assert node.slots[1] == new


def test_hash_mismatch_keeps_the_old_slot() -> None:
    node = SimNode(7)
    good = image((3, 0, 0), 16 * 1024)
    corrupt = bytearray(good)
    corrupt[5000] ^= 0xFF

    async def scenario(link: BridgeLink) -> None:
        sha = hashlib.sha256(good).digest()
        await link.request(7, MsgType.OTA_BEGIN, OtaBegin(len(good), 1, sha).pack())
        for off in range(0, len(corrupt), 256):
            await link.request(7, MsgType.OTA_CHUNK, OtaChunk(off, bytes(corrupt[off : off + 256])).pack())
        with pytest.raises(NodeNackError, match="HASH_MISMATCH"):
            await link.request(7, MsgType.OTA_COMMIT)
        info = await link.hello(7)
        assert (info.active_slot, info.firmware, info.ota_result) == (0, "1.0.0", OtaResult.HASH_MISMATCH)

    run(scenario, node)
    assert node.slots[1] is None


def test_update_that_hashes_wrong_raises_ota_error() -> None:
    """update_firmware sends the right hash; a node whose flash corrupts the data refuses at commit."""
    node = SimNode(8)
    new = image((3, 1, 0), 8 * 1024)
    original = node.flash.handle

    def flaky_flash(mtype: int, p: bytes, now: float, busy: bool) -> bytes:
        if mtype == MsgType.OTA_CHUNK and len(p) > 10:
            p = p[:10] + bytes([p[10] ^ 0x01]) + p[11:]
        return original(mtype, p, now, busy)

    node.flash.handle = flaky_flash  # type: ignore[method-assign]

    async def scenario(link: BridgeLink) -> None:
        with pytest.raises(OtaError) as err:
            await update_firmware(link, 8, new)
        assert err.value.outcome == "hash-mismatch"
        assert (await link.hello(8)).active_slot == 0

    run(scenario, node)


def test_image_that_never_says_hello_rolls_back() -> None:
    node = SimNode(9, trial_deadline_s=10)
    hangs = build_image(HardwareKind.DESK_CLUSTER, (6, 6, 6), HANG_MARKER + bytes(4096))  # starts, never talks

    async def scenario(link: BridgeLink) -> None:
        await link.request(9, MsgType.OTA_BEGIN, OtaBegin(len(hangs), 1, hashlib.sha256(hangs).digest()).pack())
        await asyncio.sleep(0.5)  # the slot is erased
        for off in range(0, len(hangs), 256):
            await link.request(9, MsgType.OTA_CHUNK, OtaChunk(off, hangs[off : off + 256]).pack())
        await link.request(9, MsgType.OTA_COMMIT)
        await asyncio.sleep(5)
        with pytest.raises(NodeTimeoutError):
            await link.hello(9, deadline_s=0.5)
        await asyncio.sleep(6)
        info = await link.hello(9)
        assert (info.active_slot, info.firmware, info.ota_result) == (0, "1.0.0", OtaResult.ROLLED_BACK)
        assert (await link.status(9)).reset_cause == 4  # rollback

    run(scenario, node)


def test_update_reports_rollback_of_an_image_that_hangs() -> None:
    node = SimNode(10, trial_deadline_s=5)
    hangs = build_image(HardwareKind.DESK_CLUSTER, (9, 9, 9), HANG_MARKER + bytes(4000))

    async def scenario(link: BridgeLink) -> None:
        report = await update_firmware(link, 10, hangs, hello_deadline_s=20)
        assert (report.outcome, report.slot, report.firmware_after) == ("rolled-back", 0, "1.0.0")

    run(scenario, node)


@pytest.mark.parametrize(
    ("kind", "hw", "node_hw", "revision", "outcome"),
    [
        (HardwareKind.DIMMER, 0, 1, 2, "wrong-kind"),  # built for a dimmer; the node's HELLO says desk cluster
        (HardwareKind.DESK_CLUSTER, 2, 1, 2, "wrong-hardware"),  # built for hardware revision 2
        (HardwareKind.DESK_CLUSTER, 2, 2, 1, "wrong-hardware"),  # a revision-1 node cannot say which it is
    ],
)
def test_image_that_does_not_match_the_nodes_hello_is_refused_before_sending(
    kind: int, hw: int, node_hw: int, revision: int, outcome: str
) -> None:
    node = SimNode(12, hw_revision=node_hw, revision=revision)
    other = build_image(kind, (4, 0, 0), bytes(4000), hw_revision=hw)

    async def scenario(link: BridgeLink) -> None:
        with pytest.raises(OtaError) as refused:
            await update_firmware(link, 12, other)
        assert refused.value.outcome == outcome
        assert "nothing was sent" in str(refused.value)

    run(scenario, node)
    assert node.ota.state == OtaState.IDLE and node.ota.size == 0 and node.active_slot == 0


def test_image_for_the_nodes_hardware_revision_is_accepted() -> None:
    node = SimNode(13, hw_revision=2)
    new = build_image(HardwareKind.DESK_CLUSTER, (2, 1, 0), bytes(6000), hw_revision=2)

    async def scenario(link: BridgeLink) -> None:
        assert (await update_firmware(link, 13, new)).outcome == "updated"

    run(scenario, node)


@pytest.mark.parametrize("lost", ["reply", "request"])
def test_a_lost_commit_is_recovered_and_the_trial_confirmed(lost: str) -> None:
    node = SimNode(14, trial_deadline_s=30)
    new = image((1, 3, 0), 20 * 1024)
    faults = LineFaults(script=[FrameFault(lost, "drop", node=14, type=MsgType.OTA_COMMIT)])  # type: ignore[arg-type]

    async def scenario(link: BridgeLink) -> None:
        report = await update_firmware(link, 14, new)
        assert (report.outcome, report.slot, report.firmware_after) == ("updated", 1, "1.3.0")
        await asyncio.sleep(40)  # well past the trial deadline: still on the new slot
        info = await link.hello(14)
        assert (info.active_slot, info.ota_result) == (1, OtaResult.CONFIRMED)

    run(scenario, node, faults)


def test_update_on_a_line_that_drops_damages_duplicates_and_delays_frames() -> None:
    node = SimNode(15, trial_deadline_s=30)
    new = image((1, 5, 0), 64 * 1024)
    faults = LineFaults(frame_drop_rate=0.05, frame_damage_rate=0.05, frame_duplicate_rate=0.05,
                        frame_delay_rate=0.05, late_s=0.01)  # fmt: skip

    async def scenario(link: BridgeLink) -> None:
        report = await update_firmware(link, 15, new)
        assert report.outcome == "updated"

    run(scenario, node, faults)
    assert node.slots[1] == new and node.ota.result == OtaResult.CONFIRMED


def test_bad_image_header_is_refused_before_sending() -> None:
    async def scenario(link: BridgeLink) -> None:
        with pytest.raises(FrameError, match="not a node firmware image"):
            await update_firmware(link, 11, b"hello world, not an image")
        assert link.stats.frames_sent == 0

    run(scenario, SimNode(11))
