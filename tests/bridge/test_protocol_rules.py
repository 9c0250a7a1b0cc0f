"""PROTOCOL.md's rules where a firmware author used to have to guess, checked on the simulated node
(byte level) and, where the gateway takes part, on the line."""

from __future__ import annotations

import asyncio
import hashlib
import struct

import pytest

from firmware_bridge import BridgeLink, NodeEvent, build_image
from firmware_bridge.codec import (
    FLAG_DUPLICATE,
    FLAG_EVENTS_PENDING,
    FLAG_NACK,
    FLAG_REPLY,
    Frame,
    decode_frame,
    encode_frame,
)
from firmware_bridge.messages import (
    EventsRequest,
    HardwareKind,
    HelloInfo,
    MsgType,
    Nack,
    NackCode,
    OtaBegin,
    OtaChunk,
    OtaResult,
    OtaState,
    OtaStatus,
    OutputFunction,
    OutputState,
    SetOutput,
    parse_events,
    parse_hello,
)
from simulator.nodes import BOOT_S, SimNode
from simulator.nodes_line import SimLine

from .harness import on_line

ALL_CHANNELS = 0xFF


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def ask(node: SimNode, mtype: int, payload: bytes = b"", seq: int = 1, dst: int | None = None) -> Frame | None:
    out = node.receive(encode_frame(Frame(node.address if dst is None else dst, 0, seq, mtype, 0, payload))[:-1])
    return None if out is None else decode_frame(out[:-1])


def nack_of(reply: Frame | None) -> tuple[int, int]:
    assert reply is not None and reply.flags & FLAG_NACK, reply
    nack = Nack.parse(reply.payload)
    return nack.code, nack.detail


# ---- NACK codes and which one wins ----------------------------------------------------------------


def test_unknown_or_missing_function_is_unsupported_with_the_function_as_detail() -> None:
    dimmer = SimNode(101, "dimmer", clock=Clock())
    assert nack_of(ask(dimmer, MsgType.SET_OUTPUT, SetOutput(0, 9, 0).pack())) == (NackCode.UNSUPPORTED, 9)
    assert nack_of(ask(dimmer, MsgType.GET_OUTPUT, bytes([0, 0]), seq=2)) == (NackCode.UNSUPPORTED, 0)
    assert nack_of(ask(dimmer, MsgType.SET_OUTPUT, SetOutput(0, 5, 0).pack(), seq=3)) == (NackCode.UNSUPPORTED, 5)


@pytest.mark.parametrize(
    ("size", "slot", "code"),
    [(0, 1, NackCode.BAD_VALUE), (15, 1, NackCode.BAD_VALUE), (2 * 1024 * 1024, 1, NackCode.BAD_VALUE),
     (4096, 2, NackCode.BAD_VALUE), (4096, 0, NackCode.OTA_STATE)],
)  # fmt: skip
def test_invalid_ota_begin_is_refused_with_its_code(size: int, slot: int, code: NackCode) -> None:
    node = SimNode(5, clock=Clock())
    assert nack_of(ask(node, MsgType.OTA_BEGIN, struct.pack("<IB32s", size, slot, bytes(32))))[0] == code
    assert node.ota.state == OtaState.IDLE


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (bytes([9, 1, 0, 0, 0]), NackCode.BAD_LENGTH),  # short payload, and channel 9 too
        (SetOutput(9, OutputFunction.LAMP, 5000).pack(), NackCode.UNSUPPORTED),  # no lamps on a dimmer
        (SetOutput(9, OutputFunction.LEVEL, 5000).pack(), NackCode.NO_SUCH_CHANNEL),  # and the value is bad
        (SetOutput(1, OutputFunction.LEVEL, 5000).pack(), NackCode.BAD_VALUE),  # and the node is busy
    ],
)
def test_the_first_failing_check_in_the_documented_order_answers(payload: bytes, code: NackCode) -> None:
    clock = Clock()
    dimmer = SimNode(101, "dimmer", clock=clock)
    dimmer.busy_until = clock.t + 10
    assert nack_of(ask(dimmer, MsgType.SET_OUTPUT, payload))[0] == code
    assert nack_of(ask(dimmer, 0x6E, b"\x01\x02\x03", seq=2))[0] == NackCode.UNKNOWN_TYPE
    assert dimmer.applied == []


