"""What a desk node's inputs mean for the floor: its buttons and its PIR inputs.

The RS-485 link reports each node event as it drains the node's queue
(:class:`firmware_bridge.link.NodeEvent`). :class:`DeskInputs` maps it to the floor:

- ``button`` on a desk's channel: the desk's "back soon" (:meth:`FloorModel.on_button`): a break
  begins (the seat shows away, amber, held for ``[sensing] break_limit_s``) or ends;
- ``button_hold`` (held 3 s): staff releasing a ghost seat, through the same release as the CLI
  and MQTT (:meth:`FloorController.release_seat`, source ``desk_button``), also when the desk's
  emptying freed the ghost seat moments before (:meth:`FloorModel.is_staff_release`); on any other
  seat it is a press like any other (a patron who held it a little long);
- ``motion`` from a node's PIR input: the PIR sensors configured on that node (``kind = "pir"``,
  ``node = N``) see motion, as a PIR on a GPIO pin would;
- ``load_step`` (revision 4): a desk's load settled 100 g or more from where it stood (a laptop
  put down, the desk packed up, a bag dropped, a cup taken along). The seat is looked at again
  at once instead of at the next once-a-minute poll: its load cell and the thermopile over it
  are read now (:meth:`edge_agent.pollers.SensorPollers.read_now`), and the decide loop is told
  only if that changed the seat's status, as seat news (:meth:`FloorController.seat_news`: within
  a second, coalesced with the other seats' news). The periodic polls go on and catch a lost event.

A button, a hold and news-worthy motion wake the decide loop at once, so the indicator, a release
and the lights follow at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from edge_agent.config import SiteConfig
from edge_agent.controller import FloorController
from edge_agent.sensing.floor import FloorModel
from firmware_bridge.link import NodeEvent

log = logging.getLogger("edge_agent.desks")


class DeskInputs:
    """Routes node events to seats and zones (see module docstring)."""

    def __init__(self, cfg: SiteConfig, floor: FloorModel, controller: FloorController, *,
                 read_now: Callable[[str], Awaitable[bool]] | None = None) -> None:
        self.floor = floor
        self.controller = controller
        self.read_now = read_now  # SensorPollers.read_now: a sensor read between its polls
        self.seats: dict[tuple[int, int], list[str]] = {}
        for a in cfg.actuators:
            if a.kind == "desk" and a.node is not None:
                self.seats.setdefault((a.node, a.channel), []).extend(a.seats)
        self.pirs: dict[int, list[str]] = {}
        for s in cfg.sensors:
            if s.kind == "pir" and s.node is not None:
                self.pirs.setdefault(s.node, []).append(s.id)
        self.presses = 0
        self.holds = 0
        self.load_steps = 0
        # A desk's load cell (node, channel) -> the sensors to read again at a step: the load cell
        # and the thermopiles over its seats; and the seats to decide again.
        self.steps: dict[tuple[int, int], tuple[list[str], list[str]]] = {}
        for s in cfg.sensors:
            if s.kind == "hx711" and s.node is not None:
                channel = int(s.settings.get("channel", 0))
                over = [t.id for t in cfg.sensors if t.kind == "amg8833" and set(t.seats) & set(s.seats)]
                sensors, seats = self.steps.setdefault((s.node, channel), ([], []))
                sensors.extend(x for x in [s.id, *over] if x not in sensors)
                seats.extend(x for x in s.seats if x not in seats)
        self._looking: dict[tuple[int, int], asyncio.Task[None]] = {}
        self._again: dict[tuple[int, int], float] = {}  # a step came during a look: look again (its time)

    def on_node_event(self, event: NodeEvent) -> None:
        """A listener for :meth:`firmware_bridge.link.BridgeLink.add_listener`."""
        if event.kind == "load_step":
            self._load_step((event.node, event.channel), event.t)
            return
        if event.kind == "motion":
            if any([self.floor.on_motion(sid, event.t) for sid in self.pirs.get(event.node, ())]):
                self.controller.wake()
            return
        if event.kind not in ("button", "button_hold"):
            return
        seats = self.seats.get((event.node, event.channel), [])
        if not seats:
            log.info("button on node %d channel %d: no desk there in the config", event.node, event.channel)
            return
        for seat in seats:
            if event.kind == "button_hold":
                self.holds += 1
                if self.floor.is_staff_release(seat, event.t):
                    self.controller.release_seat(seat, "desk_button")
                    continue
            self.presses += 1
            what = self.floor.on_button(seat, event.t)
            log.info("seat %s: back-soon button (%s)", seat, what)
        self.controller.wake()

    def _load_step(self, desk: tuple[int, int], t: float) -> None:
        """Look at the desk's seat again now; a step while a look is running asks for one more."""
        if desk not in self.steps or self.read_now is None:
            log.debug("load step on node %d channel %d: no load cell there in the config", *desk)
            return
        self.load_steps += 1
        running = self._looking.get(desk)
        if running is not None and not running.done():
            self._again[desk] = t
            return
        task = asyncio.get_running_loop().create_task(self._look(desk, t), name=f"desk-step-{desk}")
        task.add_done_callback(self._looked)
        self._looking[desk] = task

    @staticmethod
    def _looked(task: asyncio.Task[None]) -> None:
        """A look that failed is a bug: say so now (the periodic polls still see the seat)."""
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("%s failed: %s: %s", task.get_name(), type(exc).__name__, exc, exc_info=exc)

    async def _look(self, desk: tuple[int, int], t: float) -> None:
        assert self.read_now is not None
        sensors, seats = self.steps[desk]
        for _ in range(4):  # bounded: steps faster than reads are coalesced
            t = self._again.pop(desk, t)
            state = self.controller.state
            shown = {s: state.seats[s].status for s in seats if state is not None and s in state.seats}
            for seat in seats:
                self.floor.on_desk_step(seat, t)
            await asyncio.gather(*(self.read_now(sid) for sid in sensors))
            if any(self.floor.seat_status(s) is not shown.get(s) for s in seats):
                self.controller.seat_news()
            if desk not in self._again:
                break
