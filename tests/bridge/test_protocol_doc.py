"""PROTOCOL.md's worked examples hold byte for byte: each one's fields, raw bytes and wire bytes
agree with the codec, and each request/reply pair is what the simulated node answers."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from firmware_bridge.codec import Frame, cobs_decode, decode_frame, encode_frame
from firmware_bridge.messages import MsgType, OutputFunction, SetOutput
from simulator.nodes import SimNode

PROTOCOL = Path(__file__).resolve().parents[2] / "firmware_bridge" / "PROTOCOL.md"


@dataclass(frozen=True)
class Example:
    title: str
    fields: dict[str, str]
    raw: bytes
    wire: bytes


def doc_examples() -> dict[str, Example]:
    """Every ``#### Example: TITLE`` block of PROTOCOL.md, by title."""
    found: dict[str, Example] = {}
    for section in PROTOCOL.read_text().split("#### Example: ")[1:]:
        title = section.splitlines()[0].strip()
        fields = re.search(r"^fields: (.+)$", section, re.M)
        raw = re.search(r"^raw: +([0-9a-f ]+)$", section, re.M)
        wire = re.search(r"^wire: ([0-9a-f ]+)$", section, re.M)
        assert fields and raw and wire, f"example {title!r} lacks a fields, raw or wire line"
        assert title not in found, f"two examples are titled {title!r}"
        found[title] = Example(title, dict(kv.split("=", 1) for kv in fields.group(1).split()),
                               bytes.fromhex(raw.group(1)), bytes.fromhex(wire.group(1)))  # fmt: skip
    return found


EXAMPLES = doc_examples()


def test_the_document_has_its_worked_examples() -> None:
    assert len(EXAMPLES) >= 25


@pytest.mark.parametrize("title", sorted(EXAMPLES))
def test_example_fields_raw_and_wire_agree_with_the_codec(title: str) -> None:
    ex = EXAMPLES[title]
    assert ex.wire.endswith(b"\x00") and 0 not in ex.wire[:-1]
    assert cobs_decode(ex.wire[:-1]) == ex.raw
    frame = decode_frame(ex.wire[:-1])
    f = ex.fields
    assert (frame.dst, frame.src, frame.seq) == (int(f["dst"]), int(f["src"]), int(f["seq"]))
    assert MsgType(frame.type).name == f["type"] and frame.flags == int(f["flags"], 16)
    assert frame.payload.hex() == f.get("payload", "")
    assert encode_frame(frame) == ex.wire


# ---- request/reply pairs, against the simulated node ----------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def answer(node: SimNode, request: str) -> bytes | None:
    return node.receive(EXAMPLES[request].wire[:-1])


def node(address: int, kind: str = "desk-cluster", **kw: object) -> SimNode:
    return SimNode(address, kind, clock=Clock(), **kw)  # type: ignore[arg-type]


def hello_node() -> SimNode:
    n = node(5, firmware=(1, 2, 0), hw_revision=2)
    n.boot_id = 0xBEEF
    return n


def busy_dimmer() -> SimNode:
    n = node(101, "dimmer")
    n.busy_until = 1e9
    return n


def desk_on_its_way() -> SimNode:
    n = node(2)
    preset = SetOutput(1, OutputFunction.DESK_PRESET, 1).pack()
    n.receive(encode_frame(Frame(2, 0, 60, MsgType.SET_OUTPUT, 0, preset))[:-1])
    n.clock.t += 5.0  # type: ignore[attr-defined]
    return n


def events_across_the_wrap() -> SimNode:
    n = node(5)
    n._event_seq = 65533
    for ch in range(4):
        n.press_button(ch)
    return n


def motion_seen() -> SimNode:
    n = node(5)
    n.motion(0)
    n.motion(0, active=False)
    return n


def load_cell_node() -> SimNode:
    """Section 6.3's desk node: revision 3, four platforms that read exactly (no dead load, noise or drift)."""
    n = node(9, revision=3, load_cells=True, firmware=(1, 3, 0), hw_revision=3)
    n.boot_id = 0x2A17
    for p in n.platforms:
        p.dead_load_g = p.zero_counts = p.noise_counts = p.drift_g_per_sqrt_h = p.creep_fraction = 0.0
        p.counts_per_gram, p.powered_at = 10.0, 0.0
    return n