def test_busy_is_not_kept_in_the_duplicate_cache() -> None:
    clock = Clock()
    node = SimNode(5, clock=clock)
    node.busy_until = clock.t + 0.5
    request = SetOutput(0, OutputFunction.LAMP, 300).pack()
    assert nack_of(ask(node, MsgType.SET_OUTPUT, request, seq=7))[0] == NackCode.BUSY
    clock.t += 1.0
    again = ask(node, MsgType.SET_OUTPUT, request, seq=7)  # the identical frame, re-sent
    assert again is not None and again.flags == FLAG_REPLY  # executed now, not a repeated BUSY
    assert OutputState.parse(again.payload).target == 300 and len(node.applied) == 1


# ---- duplicates -------------------------------------------------------------------------------------


def test_a_repeated_reply_carries_the_current_events_pending_flag() -> None:
    node = SimNode(5, clock=Clock())
    request = SetOutput(0, OutputFunction.LAMP, 300).pack()
    first = ask(node, MsgType.SET_OUTPUT, request, seq=9)
    assert first is not None and first.flags == FLAG_REPLY
    node.press_button(1)
    repeat = ask(node, MsgType.SET_OUTPUT, request, seq=9)
    assert repeat is not None and repeat.flags == FLAG_REPLY | FLAG_DUPLICATE | FLAG_EVENTS_PENDING
    assert repeat.payload == first.payload and len(node.applied) == 1


# ---- HELLO and protocol revisions ---------------------------------------------------------------


def test_hello_revisions() -> None:
    new, old = SimNode(5, clock=Clock(), hw_revision=3), SimNode(6, clock=Clock(), revision=1)
    plain = ask(new, MsgType.HELLO)
    assert plain is not None and len(plain.payload) == 12  # what a revision-1 gateway expects
    extended = ask(new, MsgType.HELLO, b"\x02", seq=2)
    assert extended is not None and len(extended.payload) == 16
    info = parse_hello(extended.payload)
    assert (info.revision, info.hw_revision, info.kind) == (2, 3, HardwareKind.DESK_CLUSTER)
    assert parse_hello(plain.payload).revision == 1
    later = ask(new, MsgType.HELLO, b"\x07\xaa\xbb", seq=3)  # a later gateway: the node answers its own revision
    assert later is not None and parse_hello(later.payload).revision == 2
    assert nack_of(ask(old, MsgType.HELLO, b"\x02")) == (NackCode.BAD_LENGTH, 0)
    assert len(HelloInfo.parse(ask(old, MsgType.HELLO, seq=2).payload).pack()) == 12  # type: ignore[union-attr]


def test_the_gateway_identifies_nodes_of_both_revisions() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        new, old = await link.hello(5), await link.hello(6)
        assert (new.revision, new.hw_revision) == (2, 2)
        assert (old.revision, old.hw_revision) == (1, 0)
        assert (link.registry.nodes[5].revision, link.registry.nodes[6].revision) == (2, 1)
        assert link.registry.nodes[6].nacks == 0  # the fall-back is not a refusal to report

    on_line(scenario, [SimNode(5, hw_revision=2), SimNode(6, revision=1)])


# ---- OTA states and results ---------------------------------------------------------------------


def test_ota_status_when_idle_names_the_slot_a_begin_must_use() -> None:
    node = SimNode(5, clock=Clock())
    reply = ask(node, MsgType.OTA_STATUS)
    assert reply is not None
    st = OtaStatus.parse(reply.payload)
    assert (st.state, st.slot, st.active_slot, st.size, st.offset, st.sha256) == (0, 1, 0, 0, 0, bytes(32))


def _stream(node: SimNode, image: bytes) -> int:
    seq = 10
    assert ask(node, MsgType.OTA_BEGIN, OtaBegin(len(image), 1, hashlib.sha256(image).digest()).pack(), seq) is not None
    node.clock.t += 1.0  # type: ignore[attr-defined]  # erase done
    for off in range(0, len(image), 256):
        seq += 1
        reply = ask(node, MsgType.OTA_CHUNK, OtaChunk(off, image[off : off + 256]).pack(), seq)
        assert reply is not None and not reply.flags & FLAG_NACK
    return seq


