"""What the simulated library's people get from the running gateway: the display and the staff pager.

The simulated world (:mod:`simulator.world`) never imports the daemon; the runtime
(:mod:`edge_agent.simulate`) hands it these two small adapters over whichever life of the daemon
is running (a power cut starts a new one):

- :class:`GatewayDisplay` is the world's ``AvailabilitySource``: the free seats of
  ``Gateway.availability.snapshot()``, the content of the retained ``zone/{zone}/availability``
  messages and the floor page. While no daemon runs the display is dark (``None``): patrons look
  for a seat themselves.
- :class:`StaffPager` hands every seat the gateway dispatches to the world's staff
  (``World.dispatch_ghost``), once per ghost: the gateway's open ghosts
  (``Gateway.controller.ghosts``, whose new entries are its ``ghost_seat`` events) as the staff's
  phones receive them, with no broker in between (a scenario without a broker still has staff).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection

from edge_agent.assembly import Gateway
from simulator.world.world import World

PAGER_POLL_S = 5.0  # how often the pager looks at the newest floor state (simulated seconds)


class GatewayDisplay:
    """The availability display as patrons see it (see the module docstring)."""

    def __init__(self, gateway: Callable[[], Gateway | None]) -> None:
        self._gateway = gateway

    def free_seat_ids(self) -> Collection[str] | None:
        gw = self._gateway()
        if gw is None:
            return None
        return [sid for zone in gw.availability.snapshot().values() for sid in zone.free_seat_ids]


class StaffPager:
    """Seats the gateway shows ghost, handed to the world's staff once per ghost (see the module docstring)."""

    def __init__(self, gateway: Callable[[], Gateway | None], world: World) -> None:
        self._gateway, self._world = gateway, world
        self._ghost: set[str] = set()
        self.pages = 0

    def check(self) -> None:
        gw = self._gateway()
        if gw is None:
            return
        ghost = set(gw.controller.ghosts.open)
        for sid in sorted(ghost - self._ghost):
            self.pages += 1
            self._world.dispatch_ghost(sid)
        self._ghost = ghost

    async def run(self) -> None:
        while True:
            self.check()
            await asyncio.sleep(PAGER_POLL_S)
