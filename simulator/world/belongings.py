"""What a patron brings to a desk, where it lies and what it weighs: the truth behind the load cells.

Every patron's things are drawn once, on arrival (:func:`draw_belongings`), from the plan stream:

- a laptop (the patron's ``laptop`` flag) of 1.2-2.5 kg, on the desk while they work and during a
  break, taken when they go;
- books and notes (``books_share``) of 0.3-2 kg, on the desk, left there during a break;
- a cup (``cup_share``) of 0.25-0.45 kg with what is in it, on the desk; taken along on a break by
  half of those who have one (a coffee to finish in the corridor);
- a bag (``bag_share``) of 1-6 kg: on the floor by the chair while they sit; during a break it
  stays at the seat, on the desk (``bag_on_desk_share``) or on the chair, where the desk's load
  cell cannot weigh it. A patron who claims a seat before sitting (a bag dropped on a seat, nobody
  there) leaves exactly this bag, in the same place.

A coat on the chair back is :class:`~simulator.world.patrons.Patron.coat` (the thermopile's
business: it is warm for a while, and the desk cannot weigh it either).

The load cell under the desktop weighs what lies on the desk: :func:`desk_grams` is that truth
(the simulated HX711 adds its own noise, drift and tare). A seat held by things that are neither
warm nor on the desk, and not marked by the back-soon button, is the residual no sensor of the
gateway sees (:func:`unseen`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Less than this on the desk is no evidence of anything (a pen, a phone, the load cell's drift).
DESK_EVIDENCE_G = 150.0

LAPTOP_G = (1200.0, 2500.0)
BOOKS_G = (300.0, 2000.0)
CUP_G = (250.0, 450.0)
BAG_G = (1000.0, 6000.0)
CUP_TAKEN_ON_BREAK = 0.5


@dataclass(frozen=True)
class Belongings:
    """One patron's things and where they put them (grams; 0 for what they do not carry)."""

    laptop_g: float = 0.0
    books_g: float = 0.0
    cup_g: float = 0.0
    bag_g: float = 0.0
    bag_on_desk: bool = False  # during a break (or a claim) the bag lies on the desk, else on the chair
    cup_stays: bool = True  # the cup stays on the desk during a break

    def on_desk(self, state: str) -> float:
        """Grams on the desk while the patron is ``seated``, ``away`` (a break) or ``claimed`` (only the bag).

        Abandoned things are ``away`` for good.
        """
        if state == "claimed":
            return self.bag_g if self.bag_on_desk else 0.0
        desk = self.laptop_g + self.books_g
        if state == "seated":
            return desk + self.cup_g
        bag = self.bag_g if self.bag_on_desk else 0.0
        return desk + (self.cup_g if self.cup_stays else 0.0) + bag

    def on_chair(self, state: str) -> bool:
        """Something the desk cannot weigh holds the seat (a bag on the chair) while away or claimed."""
        return state != "seated" and self.bag_g > 0.0 and not self.bag_on_desk


def draw_belongings(rng: np.random.Generator, *, laptop: bool, books_share: float, cup_share: float,
                    bag_share: float, bag_on_desk_share: float, needs_bag: bool = False) -> Belongings:
    """One patron's things; ``needs_bag``: they will claim a seat with it, so they have one.

    Every draw is made whatever the shares are, so changing one share leaves the others' draws as
    they were.
    """
    u = rng.random(5)
    masses = rng.uniform(0.0, 1.0, 4)
    has_bag = needs_bag or u[2] < bag_share
    return Belongings(
        laptop_g=float(LAPTOP_G[0] + masses[0] * (LAPTOP_G[1] - LAPTOP_G[0])) if laptop else 0.0,
        books_g=float(BOOKS_G[0] + masses[1] * (BOOKS_G[1] - BOOKS_G[0])) if u[0] < books_share else 0.0,
        cup_g=float(CUP_G[0] + masses[2] * (CUP_G[1] - CUP_G[0])) if u[1] < cup_share else 0.0,
        bag_g=float(BAG_G[0] + masses[3] * (BAG_G[1] - BAG_G[0])) if has_bag else 0.0,
        bag_on_desk=bool(u[3] < bag_on_desk_share),
        cup_stays=bool(u[4] >= CUP_TAKEN_ON_BREAK),
    )


def unseen(things: Belongings, state: str, warm: bool, back_soon: bool) -> bool:
    """A seat held in ``state`` (away or claimed) that no sensor of the gateway can tell from a free one.

    Seen are: something warm (a laptop, a coat its owner warmed), ``DESK_EVIDENCE_G`` or more on
    the desk, or the back-soon button pressed for this break. What is left is a bag on the chair,
    a coat nobody warmed, or nothing at all.
    """
    return not warm and not back_soon and things.on_desk(state) < DESK_EVIDENCE_G
