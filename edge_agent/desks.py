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
  ``node = N``) see motion, as a PIR on a GPIO pin would.

Every change wakes the decide loop, so the indicator and the availability follow at once.
"""

from __future__ import annotations

import logging

from edge_agent.config import SiteConfig
from edge_agent.controller import FloorController
from edge_agent.sensing.floor import FloorModel
from firmware_bridge.link import NodeEvent

log = logging.getLogger("edge_agent.desks")


class DeskInputs:
    """Routes node events to seats and zones (see module docstring)."""

    def __init__(self, cfg: SiteConfig, floor: FloorModel, controller: FloorController) -> None:
        self.floor = floor
        self.controller = controller
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

    def on_node_event(self, event: NodeEvent) -> None:
        """A listener for :meth:`firmware_bridge.link.BridgeLink.add_listener`."""
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
