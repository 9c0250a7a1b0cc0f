"""Upstream message models, the topic tree, and the privacy guard.

Every payload that leaves the gateway is one of the pydantic models below, serialised as JSON.
They all share an :class:`Envelope`: schema version, gateway sequence number (persisted, so it
keeps rising across restarts), message id (the idempotency key a central system dedupes on), a
timestamp and whether the wall clock was synchronised when it was taken, and the ``backfill``
flag the uplink sets on replayed backlog.

Privacy by construction: no model has a field for raw frames, positions or tag ids, and
:func:`assert_minimum_necessary` rejects such keys anywhere in a payload before it enters the
outbox, so free-form ``data`` dicts (events, command results) cannot smuggle them out either.

The topic tree (root ``library/v1/{site}/{gateway}/``) is documented in docs/mqtt.md; the JSON
Schemas in docs/schemas/ are generated from these models (``python -m edge_agent.sync.schemas``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from drivers.errors import SyncError

SCHEMA_VERSION = 1
TOPIC_PREFIX = "library/v1"

# One topic level: ids from the config (zones, seats, event kinds, command names).
Segment = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

SeatStatusName = Literal["free", "occupied", "away", "ghost", "unknown"]
QualityName = Literal["good", "stale", "unhealthy", "missing"]
CountsName = Literal["exact", "thresholded", "noisy", "suppressed"]


class PrivacyError(SyncError, ValueError):
    """A payload carries a key that must never leave the gateway (position, tag, frame...)."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


# Keys that would carry raw sensing data or identities upstream. Matched case-insensitively on
# the whole key, at any depth, so "seat_x" is fine but "x" or "tag_id" is not.
FORBIDDEN_KEYS = frozenset(
    {
        "x", "y", "z", "position", "positions", "pos", "coordinates", "coords", "location", "trace", "traces",
        "tag", "tags", "tag_id", "tag_ids", "tagid", "pseudonym", "consented_tag", "ble_address", "mac",
        "pixels", "pixel", "frame", "frames", "thermal", "image", "ranges", "range", "distances",
    }
)  # fmt: skip


def assert_minimum_necessary(payload: Mapping[str, Any] | list[Any], _path: str = "") -> None:
    """Raise :class:`PrivacyError` if any key at any depth names raw or identifying data.

    Called on every payload before it enters the outbox (and on command results), so it is the
    last line of defence should a caller pass a free-form dict with the wrong content. It runs once
    per upstream message, so the common case (plain dicts and lists) avoids the ABC checks and
    builds a key's path only for an error or a nested container.
    """
    if isinstance(payload, Mapping):
        for key in payload:
            if type(key) is not str and not isinstance(key, str):
                raise PrivacyError(f"{_path or '(top)'}: non-string key {key!r}", path=_path)
            if key.lower() in FORBIDDEN_KEYS:
                where = f"{_path}.{key}" if _path else key
                raise PrivacyError(
                    f"{where}: {key!r} is raw or identifying data and never leaves the gateway; "
                    "publish an aggregate (counts, states) instead",
                    path=where,
                )
        for key, value in payload.items():
            if _is_container(value):
                where = f"{_path}.{key}" if _path else str(key)
                assert_minimum_necessary(value if isinstance(value, Mapping) else list(value), where)
    else:
        for i, value in enumerate(payload):
            if _is_container(value):
                assert_minimum_necessary(value if isinstance(value, Mapping) else list(value), f"{_path}[{i}]")


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _is_container(value: Any) -> bool:
    """A mapping, list or tuple (what :func:`assert_minimum_necessary` descends into)."""
    kind = type(value)
    if kind in _SCALARS:
        return False
    return kind is dict or kind is list or isinstance(value, Mapping | list | tuple)


def check_segment(value: str, what: str) -> str:
    """A topic level must be one safe id: no '/', '+', '#' or empty strings reach the topic tree."""
    if not _SEGMENT.match(value):
        raise SyncError(f"{what} {value!r} cannot be a topic level; use letters, digits, '_', '.', '-'")
    return value