def four_desks() -> SimNode:
    n = load_cell_node()
    for channel, grams in ((0, 20350.0), (1, 18020.0), (2, 17600.0)):
        n.set_desk_load(channel, grams)
    n.platforms[3].absent = True
    return n


def desk_2_held() -> SimNode:
    n = load_cell_node()
    answer(n, "HELLO request to node 9, revision 3")
    n.hold_button(2, 4.0)
    n.clock.t += 3.0  # type: ignore[attr-defined]
    return n


def load_step_node() -> SimNode:
    """Section 6.4's desk node: revision 4, the test platforms of 6.3."""
    n = node(10, revision=4, load_cells=True, firmware=(1, 4, 0), hw_revision=3)
    n.boot_id = 0x3B21
    for p in n.platforms:
        p.dead_load_g = p.zero_counts = p.noise_counts = p.drift_g_per_sqrt_h = p.creep_fraction = 0.0
        p.counts_per_gram, p.powered_at = 10.0, 0.0
    return n


def laptop_on_desk_1() -> SimNode:
    n = load_step_node()
    answer(n, "HELLO request to node 10, revision 4")
    n.set_desk_load(1, 1850.0)
    n.clock.t += 2.05  # type: ignore[attr-defined]
    return n


PAIRS: list[tuple[str, str, Callable[[], SimNode]]] = [
    ("HELLO request to node 5", "HELLO reply from node 5", lambda: hello_node()),
    ("HELLO request to node 5, revision 2", "HELLO reply from node 5, revision 2", hello_node),
    ("HELLO request to node 6, revision 2", "NACK: BAD_LENGTH from a revision-1 node", lambda: node(6, revision=1)),
    ("SET_OUTPUT dimmer node 101 channel 2 to 75 % over 1 s", "NACK: BUSY", busy_dimmer),
    ("SET_OUTPUT with function 9", "NACK: UNSUPPORTED, detail = the function", lambda: node(101, "dimmer")),
    ("SET_OUTPUT LEVEL 5000 on channel 9", "NACK: NO_SUCH_CHANNEL beats BAD_VALUE", lambda: node(101, "dimmer")),
    ("OTA_BEGIN with size 0", "NACK: BAD_VALUE for an OTA size", lambda: node(5)),
    ("OTA_STATUS request", "OTA_STATUS reply when idle", lambda: node(5)),
    ("GET_OUTPUT of DESK_PRESET", "GET_OUTPUT reply: the height, on its way to preset 1", desk_on_its_way),
    ("EVENTS acknowledging event 65535", "EVENTS reply: events 1 and 2, after the wrap", events_across_the_wrap),
    ("READ_SENSOR block 0", "READ_SENSOR reply: block 0 with two motion events queued", motion_seen),
    ("READ_SENSOR block 255", "READ_SENSOR reply: the block directory", lambda: node(5)),
    ("SET_OUTPUT lamp 0, seq 35", "SET_OUTPUT reply, seq 35 (lost on the line)", lambda: node(7)),
    ("HELLO request to node 9, revision 3", "HELLO reply from node 9: a desk node with load cells", load_cell_node),
    ("READ_SENSOR block 255 to node 9", "READ_SENSOR reply: blocks 0 and 1", load_cell_node),
    ("READ_SENSOR block 1", "READ_SENSOR reply: block 1, four desks", four_desks),
    ("EVENTS request to node 9", "EVENTS reply: the button of desk 2 held 3 s", desk_2_held),
    ("HELLO request to node 10, revision 4", "HELLO reply from node 10: revision 4", load_step_node),
    ("EVENTS request to node 10", "EVENTS reply: a laptop put on desk 1", laptop_on_desk_1),
]


@pytest.mark.parametrize(("request_title", "reply_title", "make"), PAIRS, ids=[p[0] for p in PAIRS])
def test_the_simulated_node_answers_as_the_document_says(
    request_title: str, reply_title: str, make: Callable[[], SimNode]
) -> None:
    assert answer(make(), request_title) == EXAMPLES[reply_title].wire


def test_the_ordering_trace_runs_as_described() -> None:
    """Section 4.4: seq 35 (lamp 0) then seq 36 (lamp 1000); the lamp ends at 1000."""
    n = node(7)
    assert answer(n, "SET_OUTPUT lamp 0, seq 35") == EXAMPLES["SET_OUTPUT reply, seq 35 (lost on the line)"].wire
    assert answer(n, "SET_OUTPUT lamp 1000, seq 36") == EXAMPLES["SET_OUTPUT reply, seq 36"].wire
    assert round(n.lamps[0].target) == 1000
    # What a revision-1 gateway did next: seq 35 again, now not in the cache: it runs, the lamp goes dark.
    answer(n, "SET_OUTPUT lamp 0, seq 35")
    assert round(n.lamps[0].target) == 0


