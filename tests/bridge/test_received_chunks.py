"""The link decodes what the line delivers as its frame reader does, however the bytes come.

A chunk that is one whole frame (how a node's reply nearly always arrives) is decoded without the
reader's generator; every other chunk (split frames, several frames, garbage, a frame after a
partial one, runs past the longest frame) goes through the reader. Both must hand the link the same
frames and count the same damaged ones, in the same order.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.errors import FrameError
from firmware_bridge.codec import MAX_ENCODED, Frame, FrameReader, encode_frame
from firmware_bridge.exchange import LineMaster
from firmware_bridge.transport import MemoryLine


class _Recording(LineMaster):
    """A line master whose dispatch only records what the reader side hands it."""

    def __init__(self) -> None:
        super().__init__(MemoryLine().master)
        self.got: list[Frame | str] = []

    def _dispatch(self, frame: Frame) -> None:
        self.got.append(frame)


def _reader_items(chunks: list[bytes]) -> tuple[list[Frame | str], int]:
    reader = FrameReader()
    got: list[Frame | str] = []
    errors = 0
    for chunk in chunks:
        for item in reader.feed(chunk):
            if isinstance(item, FrameError):
                errors += 1
                got.append(f"error: {item}")
            else:
                got.append(item)
    return got, errors


_frames = st.builds(
    lambda dst, seq, payload: encode_frame(Frame(dst=0, src=dst, seq=seq, type=0x81, flags=1, payload=payload)),
    st.integers(1, 247),
    st.integers(0, 255),
    st.binary(max_size=40),
)
_pieces = st.one_of(
    _frames,
    _frames.map(lambda f: f[: len(f) // 2]),  # a frame cut short (its rest never comes)
    _frames.map(lambda f: f[:-3] + bytes([f[-3] ^ 0x10]) + f[-2:]),  # a damaged byte: the CRC fails
    st.binary(max_size=12),  # garbage, zeros included
    st.just(b"\x01" * (MAX_ENCODED + 5) + b"\x00"),  # longer than any frame
    st.just(b"\x00"),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_pieces, max_size=12), st.data())
def test_the_link_hands_on_what_its_reader_would(pieces: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(pieces)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(stream)), max_size=6)))
    edges = [0, *cuts, len(stream)]
    chunks = [stream[a:b] for a, b in itertools.pairwise(edges) if b > a]
    chunks += pieces  # the pieces as chunks of their own as well: whole frames, most of them

    expected, errors = _reader_items(chunks)
    link = _Recording()
    for chunk in chunks:
        link._received(chunk)
    assert link.got == [item for item in expected if isinstance(item, Frame)]
    assert link.stats.rx_errors == errors
    assert (bytes(link._reader.buffer), link._reader.overflow) == _reader_state(chunks)


def _reader_state(chunks: list[bytes]) -> tuple[bytes, bool]:
    reader = FrameReader()
    for chunk in chunks:
        list(reader.feed(chunk))
    return bytes(reader.buffer), reader.overflow


def test_a_whole_frame_after_a_partial_one_is_read_as_the_reader_reads_it() -> None:
    """A partial frame waiting in the buffer keeps a whole frame that follows off the short path."""
    frame = encode_frame(Frame(dst=0, src=5, seq=1, type=0x81, flags=1, payload=b"\x00\x01"))
    link = _Recording()
    link._received(frame[:4])
    link._received(frame)  # joins the partial frame: one damaged block, as the reader makes it
    assert link.got == [] and link.stats.rx_errors == 1
    link._received(frame)
    assert link.got == [Frame(dst=0, src=5, seq=1, type=0x81, flags=1, payload=b"\x00\x01")]