def iso_utc(wall: float) -> str:
    """Wall seconds as ISO 8601 UTC with milliseconds (what every ``ts`` field holds)."""
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Topics:
    """Builds every topic of one gateway, so no other module formats topic strings."""

    def __init__(self, site: str, gateway: str) -> None:
        self.root = f"{TOPIC_PREFIX}/{check_segment(site, 'site id')}/{check_segment(gateway, 'gateway id')}"

    @property
    def status(self) -> str:
        return f"{self.root}/status"

    @property
    def health(self) -> str:
        return f"{self.root}/health"

    def zone_summary(self, zone: str) -> str:
        return f"{self.root}/zone/{check_segment(zone, 'zone id')}/summary"

    def zone_forecast(self, zone: str) -> str:
        return f"{self.root}/zone/{check_segment(zone, 'zone id')}/forecast"

    def zone_hourly(self, zone: str) -> str:
        return f"{self.root}/zone/{check_segment(zone, 'zone id')}/hourly"

    def zone_availability(self, zone: str) -> str:
        return f"{self.root}/zone/{check_segment(zone, 'zone id')}/availability"

    def seat_state(self, seat: str) -> str:
        return f"{self.root}/seat/{check_segment(seat, 'seat id')}/state"

    @property
    def calendar(self) -> str:
        return f"{self.root}/calendar"

    def event(self, kind: str) -> str:
        return f"{self.root}/event/{check_segment(kind, 'event kind')}"

    @property
    def actuation(self) -> str:
        return f"{self.root}/actuation"

    @property
    def commands(self) -> str:
        """Subscription filter for every command."""
        return f"{self.root}/cmd/+"

    def command_result(self, name: str) -> str:
        return f"{self.root}/cmd/{name}/result"

    @property
    def audit_head(self) -> str:
        return f"{self.root}/audit/head"

    def ha_light_set(self, zone: str) -> str:
        return f"{self.root}/ha/zone/{check_segment(zone, 'zone id')}/light/set"


class Model(BaseModel):
    """Base of every payload: unknown fields are refused when parsing (central tools, tests)."""

    model_config = ConfigDict(extra="forbid")


class Envelope(Model):
    """Fields every upstream message carries."""

    schema_version: int = Field(
        default=SCHEMA_VERSION, description="Payload schema version (breaking changes bump it)."
    )
    seq: int = Field(ge=0, description="Gateway sequence number: strictly increasing, persisted across restarts.")
    msg_id: str = Field(description="Idempotency key: '{gateway}:{epoch}:{seq}'. Dedupe on it.")
    ts: str = Field(description="When the message was produced, ISO 8601 UTC.")
    clock_synced: bool = Field(description="False when the gateway wall clock was not yet NTP-synchronised.")
    backfill: bool = Field(default=False, description="True when replayed from the outbox after an outage.")


class Status(Envelope):
    """Retained on ``status``: the birth message; the broker's last will replaces it with offline."""

    state: Literal["online", "offline"]
    version: str | None = None
    config_hash: str | None = None
    started_at: str | None = None


class Health(Envelope):
    """Periodic gateway health on ``health``."""

    uptime_s: float = Field(ge=0)
    outbox_depth: int = Field(ge=0, description="Messages waiting in the outbox.")
    outbox_bytes: int = Field(ge=0)
    outbox_oldest_age_s: float | None = Field(default=None, description="Age of the oldest waiting message.")
    dropped: int = Field(ge=0, description="Messages dropped by the outbox bounds since the state dir was created.")
    sensors_healthy: int = Field(ge=0)
    sensors_unhealthy: int = Field(ge=0)
    cpu_percent: float | None = None
    rss_bytes: int | None = None
    connected_since: str | None = None
    privacy_epsilon_spent: float | None = Field(default=None, ge=0, description="Epsilon spent by noisy "
                                                "publications in the current opening day ([privacy] daily_epsilon; "
                                                "docs/privacy.md).")
    privacy_epsilon_budget: float | None = Field(default=None, gt=0, description="The opening day's epsilon "
                                                 "budget.")
    ghost_seats: int | None = Field(default=None, ge=0, description="Ghost seats waiting for staff now.")
    ghost_to_release_s_p50: float | None = Field(default=None, ge=0, description="Median time from ghost to "
                                                 "cleared over the recent ghost seats, seconds.")
    ghost_to_release_s_p90: float | None = Field(default=None, ge=0)


