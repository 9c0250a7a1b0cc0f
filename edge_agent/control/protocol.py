"""The control-socket protocol: what a technician's CLI may ask the running daemon.

Wire format: JSON lines over a unix socket. The client writes one request object per line::

    {"id": 7, "op": "read_sensor", "args": {"sensor": "lux-z1-quiet"}}

and the server answers each with exactly one line, in order::

    {"id": 7, "ok": true, "result": {...}}
    {"id": 7, "ok": false, "error": "unknown sensor 'lux-z1-quiit'; closest: lux-z1-quiet"}

Requests are validated with pydantic (a union discriminated on ``op``), so a typo or a wrong
type is answered with an error line and the connection stays usable. ``sensors watch`` is a
client loop of ``read_sensor`` requests on one connection: no streaming state on the server,
and a slow terminal can never back the daemon up.

Who did something is never taken from the request: the server fills ``user`` in from the peer's
kernel credentials (SO_PEERCRED), so calibration history names the real OS account.

A remote operator tool signs its requests like an MQTT command (an ``auth`` object covering the
whole request, edge_agent.trust.envelope); a refused one is answered
``{"id": 7, "ok": false, "error": "...", "code": "forbidden"}`` with the refusal reason.

The daemon implements :class:`ControlTarget`; :class:`~edge_agent.control.server.ControlServer`
turns requests into calls on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal, NotRequired, Protocol, TypedDict, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from drivers.errors import EdgeError
from edge_agent.building.operations import BuildingArgs
from edge_agent.control.nodes import NodeArgs, NodeOtaStartArgs, NodeOtaUploadArgs
from edge_agent.control.wire import unknown_id_message

#: A calibratable quantity: which ones a sensor has is its kind's (drivers.kinds), checked by the daemon.
Quantity = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
SensorId = Annotated[str, Field(min_length=1, max_length=64)]


class ControlRefused(EdgeError, ValueError):
    """The daemon understood the request but will not do it; the message says why and what to do."""


class UnknownIdError(ControlRefused, LookupError):
    """An id that is not configured; the message lists the closest configured ids."""

    def __init__(self, what: str, wanted: str, known: Iterable[str]) -> None:
        self.what = what
        self.wanted = wanted
        self.known = sorted(known)
        super().__init__(unknown_id_message(what, wanted, self.known))


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoArgs(_Request):
    """Operations that take no arguments."""


class SensorArgs(_Request):
    sensor: SensorId


class ReadSensorArgs(SensorArgs):
    show_position: bool = False  # a UWB tag's x/y: local technicians only, recorded in the audit log


class CalibrateArgs(_Request):
    sensor: SensorId
    quantity: Quantity
    reference: float = Field(allow_inf_nan=False)
    fresh: bool = False  # light: start a new session instead of adding a second point


class UndoArgs(_Request):
    sensor: SensorId
    quantity: Quantity  # also "thermal" (background) and "position" (anchors)


class AnchorArgs(_Request):
    anchor: SensorId
    x: float = Field(allow_inf_nan=False, ge=-1000, le=1000)
    y: float = Field(allow_inf_nan=False, ge=-1000, le=1000)
    z: float = Field(allow_inf_nan=False, ge=-10, le=100)


class ActuatorTestArgs(_Request):
    actuator: SensorId
    level: float = Field(allow_inf_nan=False)
    duration_s: float = Field(default=10.0, gt=0, le=600)


class _Envelope(_Request):
    id: int | str | None = None
    on_behalf_of: str | None = Field(default=None, max_length=64)  # SUDO_USER; honoured for root peers only
    auth: dict[str, Any] | None = None  # a remote operator tool's signature (edge_agent.trust.envelope)


class PingRequest(_Envelope):
    op: Literal["ping"]
    args: NoArgs = NoArgs()


class StatusRequest(_Envelope):
    op: Literal["status"]
    args: NoArgs = NoArgs()


class SensorsRequest(_Envelope):
    op: Literal["sensors"]
    args: NoArgs = NoArgs()


class ReadSensorRequest(_Envelope):
    op: Literal["read_sensor"]
    args: ReadSensorArgs


class CalibrateRequest(_Envelope):
    op: Literal["calibrate"]
    args: CalibrateArgs


class CalibrateUndoRequest(_Envelope):
    op: Literal["calibrate_undo"]
    args: UndoArgs


class CalibrationHistoryRequest(_Envelope):
    op: Literal["calibration_history"]
    args: SensorArgs


class ThermalBackgroundRequest(_Envelope):
    op: Literal["thermal_capture_background"]
    args: SensorArgs


class SetAnchorRequest(_Envelope):
    op: Literal["set_anchor"]
    args: AnchorArgs


class ActuatorsRequest(_Envelope):
    op: Literal["actuators"]
    args: NoArgs = NoArgs()


class ActuatorTestRequest(_Envelope):
    op: Literal["actuator_test"]
    args: ActuatorTestArgs


class DiagnosticsRequest(_Envelope):
    op: Literal["diagnostics"]
    args: NoArgs = NoArgs()


class BuildingRequest(_Envelope):
    """DALI and BACnet commissioning and look-ups (edge_agent.building.operations)."""

    op: Literal["building"]
    args: BuildingArgs


class NodeOtaUploadRequest(_Envelope):  # bridge nodes: edge_agent.control.nodes
    op: Literal["node_ota_upload"]
    args: NodeOtaUploadArgs


class NodeOtaStartRequest(_Envelope):
    op: Literal["node_ota_start"]
    args: NodeOtaStartArgs


class NodeOtaStatusRequest(_Envelope):
    op: Literal["node_ota_status"]
    args: NodeArgs


class SeatArgs(_Request):
    seat: SensorId


class ReleaseSeatRequest(_Envelope):
    """Staff cleared a seat (``edge-agent seats release SEAT``)."""

    op: Literal["release_seat"]
    args: SeatArgs


class SeatsRequest(_Envelope):
    """Seat states, ghost seats and availability (``edge-agent seats list``)."""

    op: Literal["seats"]
    args: NoArgs = NoArgs()


class PrivacyArgs(_Request):
    """A patron's rights, asked by a technician on the gateway (edge_agent.privacy.subjects)."""

    action: Literal["export", "erase"]
    subject: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class PrivacyRequest(_Envelope):
    op: Literal["privacy"]
    args: PrivacyArgs