def test_a_repeat_carries_the_events_pending_flag_of_now() -> None:
    n = node(8)
    assert answer(n, "SET_OUTPUT indicator, seq 20") == EXAMPLES["SET_OUTPUT reply, seq 20"].wire
    n.press_button(3)
    assert answer(n, "SET_OUTPUT indicator, seq 20") == EXAMPLES["the same reply repeated, events now pending"].wire


def test_broadcasts_reach_every_channel_or_one() -> None:
    n = node(5)
    n.indicators = [2, 2, 2, 2]
    assert answer(n, "Broadcast: indicator channel 0 off") is None
    assert n.indicators == [0, 2, 2, 2]
    assert answer(n, "Broadcast: every indicator channel off") is None
    assert n.indicators == [0, 0, 0, 0]


def test_the_load_cell_block_example_reads_as_the_driver_parses_it() -> None:
    """The gateway's driver (drivers.hx711.parse_load_cells) reads section 6.3's block 1 as the text says."""
    from drivers.hx711 import CELL_NO_DATA, CELL_OK, parse_load_cells

    payload = decode_frame(EXAMPLES["READ_SENSOR reply: block 1, four desks"].wire[:-1]).payload
    assert payload[0] == 1
    assert parse_load_cells(payload[1:]) == (10, [(20350, CELL_OK), (18020, CELL_OK), (17600, CELL_OK),
                                                  (0, CELL_NO_DATA)])


def test_a_hold_is_a_press_to_a_gateway_of_revision_2() -> None:
    from firmware_bridge.messages import EventKind, EventsRequest, parse_events

    n = load_cell_node()
    n.receive(encode_frame(Frame(9, 0, 1, MsgType.HELLO, 0, b"\x02"))[:-1])
    n.hold_button(1, 5.0)
    n.clock.t += 5.0  # type: ignore[attr-defined]
    reply = n.receive(encode_frame(Frame(9, 0, 2, MsgType.EVENTS, 0, EventsRequest(0).pack()))[:-1])
    assert reply is not None
    events = parse_events(decode_frame(reply[:-1]).payload)
    assert [(e.kind, e.channel) for e in events] == [(EventKind.BUTTON, 1)]


def test_a_load_step_is_queued_once_settled_and_never_for_a_gateway_of_revision_3() -> None:
    """Section 5.7, LOAD_STEP: one event about 1.8 s after the step (10 SPS), none for drift-sized
    changes, none at all to a gateway that named revision 3."""
    from firmware_bridge.messages import EventKind, EventsRequest, parse_events

    def drained(n: SimNode, seq: int) -> list[tuple[int, int]]:
        reply = n.receive(encode_frame(Frame(10, 0, seq, MsgType.EVENTS, 0, EventsRequest(0).pack()))[:-1])
        assert reply is not None
        return [(e.kind, e.channel) for e in parse_events(decode_frame(reply[:-1]).payload)]

    n = laptop_on_desk_1()
    assert drained(n, 1) == [(EventKind.LOAD_STEP, 1)]
    n = load_step_node()
    answer(n, "HELLO request to node 10, revision 4")
    n.set_desk_load(2, 1850.0)
    n.clock.t += 1.5  # type: ignore[attr-defined]
    assert n.events_pending == 0  # the mean has not settled yet
    n.clock.t += 0.5  # type: ignore[attr-defined]
    assert n.events_pending == 1
    n.set_desk_load(2, 1900.0)  # 50 g more: under the step
    n.clock.t += 5.0  # type: ignore[attr-defined]
    assert n.events_pending == 1
    n.set_desk_load(2, 1950.0)  # 100 g above the reference now: small things add up
    n.clock.t += 5.0  # type: ignore[attr-defined]
    assert n.events_pending == 2
    old = load_step_node()
    old.receive(encode_frame(Frame(10, 0, 1, MsgType.HELLO, 0, b"\x03"))[:-1])
    old.set_desk_load(1, 1850.0)
    old.clock.t += 5.0  # type: ignore[attr-defined]
    assert old.events_pending == 0