class Measure(Model):
    value: float | None
    quality: QualityName


class ZoneSummary(Envelope):
    """Periodic (and on significant change) on ``zone/{zone}/summary``."""

    zone: Segment
    people: Measure
    seats_total: int = Field(ge=0)
    free: int | None = Field(ge=0, description="null when [privacy] withholds the zone's seat counts.")
    occupied: int | None = Field(ge=0)
    away: int | None = Field(ge=0)
    ghost: int | None = Field(ge=0)
    unknown: int | None = Field(ge=0)
    lux: Measure
    temperature: Measure = Field(description="Degrees Celsius.")
    humidity: Measure = Field(description="Relative humidity, percent.")
    co2: Measure = Field(description="CO2, ppm.")
    occupancy_healthy: bool
    counts_policy: CountsName = Field(default="exact", description="How people and seat counts were treated "
                                      "([privacy] zone_counts): exact, thresholded, noisy, or suppressed (withheld).")


class ZoneHourly(Envelope):
    """On ``zone/{zone}/hourly``: the zone's mean people count over one local hour (the data-platform export)."""

    zone: Segment
    start: str = Field(description="Start of the hour, ISO 8601 with the site's UTC offset.")
    end: str = Field(description="End of the hour (exclusive).")
    people_mean: float | None = Field(ge=0, description="Mean people over the hour's samples; null when withheld.")
    samples: int = Field(ge=0, description="How many samples of the floor the mean is over.")
    counts_policy: CountsName = Field(description="[privacy] export_counts: exact, thresholded, noisy; "
                                      "suppressed when withheld (a small count, or the day's budget spent).")
    epsilon: float | None = Field(default=None, gt=0, description="Epsilon this hour's release spent (noisy).")
    noise_scale: float | None = Field(default=None, gt=0, description="Laplace scale of the noise on people_mean "
                                      "(noisy): |error| <= 1/samples + noise_scale * ln(2/alpha) with "
                                      "probability 1 - alpha.")


class ZoneAvailabilityMessage(Envelope):
    """Retained on ``zone/{zone}/availability``: what an arriving patron may know, nothing about anyone."""

    zone: Segment
    name: str = Field(description="The zone's name from the site config (its id when it has none).")
    seats_total: int = Field(ge=0)
    free: int = Field(ge=0, description="Seats free now.")
    ready_soon: int = Field(ge=0, description="Ghost seats (staff sent to clear them) and away seats whose hold "
                            "ends within [sensing] ready_soon_s: likely free within minutes.")
    occupied: int = Field(ge=0)
    away: int = Field(ge=0)
    ghost: int = Field(ge=0)
    unknown: int = Field(ge=0, description="Seats whose sensors cannot tell now.")
    free_seat_ids: list[Segment] = Field(description="The free seats, by id (the coarse map: a display "
                                         "places them on its own floor plan).")
    ready_soon_ids: list[Segment] = Field(description="The ready-soon seats, by id.")


class ForecastPoint(Model):
    horizon_min: int = Field(gt=0)
    expected: float = Field(ge=0)
    p10: float = Field(ge=0)
    p90: float = Field(ge=0)


class ZoneForecast(Envelope):
    """Seat-demand forecast on ``zone/{zone}/forecast``: expected people per horizon with a band."""

    zone: Segment
    points: list[ForecastPoint]


class SeatState(Envelope):
    """Retained on ``seat/{seat}/state``: the seat's status and since when (wall time)."""

    seat: Segment
    zone: Segment
    status: SeatStatusName
    since: str