class ReloadConfigRequest(_Envelope):
    """The local way to reload the site config (keys rotated or revoked take effect with it)."""

    op: Literal["reload_config"]
    args: NoArgs = NoArgs()


Request = Annotated[
    PingRequest
    | StatusRequest
    | SensorsRequest
    | ReadSensorRequest
    | CalibrateRequest
    | CalibrateUndoRequest
    | CalibrationHistoryRequest
    | ThermalBackgroundRequest
    | SetAnchorRequest
    | ActuatorsRequest
    | ActuatorTestRequest
    | DiagnosticsRequest
    | BuildingRequest
    | NodeOtaUploadRequest
    | NodeOtaStartRequest
    | NodeOtaStatusRequest
    | ReleaseSeatRequest
    | SeatsRequest
    | ReloadConfigRequest
    | PrivacyRequest,
    Field(discriminator="op"),
]

REQUEST: TypeAdapter[Request] = TypeAdapter(Request)

OPS: tuple[str, ...] = (
    "ping", "status", "sensors", "read_sensor", "calibrate", "calibrate_undo", "calibration_history",
    "thermal_capture_background", "set_anchor", "actuators", "actuator_test", "diagnostics", "building",
    "node_ota_upload", "node_ota_start", "node_ota_status", "reload_config", "release_seat", "seats", "privacy",
)  # fmt: skip

#: Operations that only read: everything else changes the floor and goes into the audit log.
READ_OPS = frozenset({"ping", "status", "sensors", "read_sensor", "calibration_history", "actuators", "diagnostics",
                      "node_ota_status", "seats"})


# ---- results: what the daemon returns (JSON-ready; extra keys are allowed and shown by --json) ----


class BrokerState(TypedDict):
    host: str
    port: int
    connected: bool
    since: float | None  # wall time of the last connect / disconnect
    last_error: str


class OutboxState(TypedDict):
    depth: int  # messages waiting
    bytes: int
    oldest_age_s: float | None


class Actuation(TypedDict):
    actuator: str
    value: float
    at: float  # wall time
    source: str  # rule id, "command", "override:<user>"


class StatusResult(TypedDict):
    site: str
    gateway: str
    pid: int
    uptime_s: float
    simulated: bool
    broker: BrokerState
    outbox: OutboxState
    clock_synced: bool
    sensors_healthy: int
    sensors_unhealthy: list[str]  # ids
    last_actuation: Actuation | None
    faults: NotRequired[list[str]]  # supervised tasks crashing in a loop, one line each
    ghosts: NotRequired[dict[str, Any]]  # ghost seats open, cleared, and the time from ghost to cleared


class SensorInfo(TypedDict):
    id: str
    kind: str  # config kind: bh1750, sht31, scd41, amg8833, pir, dwm1001
    zone: str | None
    bus: str | None
    address: int | None
    healthy: bool
    reason: str
    last_values: dict[str, float]  # quantity -> calibrated value
    last_good_age_s: float | None
    seats: NotRequired[list[str]]  # the seats it covers (thermopiles, load cells)
    desks: NotRequired[list[str]]  # a load cell: the desks it stands under


