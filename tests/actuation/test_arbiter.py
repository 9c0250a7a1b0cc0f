"""Arbiter: priority, overrides, rate limits, idempotence, read-back, retries, deadline, ramps."""

from __future__ import annotations

import asyncio

import pytest

from edge_agent.actuation.arbiter import Arbiter, ArbiterEvent, Limits
from edge_agent.actuation.overrides import OverrideBook
from edge_agent.clock import SystemClock
from rules.state import Intent, IntentKind, Priority
from tests.actuation.fakes import FakeOutput, ManualClock

LIGHT = IntentKind.LIGHT_LEVEL


def light(value: float, priority: Priority = Priority.AUTOMATION, rule: str = "r", target: str = "L1") -> Intent:
    return Intent(target, LIGHT, value, priority=priority, rule_id=rule)


def make(limits: Limits | None = None, **out_kw: object) -> tuple[Arbiter, FakeOutput, ManualClock,
                                                                                    list[ArbiterEvent]]:
    clock = ManualClock()
    out = FakeOutput(clock, **out_kw)  # type: ignore[arg-type]
    events: list[ArbiterEvent] = []
    book = OverrideBook({"z1": ("L1",)})
    per = {"L1": limits or Limits(min_interval_s=0.0)}
    arb = Arbiter({("L1", LIGHT): out}, clock, limits=per, on_event=events.append, overrides=book)
    return arb, out, clock, events


async def test_highest_priority_wins_and_safety_beats_staff_override() -> None:
    arb, out, clock, _ = make()
    await arb.submit([light(0.4)], clock.now)
    await arb.tick()
    arb.set_override("z1", 0.9, 600)
    await arb.tick()
    assert out.values == [0.4, 0.9]
    await arb.submit([light(0.2, Priority.SCHEDULE)], clock.now)  # lower than the override: ignored
    await arb.tick()
    await arb.submit([light(1.0, Priority.SAFETY, "builtin-failsafe-lights")], clock.now)
    await arb.tick()
    assert out.values == [0.4, 0.9, 1.0]


async def test_override_expires_and_automation_returns() -> None:
    arb, out, clock, events = make()
    await arb.submit([light(0.5)], clock.now)
    arb.set_override("z1", 0.0, 60, source="mqtt")
    await arb.tick()
    assert out.values == [0.0]
    clock.advance(30)
    await arb.tick()
    assert out.values == [0.0]
    clock.advance(31)
    await arb.tick()
    assert out.values == [0.0, 0.5]
    assert [e.kind for e in events if e.kind == "override_expired"] == ["override_expired"]
    assert events[-1].kind == "actuation" and events[-1].rule_id == "r"


async def test_override_can_be_cleared_and_rejects_nonsense() -> None:
    arb, out, clock, _ = make()
    await arb.submit([light(0.5)], clock.now)
    arb.set_override("L1", 0.1, 600)
    await arb.tick()
    assert arb.clear_override("L1") == 1
    await arb.tick()
    assert out.values == [0.1, 0.5]
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        arb.set_override("z1", 2.0, 60)
    with pytest.raises(ValueError, match="duration"):
        arb.set_override("z1", 0.5, 0)


async def test_rate_limit_coalesces_intermediate_targets() -> None:
    arb, out, clock, _ = make(Limits(min_interval_s=5.0))
    await arb.submit([light(0.2)], clock.now)
    await arb.tick()
    for value in (0.3, 0.4, 0.6):
        clock.advance(1)
        await arb.submit([light(value)], clock.now)
        await arb.tick()
    assert out.values == [0.2]
    clock.advance(2)
    await arb.tick()
    assert out.values == [0.2, 0.6]


async def test_target_in_effect_is_not_resent() -> None:
    arb, out, clock, events = make()
    for _ in range(5):
        await arb.submit([light(0.7)], clock.now)
        await arb.tick()
        clock.advance(10)
    assert out.values == [0.7]
    assert [e.kind for e in events] == ["actuation"]


async def test_fails_twice_then_succeeds_with_backoff_and_reports_latency() -> None:
    arb, out, clock, events = make(fail_next=2)
    start = clock.now
    await arb.submit([light(0.8)], clock.now)
    for _ in range(8):  # ticks every 0.5 s: retries come at +1 s and then +2 s later
        await arb.tick()
        clock.advance(0.5)
    kinds = [e.kind for e in events]
    assert kinds == ["output_failed", "output_failed", "output_recovered", "actuation"]
    assert out.sets == [(start + 3.0, 0.8, 0.0)]
    done = events[-1]
    assert done.old is None and done.new == 0.8 and done.latency_s == pytest.approx(3.0)
    assert done.priority == Priority.AUTOMATION and done.rule_id == "r"


async def test_read_back_mismatch_is_a_failure_and_none_is_trusted() -> None:
    arb, _, clock, events = make(stuck_at=0.1)
    await arb.submit([light(0.8)], clock.now)
    await arb.tick()
    assert events[0].kind == "output_failed" and "read back 0.1" in events[0].detail
    assert not any(e.kind == "actuation" for e in events)
    arb2, _, clock2, events2 = make(reports=False)
    await arb2.submit([light(0.8)], clock2.now)
    await arb2.tick()
    assert [e.kind for e in events2] == ["actuation"]