def test_chunks_past_the_image_or_ahead_of_it_are_refused_and_retries_write_nothing() -> None:
    node = SimNode(5, clock=Clock())
    image = build_image(HardwareKind.DESK_CLUSTER, (1, 1, 0), bytes(1000))  # 1016 bytes
    ask(node, MsgType.OTA_BEGIN, OtaBegin(len(image), 1, hashlib.sha256(image).digest()).pack())
    node.clock.t += 1.0  # type: ignore[attr-defined]
    for seq, off in enumerate((0, 256, 512), start=2):
        ok = ask(node, MsgType.OTA_CHUNK, OtaChunk(off, image[off : off + 256]).pack(), seq)
        assert ok is not None and struct.unpack("<I", ok.payload) == (off + 256,)
    again = ask(node, MsgType.OTA_CHUNK, OtaChunk(256, image[256:512]).pack(), 6)  # a retry under a new seq
    assert again is not None and struct.unpack("<I", again.payload) == (768,)
    assert nack_of(ask(node, MsgType.OTA_CHUNK, OtaChunk(1000, image[1000:]).pack(), 7))[0] == NackCode.OTA_OFFSET
    past_the_end = OtaChunk(768, image[768:] + bytes(8)).pack()  # 256 bytes where 248 are left
    assert nack_of(ask(node, MsgType.OTA_CHUNK, past_the_end, 8))[0] == NackCode.OTA_OFFSET
    assert len(node.ota.data) == 768


def test_hello_during_a_trial_confirms_it_and_reports_the_confirmed_state() -> None:
    clock = Clock()
    node = SimNode(5, clock=clock, trial_deadline_s=30)
    image = build_image(HardwareKind.DESK_CLUSTER, (1, 4, 0), bytes(3000))
    seq = _stream(node, image)
    commit = ask(node, MsgType.OTA_COMMIT, seq=seq + 1)
    assert commit is not None and OtaStatus.parse(commit.payload).state == OtaState.REBOOTING
    assert ask(node, MsgType.HELLO, seq=seq + 2) is None  # resetting: silent
    clock.t += 0.05 + BOOT_S + 0.01
    status = ask(node, MsgType.OTA_STATUS, seq=seq + 3)
    assert status is not None and OtaStatus.parse(status.payload).state == OtaState.TRIAL
    hello = ask(node, MsgType.HELLO, seq=seq + 4)
    assert hello is not None
    info = HelloInfo.parse(hello.payload)
    assert (info.active_slot, info.ota_state, info.ota_result, info.firmware) == (1, 0, OtaResult.CONFIRMED, "1.4.0")


def test_an_image_the_boot_loader_refuses_rolls_back_at_once() -> None:
    clock = Clock()
    node = SimNode(5, clock=clock, trial_deadline_s=30)
    wrong = build_image(HardwareKind.DIMMER, (9, 0, 0), bytes(3000))  # another kind's image
    seq = _stream(node, wrong)
    ask(node, MsgType.OTA_COMMIT, seq=seq + 1)
    clock.t += 0.05 + BOOT_S + 0.01  # no 30 s trial: the header is checked before jumping
    hello = ask(node, MsgType.HELLO, seq=seq + 2)
    assert hello is not None
    info = HelloInfo.parse(hello.payload)
    assert (info.active_slot, info.ota_state, info.ota_result, info.firmware) == (0, 0, OtaResult.ROLLED_BACK, "1.0.0")
    assert node.reset_cause == 4


# ---- sensor blocks, outputs, events -------------------------------------------------------------


def test_motion_events_queued_counts_starts_and_ends() -> None:
    node = SimNode(5, clock=Clock())
    node.motion(0)
    node.motion(0, active=False)
    node.press_button(1)
    reply = ask(node, MsgType.READ_SENSOR, b"\x00")
    assert reply is not None and reply.payload == bytes([0, 0, 0]) + struct.pack("<H", 2)


def test_block_directory_lists_the_nodes_blocks() -> None:
    new, old = SimNode(5, clock=Clock()), SimNode(6, clock=Clock(), revision=1)
    reply = ask(new, MsgType.READ_SENSOR, b"\xff")
    assert reply is not None and reply.payload == bytes([0xFF, 1, 0])
    assert nack_of(ask(old, MsgType.READ_SENSOR, b"\xff")) == (NackCode.BAD_VALUE, 0xFF)