class ThermalSummary(TypedDict):
    max_c: float
    min_c: float
    mean_c: float
    people: int
    background_age_s: NotRequired[float | None]


class SensorReading(TypedDict):
    id: str
    kind: str
    raw: dict[str, float]  # quantity -> value as the driver returned it
    calibrated: dict[str, float]  # quantity -> value after the calibration store
    units: dict[str, str]
    thermal: NotRequired[ThermalSummary]
    measuring_for_s: NotRequired[float]  # SCD41: time in periodic measurement (FRC precondition)
    position_age_s: NotRequired[float]  # a configured tag's fix, with --show-position: how old it is


class Coefficients(TypedDict):
    gain: float
    offset: float


class CalibrationResult(TypedDict):
    sensor: str
    quantity: str
    action: str  # gain | two-point | offset | frc | undo | thermal-background | position
    old: dict[str, Any]
    new: dict[str, Any]
    reference: float | None
    raw: float | None
    note: str


class HistoryEntry(TypedDict):
    at: float
    synced: bool
    user: str
    quantity: str
    action: str
    old: dict[str, Any]
    new: dict[str, Any]
    reference: float | None
    raw: float | None
    undone: bool


class ActuatorInfo(TypedDict):
    id: str
    kind: str
    zone: str | None
    value: float | None  # last commanded
    read_back: float | None
    source: str  # who holds it: rule id, "command", "override:<user>", "idle"
    healthy: bool


class ActuatorTestResult(TypedDict):
    actuator: str
    level: float
    duration_s: float
    previous: float | None
    restores_at: float  # wall time


class DeviceProbe(TypedDict):
    sensor: str
    bus: str
    address: int | None
    answered: bool
    detail: str


class Diagnostics(TypedDict):
    pid: int
    state_dir: str
    broker: BrokerState
    outbox: OutboxState
    devices: list[DeviceProbe]  # expected devices, probed by the daemon that owns the buses


@runtime_checkable
class ControlTarget(Protocol):
    """What the daemon exposes to the control socket. Every method is a coroutine.

    Raise :class:`ControlRefused` (or :class:`UnknownIdError`, or any ``EdgeError`` /
    ``ValueError`` / ``LookupError``) with a one-line, actionable message to refuse; the server
    sends that line back. Any other exception is reported as an internal error and logged.
    ``user`` is the OS account of the peer, resolved by the server from SO_PEERCRED.
    """

    async def status(self) -> StatusResult: ...

    async def sensors(self) -> list[SensorInfo]: ...

    async def read_sensor(self, sensor: str, *, show_position: bool = False) -> SensorReading:
        """A fresh reading (not the cached one), raw and calibrated; a UWB tag's position only when asked."""
        ...

    async def calibrate(
        self, sensor: str, quantity: Quantity, reference: float, user: str, *, fresh: bool = False
    ) -> CalibrationResult:
        """lux: gain, or two-point with the previous point; temperature/humidity: offset; co2: SCD41 FRC.

        Refuse an unhealthy sensor; for co2 refuse unless periodic measurement has run for
        :data:`edge_agent.calibration.FRC_MIN_RUNNING_S`. Apply the new coefficients live and
        publish the change as an event.
        """
        ...

    async def calibrate_undo(self, sensor: str, quantity: str, user: str) -> CalibrationResult: ...

    async def calibration_history(self, sensor: str) -> list[HistoryEntry]: ...

    async def thermal_capture_background(self, sensor: str, user: str) -> CalibrationResult:
        """Capture the empty-room background; refuse while people are detected."""
        ...

    async def set_anchor(self, anchor: str, x: float, y: float, z: float, user: str) -> CalibrationResult: ...

    async def actuators(self) -> list[ActuatorInfo]: ...

    async def actuator_test(self, actuator: str, level: float, duration_s: float, user: str) -> ActuatorTestResult:
        """A timed override through the arbiter; the previous owner's value is restored afterwards."""
        ...

    async def diagnostics(self) -> Diagnostics: ...

    async def release_seat(self, seat: str, user: str) -> dict[str, Any]:
        """Staff cleared the seat: mark it free now (``seat_released``, with ``ghost_to_release_s``)."""
        ...

    async def seats(self) -> dict[str, Any]:
        """Seat states by zone, ghost seats and their dispatch figures, availability."""
        ...

    async def building(self, args: BuildingArgs) -> dict[str, Any]:
        """A DALI or BACnet operation (scan, assign, group, discover, read, health)."""
        ...
