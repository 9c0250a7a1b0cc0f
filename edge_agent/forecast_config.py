"""The forecast's own config sections: ``[calendar]``, ``[history]`` and ``[federation]``.

:class:`ForecastSections` is a base of :class:`edge_agent.config.SiteConfig`, so these tables are
validated with the rest of the file (``edge-agent config check``) and their errors carry the same
key paths (``calendar.periods[2].end: ...``). The calendar's format is
:class:`models.calendar.CalendarDoc` (docs/model.md); weekdays it leaves out open at the site's
``[site] opening_hours``.
"""

from __future__ import annotations

import ipaddress
from datetime import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from models.calendar import CalendarDoc, LibraryCalendar

if TYPE_CHECKING:
    from edge_agent.config import SiteConfig

#: The largest share of the budget a gateway may spend on its released profile.
PROFILE_SHARE_MAX = 0.9
HHMM = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HistoryConf(_Section):
    """The durable zone history in the state directory (``history.sqlite``)."""

    retention_days: int = Field(default=400, ge=30, le=3650, description="Days of counts kept, then pruned.")


class FederationTLS(_Section):
    """TLS to the federation server: the CA that signed its certificate."""

    ca_file: Path


class FederationPrivacy(_Section):
    """Differential privacy of what the gateway sends (docs/model.md: the unit is one zone-day)."""

    epsilon_total: float = Field(default=3.0, gt=0, le=100, description="Lifetime budget; refuse beyond.")
    delta: float = Field(default=1e-5, gt=0, le=1e-3)
    noise_multiplier: float = Field(default=1.0, ge=0.3, le=20, description="Noise std / clip per step.")
    clip: float = Field(default=0.05, gt=0, le=100, description="L2 bound of one zone-day's gradient.")


class FederationConf(_Section):
    """Federated training of the forecast (off by default; needs the ``federation`` extra)."""

    enabled: bool = False
    server: str = Field(default="127.0.0.1:9092", pattern=r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$",
                        description="HOST:PORT of the Flower server.")
    tls: FederationTLS | None = None
    window: tuple[HHMM, HHMM] = Field(default=("02:00", "05:00"), description="Local hours when training may run.")
    cpu_seconds_per_round: float = Field(default=120.0, ge=1, le=3600)
    memory_mb: int = Field(default=200, ge=32, le=4096, description="Bound of the training data in memory.")
    nice: int = Field(default=19, ge=0, le=19, description="Niceness of the training thread.")
    holdout_days: int = Field(default=14, ge=7, le=56, description="Newest days kept out of training, for scoring.")
    adapt_steps: int = Field(default=0, ge=0, le=5000,
                             description="Local steps fitting a delivered model to this floor (0: serve it as is).")
    local_steps: int = Field(default=0, ge=0, le=20000,
                             description="Steps of this gateway's own model, trained on its history alone and served "
                                         "mixed with each delivered model (0: no mixture).")
    profile_share: float = Field(default=0.0, description=(
        "Share of [federation.privacy] epsilon_total spent releasing this gateway's zone profiles once, so its DP "
        "training reads the typed-profile columns from the release (0: no release, in-day columns only; 0.3 with "
        "the server's --inputs profile is the measured released-profile method)."))
    privacy: FederationPrivacy = FederationPrivacy()

    @field_validator("profile_share")
    @classmethod
    def _share(cls, value: float) -> float:
        if not 0.0 <= value <= PROFILE_SHARE_MAX:
            raise ValueError(f"profile_share must be from 0 (no released profile) to {PROFILE_SHARE_MAX}, not "
                             f"{value}: it is the share of [federation.privacy] epsilon_total the release spends, "
                             f"and DP training needs the rest")
        return value

    @model_validator(mode="after")
    def _tls_off_loopback(self) -> FederationConf:
        if self.enabled and self.tls is None and not _loopback(self.server.rsplit(":", 1)[0]):
            raise ValueError(f"server {self.server} is not on this machine: add [federation.tls] ca_file")
        return self


def _loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ForecastSections(_Section):
    """The sections :class:`edge_agent.config.SiteConfig` inherits from this module."""

    calendar: CalendarDoc = CalendarDoc()
    history: HistoryConf = HistoryConf()
    federation: FederationConf = FederationConf()


def site_calendar(cfg: SiteConfig, doc: CalendarDoc | None = None) -> LibraryCalendar:
    """The site's calendar (``doc``, else the config's ``[calendar]``), the site's hours as the default."""
    opens, closes = (time.fromisoformat(h) for h in cfg.site.opening_hours)
    return LibraryCalendar.from_doc(doc if doc is not None else cfg.calendar, (opens, closes))
