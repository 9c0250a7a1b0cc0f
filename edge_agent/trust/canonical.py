"""The exact bytes a signature or an audit hash covers: canonical JSON.

A signed request travels as JSON, and JSON has many spellings of one value (key order,
whitespace, escapes). Sender and gateway therefore both sign and check the *parsed* document
written one fixed way: keys sorted by code point, no whitespace, UTF-8 (not ``\\u`` escapes),
numbers as Python's ``json`` writes them (``1`` stays an integer, ``1.0`` a float), NaN and
infinities refused. Any reordering or reformatting of a request leaves these bytes unchanged;
any change of a value changes them.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


def canonical(value: Any) -> bytes:
    """``value`` (parsed JSON: dicts with string keys, lists, str, int, float, bool, None) as canonical bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def b64(data: bytes) -> str:
    """Standard base64 with padding (what signatures and public keys are written in)."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: str, *, size: int | None = None, what: str = "value") -> bytes:
    """Strict base64; ValueError naming ``what`` when it is not, or not ``size`` bytes long."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ValueError(f"{what} is not valid base64") from None
    if size is not None and len(data) != size:
        raise ValueError(f"{what} must be {size} bytes, got {len(data)}")
    return data