class CalendarState(Envelope):
    """Retained on ``calendar``: the site calendar in force, where it came from, and today under it."""

    source: Literal["config", "command"] = Field(
        description="config: the site config's [calendar]; command: the last set_calendar (kept across restarts)."
    )
    digest: str = Field(description="SHA-256 (first 12 hex) of the calendar document: compare to see a change.")
    today: str = Field(description="The gateway's local date when this was published (republished after midnight).")
    day_type: Literal["term", "exam", "holiday"] = Field(description="Today's day type under this calendar.")
    hours: list[str] | None = Field(description='Today\'s opening hours ["HH:MM", "HH:MM"]; null when closed.')
    calendar: dict[str, Any] = Field(description="The calendar document (cmd_set_calendar.json's calendar).")


class Event(Envelope):
    """On ``event/{kind}``: faults, calibration, overrides, missed deadlines..."""

    kind: Segment
    severity: Literal["info", "warning", "error"] = "info"
    data: dict[str, Any] = Field(default_factory=dict)


class Actuation(Envelope):
    """On ``actuation``: one change the arbiter applied to an output."""

    actuator: Segment
    kind: str = Field(description="What changed: light_level, desk_height, ventilation...")
    old: float | str | None
    new: float | str | None
    rule_id: str = ""
    priority: str = Field(description="schedule | automation | preference | override | safety")
    latency_ms: float | None = Field(default=None, ge=0, description="From the triggering condition to confirmation.")
    reason: str = ""


class CommandError(Model):
    code: Literal["bad_json", "bad_request", "unknown_command", "too_large", "failed", "privacy", "unsigned",
                  "unknown_key", "bad_signature", "expired", "replayed", "forbidden"]
    message: str


class AuthNote(Model):
    """What the gateway checked of a request's signature (absent while signatures are off)."""

    policy: Literal["required", "log-only"]
    key_id: str | None = Field(description="The key that signed the request; null when unsigned.")
    role: str | None = None
    expiry_checked: bool = Field(description="False while the gateway's clock is not synchronised: then only the "
                                 "signature, the key's role and the nonce were checked, not the expiry.")
    would_refuse: str | None = Field(default=None, description="Under log-only: the refusal this request would get.")


class GatewaySignature(Model):
    """The gateway key's Ed25519 signature over the canonical payload without ``signature`` and ``backfill``."""

    key_id: str
    value: str = Field(description="Base64, 64 bytes.")


class CommandResult(Envelope):
    """On ``cmd/{name}/result`` (or the request's MQTT 5 response topic)."""

    command: str
    request_id: str | None = Field(description="The request's id; null only when it could not be read.")
    ok: bool
    result: dict[str, Any] | None = None
    error: CommandError | None = None
    replayed: bool = Field(default=False, description="True when answered from the result cache (not executed again).")
    auth: AuthNote | None = None
    signature: GatewaySignature | None = Field(default=None, description="When the request asked (auth.sign_result).")


class AuditHead(Envelope):
    """Retained on ``audit/head``: the audit log's latest record, signed with the gateway key."""

    gateway: str = Field(description="'{site}/{gateway}'.")
    audit_seq: int = Field(ge=0, description="Sequence number of the latest audit record (0: none yet).")
    hash: str = Field(description="That record's SHA-256, hex.")
    key_id: str = Field(description="The gateway key's id.")
    public_key: str = Field(description="The gateway's Ed25519 public key, base64 (pin it once, out of band).")
    signature: str = Field(description="Base64 Ed25519 over the canonical {audit_seq, gateway, hash}.")


# Models that go into docs/schemas/, by schema file stem.
UPSTREAM_MODELS: dict[str, type[Model]] = {
    "status": Status,
    "health": Health,
    "zone_summary": ZoneSummary,
    "zone_forecast": ZoneForecast,
    "zone_hourly": ZoneHourly,
    "zone_availability": ZoneAvailabilityMessage,
    "seat_state": SeatState,
    "calendar": CalendarState,
    "event": Event,
    "actuation": Actuation,
    "command_result": CommandResult,
    "audit_head": AuditHead,
}
