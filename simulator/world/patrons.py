"""Patrons: who comes, when, where they sit, how long they stay, and their breaks.

Arrivals are a Poisson process per zone whose rate is :func:`simulator.demand.arrival_rate`, the
rate that sustains the documented occupancy curve of that zone kind and day type; one draw per
simulated minute. Everything a patron will do is drawn once, on arrival, from the patron stream
of the seeded generator, so the same seed gives the same people whatever the daemon does. The
world turns the plan into timed events (sit, break, return, depart); nobody is ticked.

Who hangs a coat on the chair back (``coat_share``) is drawn after every other plan, so the share
changes nothing else about the day's people; who carries a tag when the scenario asks for an
exact number (``tags``), who of them consented to personal preferences and what those are, are
drawn after that, and only when asked for: the other scenarios' days stay as they were. Last come
what they carry (:mod:`simulator.world.belongings`), whether they press "back soon" on a break,
claim a seat before sitting, look at what the gateway shows, and how long they search for a seat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from edge_agent.config import SiteConfig
from simulator import demand
from simulator.world.belongings import Belongings, draw_belongings
from simulator.world.scenario import Patrons as PatronSettings
from simulator.world.thermal import coat_warmth

SHORT_BREAK_MEDIAN_S = 7 * 60.0
TAG_ADDRESS_BASE = 0x2000  # the library's cards: tag addresses from here on
MIN_STAY_S = 30 * 60.0
MAX_STAY_S = 4 * 3600.0


@dataclass
class Break:
    """Leaving the seat with belongings on it; ``returns`` False for the patron who never comes back."""

    after_s: float  # seated time before the break
    length_s: float
    returns: bool = True


@dataclass
class Patron:
    """One visitor and the plan drawn for them on arrival."""

    id: int
    arrival: float  # monotonic seconds at the entrance
    zone: int  # the zone whose demand brought them
    likes_window: bool
    loner: bool
    laptop: bool
    tag: str | None
    skin_c: float  # apparent temperature of head and shoulders to a thermopile
    stay_s: float  # total time holding a seat, breaks included
    breaks: list[Break] = field(default_factory=list)
    seat: int = -1
    seated: bool = False
    away_since: float | None = None  # on a break (belongings on the seat) since
    gone: bool = False
    leave_by: float = math.inf
    abandons: bool = False  # at leaving time, walks out without the belongings
    returning: bool = True  # on a break they will come back from
    coat: bool = False  # hangs a coat on the chair back (left there on breaks, taken at departure)
    coat_w: float = 0.0  # the coat's warmth (0..1) at coat_t; room temperature on arrival
    coat_t: float = 0.0
    consents: bool = False  # consented (in the patron system) to personal desk and lamp preferences
    desk_height_mm: int | None = None  # their preferences, when they consented
    lamp_level: float | None = None
    things: Belongings = field(default_factory=Belongings)
    back_soon: bool = False  # presses the desk's "back soon" button when leaving for a break
    claim_s: float | None = None  # drops a bag on a seat, then away this long before sitting there
    sees_availability: bool = False  # looks at what the gateway shows before looking for a seat
    patience_s: float = 360.0  # gives up looking for a seat after this long
    # State while on the floor (simulator.world.seating), besides seat / seated / away_since / gone.
    arrived_at: float | None = None  # on the floor to take a seat, since
    claiming: bool = False  # the seat holds their bag; they have not sat there yet
    pressed: bool = False  # pressed "back soon" for the break they are on
    has_held: bool = False  # has held a seat today (sat, or claimed one)
    has_sat: bool = False  # has sat down today

    def coat_warmth(self, t: float) -> float:
        """Warmth of the coat on the chair at ``t`` (warming while seated, cooling while away)."""
        return coat_warmth(self.coat_w, self.coat_t, self.seated, t)

    def set_seated(self, seated: bool, t: float) -> None:
        """Sit down or stand up at ``t``; the coat's warmth carries over to its new trend."""
        self.coat_w, self.coat_t = self.coat_warmth(t), t
        self.seated = seated