def test_get_output_of_desk_stop_and_preset_reports_the_height() -> None:
    clock = Clock()
    node = SimNode(2, clock=clock)
    ask(node, MsgType.SET_OUTPUT, SetOutput(1, OutputFunction.DESK_PRESET, 1).pack())
    for fn in (OutputFunction.DESK_STOP, OutputFunction.DESK_PRESET, OutputFunction.DESK_MOVE):
        reply = ask(node, MsgType.GET_OUTPUT, bytes([1, fn]), seq=fn + 10)
        assert reply is not None
        st = OutputState.parse(reply.payload)
        assert (st.function, st.value, st.target, st.flags) == (fn, 720, 1100, 1)


def test_node_drops_events_up_to_the_ack_across_the_wrap() -> None:
    node = SimNode(5, clock=Clock())
    node._event_seq = 65533
    for _ in range(4):
        node.press_button(0)
    listed = ask(node, MsgType.EVENTS, EventsRequest(0, 16).pack())
    assert listed is not None and [e.seq for e in parse_events(listed.payload)] == [65534, 65535, 1, 2]
    after = ask(node, MsgType.EVENTS, EventsRequest(65535, 16).pack(), seq=2)
    assert after is not None and [e.seq for e in parse_events(after.payload)] == [1, 2]


@pytest.mark.parametrize("start", [40_000, 65_533])
def test_gateway_delivers_events_of_any_sequence_once(start: int) -> None:
    """A gateway that has seen nothing yet (ack 0) takes every event, whatever its number."""

    async def scenario(link: BridgeLink, line: SimLine) -> None:
        node = line.node(9)
        got: list[NodeEvent] = []
        link.add_listener(got.append)
        link.watch(9, 0.5)
        await asyncio.sleep(1.0)
        node._event_seq = start  # the node has been up a long time
        for _ in range(5):
            node.press_button(0)
            await asyncio.sleep(0.3)
        await asyncio.sleep(2.0)
        seqs = [e.seq for e in got if e.kind == "button"]
        assert seqs == [(start + i) % 0xFFFF + 1 for i in range(5)]
        assert node.events_pending == 0

    on_line(scenario, [SimNode(9)])


# ---- all channels at once ---------------------------------------------------------------------


def test_channel_255_sets_every_channel() -> None:
    clock = Clock()
    node = SimNode(5, clock=clock)
    for ch in range(4):
        node.indicators[ch] = 2
    assert ask(node, MsgType.SET_OUTPUT, SetOutput(ALL_CHANNELS, OutputFunction.INDICATOR, 0).pack(), dst=255) is None
    assert node.indicators == [0, 0, 0, 0]
    reply = ask(node, MsgType.SET_OUTPUT, SetOutput(ALL_CHANNELS, OutputFunction.LAMP, 400).pack(), seq=2)
    assert reply is not None
    assert OutputState.parse(reply.payload) == OutputState(ALL_CHANNELS, OutputFunction.LAMP, 400, 400, 0)
    assert [round(r.target) for r in node.lamps] == [400] * 4
    old = SimNode(6, clock=clock, revision=1)
    assert nack_of(ask(old, MsgType.SET_OUTPUT, SetOutput(ALL_CHANNELS, OutputFunction.LAMP, 1).pack())) == (
        NackCode.NO_SUCH_CHANNEL, ALL_CHANNELS)  # fmt: skip


def test_broadcast_all_indicators_off_reaches_nodes_of_both_revisions() -> None:
    async def scenario(link: BridgeLink, line: SimLine) -> None:
        for n in line.nodes:
            await link.hello(n.address)
            for ch in range(n.channels):
                await link.set_output(n.address, ch, OutputFunction.INDICATOR, 2)
        sent = link.stats.frames_sent
        await link.broadcast_output(OutputFunction.INDICATOR, 0)
        await asyncio.sleep(0.05)
        assert all(n.indicators == [0] * n.channels for n in line.nodes)
        assert link.stats.frames_sent - sent == 6  # one per channel: a revision-1 node is on the line
        line.nodes.pop()  # the old node is replaced
        link.registry.nodes.pop(7)
        await link.set_output(5, 1, OutputFunction.INDICATOR, 3)
        sent = link.stats.frames_sent
        await link.broadcast_output(OutputFunction.INDICATOR, 0)
        await asyncio.sleep(0.05)
        assert line.node(5).indicators == [0, 0, 0, 0] and link.stats.frames_sent - sent == 1
        await asyncio.sleep(2.0)
        assert line.node(5).indicators[1] == 0  # nothing queued before the broadcast undid it

    on_line(scenario, [SimNode(5), SimNode(6, "indicator", channels=6), SimNode(7, "indicator", revision=1)])
