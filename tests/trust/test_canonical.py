"""Canonicalisation: how a request is spelt never changes what is signed; what it says always does."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.trust.canonical import canonical
from edge_agent.trust.envelope import check, sign_request
from edge_agent.trust.keys import KeyFile, new_key
from edge_agent.trust.policy import Keyring, SecurityConf

KEY = new_key("central")
RING = Keyring(SecurityConf.model_validate({"keys": [{"id": "central", "role": "central", "public_key": KEY.public}]}))
GW = "central-library/gw-floor-3"
NOW = 1_741_083_362

scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | \
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
args = st.dictionaries(st.text(min_size=1, max_size=8), values, max_size=6)


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same JSON value with every object's keys in another order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


def respelt(doc: Any, rng: random.Random) -> bytes:
    """Another spelling: key order, indentation, separators, escapes."""
    text = json.dumps(shuffled(doc, rng), indent=rng.choice([None, 0, 2, "\t"]), ensure_ascii=rng.random() < 0.5,
                      separators=rng.choice([(",", ":"), (", ", ": "), (" ,\n", " :  ")]))
    return ("\n " if rng.random() < 0.5 else "").encode() + text.encode()


def signed(key: KeyFile, arguments: dict[str, Any]) -> dict[str, Any]:
    return sign_request(key, "set_override", GW, {"id": "ov-1", "args": arguments}, now=NOW, nonce="n" * 16)


def accepted(doc: dict[str, Any]) -> bool:
    verdict = check(RING, "set_override", GW, doc, now=NOW + 5, synced=True, time_floor=0)
    return verdict.accepted and verdict.reason is None


@settings(max_examples=150, deadline=None)
@given(args, st.randoms(use_true_random=False))
def test_key_order_and_whitespace_do_not_change_what_is_signed(arguments: dict[str, Any], rng: random.Random) -> None:
    doc = signed(KEY, arguments)
    received = json.loads(respelt(doc, rng))
    assert canonical(received) == canonical(doc)
    assert accepted(received)


def leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in leaves(v, (*path, k))]
    if isinstance(value, list) and value:
        return [p for i, v in enumerate(value) for p in leaves(v, (*path, i))]
    return [path]


def changed(value: Any) -> Any:
    """A different JSON value of the same kind where there is one (an int stays an int)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 1.0 if abs(value) < 1e15 else value / 2
    if isinstance(value, str):
        return value + "x"
    if value is None:
        return 0
    return [*value, 0] if isinstance(value, list) else {**value, "k": 0}


@settings(max_examples=150, deadline=None)
@given(args.filter(bool), st.data())
def test_any_change_of_a_value_changes_what_is_signed(arguments: dict[str, Any], data: st.DataObject) -> None:
    doc = signed(KEY, arguments)
    path = data.draw(st.sampled_from(leaves(doc["args"])))
    tampered = json.loads(json.dumps(doc))
    holder: Any = tampered["args"]
    for step in path[:-1]:
        holder = holder[step]
    if path:
        holder[path[-1]] = changed(holder[path[-1]])
    else:
        tampered["args"] = changed(holder)
    assert canonical(tampered) != canonical(doc)
    assert not accepted(tampered)


@given(st.sampled_from(["id", "key_id", "command", "gateway", "nonce", "issued_at", "expires_at"]))
def test_every_envelope_field_is_covered(field: str) -> None:
    doc = signed(KEY, {"target_kind": "zone", "target": "z1", "level": 0.5})
    tampered = json.loads(json.dumps(doc))
    where = tampered if field == "id" else tampered["auth"]
    where[field] = changed(where[field])
    assert not accepted(tampered)


def test_the_canonical_form_is_sorted_compact_utf8() -> None:
    assert canonical({"b": 1, "a": [1.0, "é", None, True]}) == '{"a":[1.0,"é",null,true],"b":1}'.encode()