def draw_arrivals(cfg: SiteConfig, settings: PatronSettings, day_type: str, wall_start: datetime,
                  t_start: float, t_end: float, rng: np.random.Generator) -> list[Patron]:
    """Every arrival of the simulated span, sorted by time, with its whole plan."""
    capacity = np.bincount([[z.id for z in cfg.zones].index(s.zone) for s in cfg.seats], minlength=len(cfg.zones))
    patrons: list[Patron] = []
    minutes = int((t_end - t_start) // 60)
    for m in range(minutes):
        when = wall_start + timedelta(minutes=m)
        for zi, zone in enumerate(cfg.zones):
            if capacity[zi] == 0:
                continue
            rate = demand.arrival_rate(zone.kind, int(capacity[zi]), when, day_type) * settings.demand_scale
            if rate <= 0.0:
                continue
            for _ in range(int(rng.poisson(rate))):
                t = t_start + m * 60.0 + float(rng.uniform(0.0, 60.0))
                patrons.append(_draw_plan(len(patrons), t, zi, zone.kind, day_type, settings, rng))
    for p in patrons:  # after every other draw, so the coat share leaves the rest of the day as it was
        p.coat = bool(rng.random() < settings.coat_share)
    _draw_tags_and_consent(patrons, settings, rng)
    for p in patrons:  # after that again, so these shares leave the day's people as they were
        _draw_seat_habits(p, settings, rng)
    patrons.sort(key=lambda p: p.arrival)
    for i, p in enumerate(patrons):
        p.id = i
        if p.tag is not None:
            p.tag = f"{TAG_ADDRESS_BASE + i:04X}"  # a DWM1001's 16-bit UWB address, as a listener prints it
    return patrons


def _draw_tags_and_consent(patrons: list[Patron], s: PatronSettings, rng: np.random.Generator) -> None:
    """Exactly ``s.tags`` tag carriers (when set), then the consenting ones and their preferences."""
    if s.tags is not None:
        chosen = set(rng.choice(len(patrons), size=min(s.tags, len(patrons)), replace=False).tolist())
        for i, p in enumerate(patrons):
            p.tag = "tag" if i in chosen else None
    carriers = [p for p in patrons if p.tag is not None]
    if s.consenting is not None:
        picked = rng.choice(len(carriers), size=min(s.consenting, len(carriers)), replace=False).tolist()
    elif s.consent_share > 0.0:
        picked = [i for i in range(len(carriers)) if rng.random() < s.consent_share]
    else:
        return
    for i in picked:
        p = carriers[i]
        p.consents = True
        # Sitting desks are set 650-760 mm, standing ones 1000-1200 (a quarter of patrons stand).
        standing = rng.random() < 0.25
        height = rng.normal(1100.0, 60.0) if standing else rng.normal(700.0, 30.0)
        p.desk_height_mm = int(np.clip(round(height / 5.0) * 5, 620, 1250))
        p.lamp_level = round(float(rng.uniform(0.2, 0.9)) * 20) / 20


def _draw_seat_habits(p: Patron, s: PatronSettings, rng: np.random.Generator) -> None:
    """Belongings, back-soon, a claim, the availability display, patience: always the same draws."""
    u = rng.random(3)
    claim = rng.uniform(s.claim_min[0], s.claim_min[1]) * 60.0
    patience = rng.lognormal(math.log(s.search_patience_s), 0.5)
    p.claim_s = float(claim) if u[0] < s.claim_share else None
    p.things = draw_belongings(rng, laptop=p.laptop, books_share=s.books_share, cup_share=s.cup_share,
                               bag_share=s.bag_share, bag_on_desk_share=s.bag_on_desk_share,
                               needs_bag=p.claim_s is not None)
    p.back_soon = bool(u[1] < s.back_soon_share)
    p.sees_availability = bool(u[2] < s.sees_availability_share)
    p.patience_s = float(patience)


def _draw_plan(ident: int, t: float, zone: int, kind: str, day_type: str, s: PatronSettings,
               rng: np.random.Generator) -> Patron:
    mean = demand.mean_stay_min(kind, day_type) * 60.0
    sigma = 0.55
    stay = float(np.clip(rng.lognormal(math.log(mean) - sigma * sigma / 2.0, sigma), MIN_STAY_S, MAX_STAY_S))
    patron = Patron(
        id=ident, arrival=t, zone=zone,
        likes_window=bool(rng.random() < s.window_lovers), loner=bool(rng.random() < s.loners),
        laptop=bool(rng.random() < s.laptop_share),
        tag="tag" if rng.random() < s.tag_share else None,
        skin_c=float(rng.uniform(28.0, 32.0)), stay_s=stay,
    )
    n_breaks = min(4, int(rng.poisson(s.breaks_per_hour * stay / 3600.0)))
    lengths = []
    for _ in range(n_breaks):
        if rng.random() < s.long_break_share:  # lunch or a lecture: longer than the ghost limit
            lengths.append(float(rng.uniform(25.0, 70.0)) * 60.0)
        else:
            lengths.append(float(np.clip(rng.lognormal(math.log(SHORT_BREAK_MEDIAN_S), 0.5), 90.0, 15 * 60.0)))
    seated = max(10 * 60.0, stay - sum(lengths))
    shares = rng.dirichlet(np.ones(n_breaks + 1)) if n_breaks else np.ones(1)
    patron.breaks = [Break(after_s=float(seated * shares[i]), length_s=lengths[i]) for i in range(n_breaks)]
    patron.abandons = bool(rng.random() < s.abandon_share)  # leaves the belongings, gone for the day
    patron.stay_s = stay
    return patron


def choose_seat(patron: Patron, holder: npt.NDArray[np.int64], seat_zone: npt.NDArray[np.int64],
                seat_window: npt.NDArray[np.bool_], neighbours: npt.NDArray[np.float64],
                zone_kind: list[str], rng: np.random.Generator,
                allowed: npt.NDArray[np.bool_] | None = None) -> int:
    """A seat for ``patron`` among ``allowed`` (default: every free one); -1 if there is none.

    First the zone that brought them, then zones of the same kind, then anywhere. Within the
    zone: window lovers weigh window seats x4; loners avoid occupied neighbours (weight
    1/(1+2n)), the others like company (1+n), with n the taken seats within 2.5 m.
    """
    free = holder < 0 if allowed is None else allowed
    kind = zone_kind[patron.zone]
    same_kind = np.array([zone_kind[z] == kind for z in seat_zone])
    for candidates in (free & (seat_zone == patron.zone), free & same_kind, free):
        idx = np.flatnonzero(candidates)
        if len(idx) == 0:
            continue
        return pick_seat(patron, idx, holder, seat_window, neighbours, rng)
    return -1


def pick_seat(patron: Patron, idx: npt.NDArray[np.intp], holder: npt.NDArray[np.int64],
              seat_window: npt.NDArray[np.bool_], neighbours: npt.NDArray[np.float64],
              rng: np.random.Generator) -> int:
    """One of the seats ``idx`` by the patron's taste (windows, company); see :func:`choose_seat`."""
    taken = (holder >= 0).astype(float)
    n = neighbours[idx] @ taken
    weight = np.where(seat_window[idx] & patron.likes_window, 4.0, 1.0)
    weight = weight / (1.0 + 2.0 * n) if patron.loner else weight * (1.0 + n)
    return int(rng.choice(idx, p=weight / weight.sum()))
