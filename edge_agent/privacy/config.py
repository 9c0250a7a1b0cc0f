"""``[privacy]``: what may leave the gateway, in what form, and how long anything is kept on it.

Raw thermal frames, positions and tag ids never leave the gateway whatever this section says.
The rest is a policy per publication and a retention per store, with defaults chosen for a
public library (docs/privacy.md explains each choice):

- **seat states**: ``off`` (no per-seat topic, no seat counts in zone summaries), ``coarse``
  (seat counts per zone only) or ``per_seat`` (the retained ``seat/{seat}/state`` topics as
  well). The default is ``coarse``; ``per_seat_zones`` names the zones whose floor display
  shows seats one by one, and only those get per-seat states.
- **zone counts**, per publication: ``exact``, ``thresholded`` (a count from 1 to ``threshold_k``
  - 1 is withheld) or ``noisy`` (discrete Laplace noise from OpenDP, spending the per-day epsilon
  budget). Zone summaries (operations) default to exact, the hourly data-platform export to noisy.
- **retention**: every store's limit, enforced by one sweep (edge_agent.privacy.retention) at
  start and every ``sweep_interval_s``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from edge_agent.config_base import Id, Strict

SeatStates = Literal["off", "coarse", "per_seat"]
CountsPolicy = Literal["exact", "thresholded", "noisy"]
ExportPolicy = Literal["off", "exact", "thresholded", "noisy"]


class Privacy(Strict):
    """What may leave the gateway. Raw frames, positions and tag ids never do; these tune the rest."""

    # -- publication ------------------------------------------------------------------------------
    seat_states: SeatStates = "coarse"
    per_seat_zones: list[Id] = []  # zones whose floor display shows single seats: per_seat there
    publish_seat_states: bool | None = None  # before seat_states: false is "off", true changes nothing
    zone_counts: CountsPolicy = "exact"  # zone/{zone}/summary: operations need the true count
    export_counts: ExportPolicy = "noisy"  # zone/{zone}/hourly: the data platform's export
    threshold_k: int = Field(default=5, ge=2, le=50)
    daily_epsilon: float = Field(default=3.0, gt=0.0, le=20.0)  # per local day, all noisy releases together
    noise_window_min: int = Field(default=15, ge=5, le=60)  # noisy summaries: one release per zone per window
    # -- retention ----------------------------------------------------------------------------------
    sweep_interval_s: float = Field(default=3600.0, ge=10.0, le=86400.0)
    trace_retention_h: float = Field(default=24.0, ge=0, le=24 * 31)
    tag_salt_file: Path | None = None
    tag_retention_s: float = Field(default=300.0, ge=10, le=24 * 3600)  # a tag unseen this long is forgotten
    command_results_days: float = Field(default=7.0, ge=1.0, le=90.0)  # the command result cache
    calibration_history_days: int = Field(default=730, ge=30, le=3650)  # entries name technicians
    budget_days: int = Field(default=400, ge=31, le=3650)  # the epsilon ledger's daily lines

    @model_validator(mode="after")
    def _legacy(self) -> Privacy:
        if self.publish_seat_states is False and self.seat_states != "off":
            object.__setattr__(self, "seat_states", "off")
            object.__setattr__(self, "per_seat_zones", [])
        return self

    def seat_policy(self, zone: str) -> SeatStates:
        """How a zone's seat states are published."""
        if self.seat_states == "off":
            return "off"
        return "per_seat" if zone in self.per_seat_zones else self.seat_states