async def test_deadline_missed_is_reported_once_and_daemon_keeps_going() -> None:
    arb, _, clock, events = make(fail_next=10_000)
    await arb.submit([light(0.9)], clock.now)
    for _ in range(200):
        await arb.tick()
        clock.advance(1.0)
    missed = [e for e in events if e.kind == "deadline_missed"]
    assert len(missed) == 1
    assert missed[0].latency_s is not None and 120 < missed[0].latency_s <= 122
    retries = [e for e in events if e.kind == "output_failed"]
    assert 5 <= len(retries) <= 12  # backoff caps at 30 s: bounded retry traffic


async def test_ramp_delays_confirmation_and_min_on_time_holds_the_light() -> None:
    arb, out, clock, events = make(Limits(min_interval_s=0.0, ramp_s=2.0, min_on_s=60.0))
    await arb.submit([light(0.6)], clock.now)
    await arb.tick()
    assert out.sets[0][2] == 2.0 and not events
    clock.advance(2.0)
    await arb.tick()
    assert events[-1].kind == "actuation" and events[-1].latency_s == pytest.approx(2.0)
    await arb.submit([light(0.0)], clock.now)
    clock.advance(10)
    await arb.tick()
    assert out.values == [0.6]  # on for only 10 s: stays on
    clock.advance(50)
    await arb.tick()
    assert out.values == [0.6, 0.0]


async def test_non_output_intents_are_handed_back_and_broken_callbacks_do_not_stop_it() -> None:
    clock = ManualClock()
    out = FakeOutput(clock)

    def explode(event: ArbiterEvent) -> None:
        raise RuntimeError("subscriber bug")

    arb = Arbiter({("L1", LIGHT): out}, clock, on_event=explode)
    release = Intent("S4", IntentKind.RELEASE_SEAT, rule_id="seat-release-ghost")
    back = await arb.submit([light(0.5), release], clock.now)
    await arb.tick()
    assert back == [release] and out.values == [0.5]


async def test_run_wakes_on_submit_well_under_a_second() -> None:
    clock = SystemClock()
    seen = asyncio.Event()
    arb = Arbiter({("L1", LIGHT): FakeOutput(ManualClock())}, clock,
                  on_event=lambda e: seen.set() if e.kind == "actuation" else None)
    stop = asyncio.Event()
    runner = asyncio.create_task(arb.run(stop, interval_s=30.0))
    await asyncio.sleep(0.01)
    await arb.submit([light(0.5)])
    await asyncio.wait_for(seen.wait(), timeout=1.0)
    stop.set()
    arb._wake.set()
    await asyncio.wait_for(runner, timeout=1.0)


async def test_channel_limits_let_a_desk_lamp_match_finely_while_its_desk_height_matches_coarsely() -> None:
    # One desk, two channels: its height (mm) and indicator match within 0.5, its lamp is a 0..1
    # level. With the desk's limits alone a lamp asked for 0.4 would look "already there" at 0.
    clock = ManualClock()
    lamp, height = FakeOutput(clock), FakeOutput(clock)
    lamp.value, height.value = 0.0, 720.0
    outputs = {("D1", IntentKind.DESK_LAMP): lamp, ("D1", IntentKind.DESK_HEIGHT): height}
    coarse = Limits(min_interval_s=0.0, tolerance=0.5)
    desk_only = Arbiter(outputs, clock, limits={"D1": coarse})
    arb = Arbiter(outputs, clock, limits={"D1": coarse},
                  channel_limits={("D1", IntentKind.DESK_LAMP): Limits(min_interval_s=0.0, tolerance=0.01)})
    for a in (desk_only, arb):
        a.channels["D1", IntentKind.DESK_LAMP].applied = 0.0
        a.channels["D1", IntentKind.DESK_HEIGHT].applied = 720.0
    asks = [Intent("D1", IntentKind.DESK_LAMP, 0.4), Intent("D1", IntentKind.DESK_HEIGHT, 720.3)]
    await desk_only.submit(asks, clock.now)
    await desk_only.tick()
    assert lamp.sets == [] and height.sets == []
    await arb.submit(asks, clock.now)
    await arb.tick()
    assert [v for _, v, _ in lamp.sets] == [0.4]
    assert height.sets == []  # 0.3 mm is no reason to move a desk
    assert arb.channels["D1", IntentKind.DESK_LAMP].limits.tolerance == 0.01


async def test_the_same_intent_handed_back_each_pass_acts_as_fresh_equal_ones() -> None:
    """The decide loop hands back the very same intent objects while nothing changed; the arbiter
    skips those, and must still retry a failing output, follow overrides and their end."""
    runs = []
    for same_object in (True, False):
        arb, out, clock, events = make(fail_next=3, stuck_at=None)
        kept = light(0.6)
        for step in range(40):
            if step == 20:
                arb.set_override("z1", 0.1, 5)
            if step == 34:
                kept = light(0.3)
            await arb.submit([kept if same_object else light(kept.value or 0.0)], clock.now)
            await arb.tick()
            clock.advance(0.5)
        runs.append((out.sets, [(e.kind, e.new) for e in events]))
    assert runs[0] == runs[1]
    assert [v for _, v, _ in runs[0][0]] == [0.6, 0.1, 0.6, 0.3]  # after three failures, the override, its end
