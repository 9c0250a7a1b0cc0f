"""The arbiter: the one place intents become commands to outputs.

Rules, staff overrides and MQTT commands all ask; the arbiter decides, per (actuator, kind)
*channel*, which request wins (priority: safety > override > preference > automation > schedule),
and then gets the winning value into effect carefully:

- **idempotent**: a value already in effect (confirmed) or already on its way is not resent;
- **rate-limited**: at most one command per ``min_interval_s``, intermediate targets coalesce;
- **minimum on/off times** protect fans and lamps from short-cycling (safety intents skip them);
- **ramps**: ``ramp_s`` from the intent or the actuator's config is passed to the output;
- **confirmed**: after a command (and its ramp) the output is read back where it can report
  (an output whose part answers a command with the state it holds, ``answered``, is read
  back by that answer when there is no ramp); a mismatch counts as a failure;
- **retried with backoff** when an output raises (EdgeError, OSError, timeout): the channel is
  marked failing and reported, and the daemon keeps running;
- **deadline**: a target not confirmed within ``deadline_s`` (120 s, the floor's bar) raises a
  ``deadline_missed`` event once;
- **released**: when nothing wants a channel any more (an override cleared or expired with no rule
  intent behind it), an output that can hand control back (``release()``: a BMS object's priority
  relinquished) is told so at the next tick.

Every confirmed change produces an ``actuation`` event (old -> new, rule, priority, latency from
the target's first appearance to confirmation) through ``on_event``, for the MQTT layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from drivers.ports import Clock, Output
from edge_agent.actuation.overrides import Override, OverrideBook
from rules.state import Intent, IntentKind, Priority

log = logging.getLogger(__name__)
ChannelKey = tuple[str, IntentKind]
EventKind = Literal["actuation", "deadline_missed", "output_failed", "output_recovered", "override_expired"]
ON_OFF_KINDS = (IntentKind.LIGHT_LEVEL, IntentKind.DESK_LAMP, IntentKind.VENTILATION)


@dataclass(frozen=True, slots=True)
class Limits:
    """How carefully one actuator is driven; defaults suit a dimmer channel."""

    min_interval_s: float = 1.0
    min_on_s: float = 0.0
    min_off_s: float = 0.0
    ramp_s: float = 0.0
    tolerance: float = 0.01
    retry_base_s: float = 1.0
    retry_max_s: float = 30.0
    deadline_s: float = 120.0
    command_timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class ArbiterEvent:
    """Something the upstream should hear about; ``as_dict`` is the MQTT payload shape."""

    kind: EventKind
    actuator: str
    intent_kind: IntentKind
    t: float
    old: float | None = None
    new: float | None = None
    rule_id: str = ""
    priority: Priority | None = None
    latency_s: float | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["intent_kind"] = self.intent_kind.value
        doc["priority"] = self.priority.name.lower() if self.priority is not None else None
        return doc


@dataclass(slots=True)
class Channel:
    """Mutable book-keeping of one (actuator, kind): what is wanted, sent and confirmed."""

    key: ChannelKey
    output: Output
    limits: Limits
    rule_intent: Intent | None = None
    target: Intent | None = None
    target_since: float = 0.0
    applied: float | None = None
    sent: float | None = None
    confirm_at: float = 0.0
    last_sent_t: float = -math.inf
    last_switch_t: float = -math.inf
    failures: int = 0
    next_try_t: float = -math.inf
    deadline_reported: bool = False
    last_error: str = ""
    history: list[float] = field(default_factory=list)  # confirmed values, newest last (bounded)

    def same(self, a: float | None, b: float | None) -> bool:
        return a is not None and b is not None and abs(a - b) <= self.limits.tolerance

    @property
    def in_effect(self) -> bool:
        return self.target is not None and self.sent is None and self.same(self.applied, self.target.value)


class Arbiter:
    """Decide and apply. ``submit`` is cheap and never awaits I/O; ``tick``/``run`` do the I/O."""

    def __init__(
        self,
        outputs: Mapping[ChannelKey, Output],
        clock: Clock,
        *,
        limits: Mapping[str, Limits] | None = None,
        channel_limits: Mapping[ChannelKey, Limits] | None = None,
        default_limits: Limits = Limits(),
        on_event: Callable[[ArbiterEvent], None] | None = None,
        overrides: OverrideBook | None = None,
        concurrency: int = 8,
    ) -> None:
        per, per_channel = limits or {}, channel_limits or {}
        self.clock = clock
        self.overrides = overrides if overrides is not None else OverrideBook()
        # Limits by channel first, then by actuator: one desk carries a height in mm, an indicator
        # code and a lamp level, which need different tolerances.
        self.channels = {k: Channel(k, out, per_channel.get(k) or per.get(k[0], default_limits))
                         for k, out in sorted(outputs.items())}
        # A floor has hundreds of channels and few change per pass, so passes touch only these:
        self._order = {k: i for i, k in enumerate(self.channels)}  # channel order: the order commands go out
        self._retarget_next: dict[ChannelKey, Channel] = {}  # rule intent replaced since the last pass
        self._pending: set[ChannelKey] = set()  # may need a step: target changed, or not yet in effect
        self._overrides_seen = False  # an override was in force at the last pass: look at every channel
        self._released: list[Channel] = []  # nobody wants these any more: release() at the next tick
        self._on_event = on_event
        self._wake = asyncio.Event()
        self._gate = asyncio.Semaphore(concurrency)

    async def submit(self, intents: Iterable[Intent], t: float | None = None) -> list[Intent]:
        """Take the rules' intents; return those that are not for an output (RELEASE_SEAT, ALERT, unwired)."""
        now = self.clock.monotonic() if t is None else t
        unrouted: list[Intent] = []
        # The decide loop hands back the same intent objects pass after pass (rules.incremental). A
        # channel given the very intent it already targets, with no override in play, would be
        # retargeted to itself: if in effect it needs nothing, and if not it is pending already (a
        # channel leaves the pending set only once in effect, and only a step or a new target
        # takes it out of effect), so it is left as it is.
        quiet = not len(self.overrides) and not self._overrides_seen
        for intent in intents:
            ch = self.channels.get((intent.target, intent.kind))
            if ch is None or intent.value is None:
                unrouted.append(intent)
                continue
            if quiet and ch.rule_intent is intent and ch.target is intent:
                continue
            ch.rule_intent = intent  # the engine already resolved conflicts: the latest evaluation rules
            self._retarget_next[ch.key] = ch
        self._retarget_all(now)
        self._wake.set()
        return unrouted

    def set_override(self, target: str, value: float, duration_s: float | None, *,
                     kind: IntentKind = IntentKind.LIGHT_LEVEL, source: str = "cli", reason: str = "") -> None:
        """A staff override on a zone, seat or actuator (``duration_s=None``: until cleared; ValueError on
        nonsense); applied at the next tick."""
        now = self.clock.monotonic()
        self.overrides.set(target, value, duration_s, now, kind=kind, source=source, reason=reason)
        self._retarget_all(now, everything=True)
        self._wake.set()

    def clear_override(self, target: str, kind: IntentKind | None = None) -> int:
        now = self.clock.monotonic()
        gone = self.overrides.clear(target, kind)
        self._retarget_all(now, everything=True)
        self._wake.set()
        return len(gone)

    def _retarget_all(self, now: float, *, everything: bool = False) -> None:
        """Retarget every channel whose choice may have changed.

        Without overrides a channel's target is its rule intent, so only channels that were handed a
        new intent can change; while overrides are (or were, at the last pass) in force, any channel
        can, as overrides start, expire and shadow each other, so then every channel is looked at.
        """
        active = self.overrides.active(now) if len(self.overrides) else {}
        if everything or active or self._overrides_seen:
            chosen: Iterable[Channel] = self.channels.values()
        else:
            chosen = self._retarget_next.values()
        for ch in chosen:
            self._retarget(ch, now, active)
        self._retarget_next.clear()
        self._overrides_seen = bool(active)

    def _retarget(self, ch: Channel, now: float, active: Mapping[ChannelKey, Override]) -> None:
        """Choose the channel's effective target: the rule intent or an override, by priority."""
        winner = ch.rule_intent
        ov = active.get(ch.key)
        if ov is not None and (winner is None or winner.priority <= Priority.OVERRIDE):
            winner = ov.intent(ch.key[0])
        if winner is None:
            if ch.target is not None:  # an override ended and no rule wants the channel
                ch.target, ch.sent, ch.applied = None, None, None
                self._pending.discard(ch.key)
                self._released.append(ch)
            return
        if ch.target is None or not ch.same(ch.target.value, winner.value):
            ch.target_since = now
            ch.deadline_reported = False
        ch.target = winner
        self._pending.add(ch.key)

    async def tick(self) -> None:
        """Apply pending work once: expire overrides, then step every channel that needs it."""
        now = self.clock.monotonic()
        for ov in self.overrides.expire(now):
            for actuator in self.overrides.actuators(ov.target):
                self._emit(ArbiterEvent("override_expired", actuator, ov.kind, now, new=ov.value, detail=ov.target))
        self._retarget_all(now)
        released, self._released = self._released, []
        for ch in released:
            release = getattr(ch.output, "release", None)
            if callable(release):
                try:
                    await asyncio.wait_for(release(), timeout=ch.limits.command_timeout_s)
                except Exception as exc:  # an output must never take the daemon down
                    self._failed(ch, now, f"release: {type(exc).__name__}: {exc}")
        self._pending = {k for k in self._pending if self._needs_step(self.channels[k])}
        due = [self.channels[k] for k in sorted(self._pending, key=self._order.__getitem__)]
        if due:
            await asyncio.gather(*(self._step_guarded(ch) for ch in due))
        # Keep what still needs work, and whatever a submit retargeted while the steps ran.
        self._pending = {k for k in self._pending if self._needs_step(self.channels[k])}

    @staticmethod
    def _needs_step(ch: Channel) -> bool:
        return ch.target is not None and not ch.in_effect

    async def run(self, stop: asyncio.Event | None = None, interval_s: float = 0.5) -> None:
        """Tick until ``stop`` is set; a submit wakes it at once so event rules act in well under a second."""
        while stop is None or not stop.is_set():
            await self.tick()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval_s):  # no task per wait, unlike wait/wait_for
                    await self._wake.wait()

    async def _step_guarded(self, ch: Channel) -> None:
        async with self._gate:
            try:
                await self._step(ch)
            except Exception as exc:  # an output must never take the daemon down
                self._failed(ch, self.clock.monotonic(), f"{type(exc).__name__}: {exc}")

    async def _step(self, ch: Channel) -> None:
        assert ch.target is not None and ch.target.value is not None
        now, value, lim = self.clock.monotonic(), ch.target.value, ch.limits
        self._check_deadline(ch, now)
        if ch.sent is not None and ch.same(ch.sent, value):
            if now >= ch.confirm_at:
                await self._confirm(ch, now)
            return
        if now < ch.next_try_t:
            return
        safety = ch.target.priority >= Priority.SAFETY
        if not safety and now - ch.last_sent_t < lim.min_interval_s:
            return
        if not safety and ch.key[1] in ON_OFF_KINDS and ch.applied is not None:
            was_on, will_on = ch.applied > 0, value > 0
            if was_on and not will_on and now - ch.last_switch_t < lim.min_on_s:
                return
            if will_on and not was_on and now - ch.last_switch_t < lim.min_off_s:
                return
        ramp = ch.target.ramp_s if ch.target.ramp_s is not None else lim.ramp_s
        ch.last_sent_t = now
        await asyncio.wait_for(ch.output.set(value, ramp), timeout=lim.command_timeout_s)
        ch.sent, ch.confirm_at = value, now + ramp
        if ramp <= 0:
            # A part that answers a command with the state it then holds (a node's SET_OUTPUT
            # reply) has just been read back: asking again at once would only repeat its answer.
            answered = getattr(ch.output, "answered", None)
            await self._confirm(ch, now, answered)

    async def _confirm(self, ch: Channel, now: float, reported: float | None = None) -> None:
        assert ch.target is not None and ch.sent is not None
        if reported is None:
            reported = await asyncio.wait_for(ch.output.read_back(), timeout=ch.limits.command_timeout_s)
        if reported is not None and not ch.same(reported, ch.sent):
            ch.sent = None
            self._failed(ch, now, f"read back {reported:g}, commanded {ch.target.value:g}")
            return
        old, new = ch.applied, ch.sent
        if ch.failures:
            detail = f"after {ch.failures} failure(s)"
            self._emit(ArbiterEvent("output_recovered", ch.key[0], ch.key[1], now, detail=detail))
        if ch.key[1] in ON_OFF_KINDS and (old is None or (old > 0) != (new > 0)):
            ch.last_switch_t = now
        ch.applied, ch.sent, ch.failures, ch.next_try_t, ch.last_error = new, None, 0, -math.inf, ""
        ch.history = [*ch.history[-9:], new]
        self._emit(ArbiterEvent(
            "actuation", ch.key[0], ch.key[1], now, old=old, new=new, rule_id=ch.target.rule_id,
            priority=ch.target.priority, latency_s=max(0.0, now - ch.target_since), detail=ch.target.reason,
        ))

    def _failed(self, ch: Channel, now: float, why: str) -> None:
        ch.failures += 1
        ch.sent = None
        ch.last_error = why
        delay = min(ch.limits.retry_base_s * 2 ** min(ch.failures - 1, 30), ch.limits.retry_max_s)  # no overflow
        ch.next_try_t = now + delay
        self._emit(ArbiterEvent("output_failed", ch.key[0], ch.key[1], now, new=ch.target.value if ch.target else None,
                                detail=f"attempt {ch.failures}: {why}; retry in {delay:g} s"))

    def _check_deadline(self, ch: Channel, now: float) -> None:
        if ch.target is None or ch.deadline_reported or now - ch.target_since <= ch.limits.deadline_s:
            return
        ch.deadline_reported = True
        self._emit(ArbiterEvent(
            "deadline_missed", ch.key[0], ch.key[1], now, old=ch.applied, new=ch.target.value,
            rule_id=ch.target.rule_id, priority=ch.target.priority, latency_s=now - ch.target_since,
            detail=ch.last_error or "not confirmed in time",
        ))

    def _emit(self, event: ArbiterEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:  # a broken subscriber must not stop actuation
            log.exception("arbiter event callback failed for %s", event.kind)

    def status(self) -> list[dict[str, Any]]:
        """One row per channel for ``edge-agent actuators`` and health reports."""
        return [
            {"actuator": k[0], "kind": k[1].value, "target": ch.target.value if ch.target else None,
             "applied": ch.applied, "in_effect": ch.in_effect, "failures": ch.failures, "error": ch.last_error,
             "rule": ch.target.rule_id if ch.target else ""}
            for k, ch in self.channels.items()
        ]
