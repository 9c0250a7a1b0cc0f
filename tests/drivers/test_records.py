"""quick_init: the records it speeds up are built exactly as their dataclass builds them."""

from __future__ import annotations

import dataclasses
import inspect
import random
from typing import Any

import pytest

from drivers.ports import Reading
from drivers.records import quick_init
from edge_agent.sensing.zones import LastValue
from firmware_bridge.codec import Frame
from firmware_bridge.messages import NodeStatus

QUICK = [Frame, Reading, NodeStatus, LastValue]


def _value(rng: random.Random, annotation: str) -> Any:
    if "bytes" in annotation:
        return rng.randbytes(rng.randrange(6))
    if "str" in annotation:
        return rng.choice(["lux", "a", ""]) + str(rng.randrange(9))
    if "float" in annotation:
        return rng.uniform(-5, 5)
    return rng.randrange(300)


def _made_by_dataclasses(cls: type[Any], *args: Any, **kwargs: Any) -> Any:
    obj = object.__new__(cls)
    cls.__init__.__wrapped__(obj, *args, **kwargs)  # the generated __init__ that quick_init replaced
    return obj


@pytest.mark.parametrize("cls", QUICK, ids=lambda c: c.__name__)
def test_the_same_record_from_the_same_arguments(cls: type[Any]) -> None:
    rng = random.Random(cls.__name__)
    fields = dataclasses.fields(cls)
    for _ in range(200):
        given = {f.name: _value(rng, str(f.type)) for f in fields}
        cut = rng.randrange(len(fields) + 1)  # some positional, the rest by keyword, defaults left out
        args = [given[f.name] for f in fields[:cut]]
        kwargs = {f.name: given[f.name] for f in fields[cut:] if f.default is dataclasses.MISSING or rng.random() < 0.5}
        quick, reference = cls(*args, **kwargs), _made_by_dataclasses(cls, *args, **kwargs)
        assert quick == reference and hash(quick) == hash(reference) and repr(quick) == repr(reference)
        assert all(getattr(quick, f.name) is getattr(reference, f.name) for f in fields)


@pytest.mark.parametrize("cls", QUICK, ids=lambda c: c.__name__)
def test_calls_are_checked_and_records_stay_frozen(cls: type[Any]) -> None:
    assert inspect.signature(cls) == inspect.signature(cls.__init__.__wrapped__).replace(
        parameters=list(inspect.signature(cls.__init__.__wrapped__).parameters.values())[1:]
    )
    required = [f for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
    with pytest.raises(TypeError):
        cls(*range(len(required) - 1))
    with pytest.raises(TypeError):
        cls(*range(len(dataclasses.fields(cls)) + 1))
    record = cls(*range(len(required)))
    with pytest.raises(TypeError):
        cls(*range(len(required)), **{required[0].name: 1})  # given twice
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(record, required[0].name, 5)


def test_defaults_and_factories_as_the_dataclass_has_them() -> None:
    @quick_init
    @dataclasses.dataclass(frozen=True, slots=True)
    class Sample:
        a: int
        b: str = "b"
        c: list[int] = dataclasses.field(default_factory=list)

    one, two = Sample(1), Sample(2, "x", [3])
    assert (one.a, one.b, one.c, two.a, two.b, two.c) == (1, "b", [], 2, "x", [3])
    assert Sample(1).c is not one.c  # a fresh list each time, as the factory gives it
    assert Sample(a=4, c=[1]) == Sample(4, "b", [1])


def test_classes_it_cannot_build_alike_are_refused_at_once() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(slots=True)
    class NotFrozen:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclasses.dataclass(frozen=True, slots=True)
    class KeywordOnly:
        a: int = dataclasses.field(kw_only=True)

    @dataclasses.dataclass(frozen=True, slots=True)
    class NotInInit:
        a: int = dataclasses.field(init=False, default=1)

    for cls in (NoSlots, NotFrozen, Checked, KeywordOnly, NotInInit):
        with pytest.raises(TypeError):
            quick_init(cls)
