"""The daemon's side of the control socket.

``async with ControlServer(path, target, group="edge-agent"):`` binds a unix socket (mode 0660,
group of the service), accepts technicians' CLI connections and answers JSON-line requests by
calling the daemon's :class:`~edge_agent.control.protocol.ControlTarget`.

Who may connect is decided from the kernel's view of the peer (SO_PEERCRED), not from file
modes alone: root, the daemon's own uid, and members of the socket's group (primary or
supplementary, read from ``/proc/<pid>/status``). Everyone else gets one error line and is
disconnected. A request that is not valid JSON, is too long, names an unknown op or has wrong
argument types gets an error line; the connection and the server carry on.

A remote operator tool's request (one carrying ``auth``, or from an account listed in
``[security] signed_socket_users``) must be signed like an MQTT command; a refusal line then
carries the reason as ``code``. Every operation that changes something is written to the audit
log with the peer's OS account (and the key, when signed), done or refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import pwd
import socket
import stat
import struct
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from pydantic import ValidationError

from drivers.errors import EdgeError
from edge_agent.control import protocol as p
from edge_agent.control.nodes import NodeTarget
from edge_agent.control.wire import MAX_LINE
from edge_agent.trust.envelope import Verdict

log = logging.getLogger(__name__)

#: How long one target call may take (an SCD41 FRC needs ~1 s; a stuck bus must not hang the CLI).
REQUEST_TIMEOUT_S = 30.0

_UCRED = struct.Struct("3i")  # struct ucred { pid_t pid; uid_t uid; gid_t gid; }


@dataclass(frozen=True, slots=True)
class PeerCred:
    """The connecting process as the kernel saw it at connect time."""

    pid: int
    uid: int
    gid: int


def peer_cred(sock: socket.socket) -> PeerCred:
    """Read SO_PEERCRED from a connected unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCred(pid, uid, gid)


def supplementary_groups(cred: PeerCred) -> set[int]:
    """The peer's groups: from /proc/<pid>/status (exact for that process), else the group database."""
    try:
        for line in Path(f"/proc/{cred.pid}/status").read_text().splitlines():
            if line.startswith("Groups:"):
                return {int(g) for g in line.split()[1:]} | {cred.gid}
    except (OSError, ValueError):
        pass
    try:
        name = pwd.getpwuid(cred.uid).pw_name
        return set(os.getgrouplist(name, cred.gid))
    except (KeyError, OSError):
        return {cred.gid}


def refusal(cred: PeerCred, *, daemon_uid: int, socket_gid: int | None, groups: Collection[int]) -> str | None:
    """None when the peer may use the socket, else the one-line reason it may not.

    Pure, so the policy is tested on its own with made-up credentials.
    """
    if cred.uid in (0, daemon_uid):
        return None
    if socket_gid is not None and (cred.gid == socket_gid or socket_gid in groups):
        return None
    group = _group_name(socket_gid) if socket_gid is not None else "the service group"
    return (
        f"permission denied: uid {cred.uid} is not root, the daemon's user, or in group {group}; "
        f"ask an admin to run: usermod -aG {group} {_user_name(cred.uid)}"
    )


class SocketGuard(Protocol):
    """The gateway's trust as the socket uses it (edge_agent.trust.gateway.GatewayTrust)."""

    async def authorise_socket(self, op: str, request: dict[str, Any], peer: str) -> Verdict | None: ...
    def record(self, kind: str, actor: str, data: dict[str, Any]) -> None: ...


#: The audit record kind of each operation that changes something (others: "technician").
AUDIT_KIND = {"calibrate": "calibration", "calibrate_undo": "calibration", "thermal_capture_background": "calibration",
              "set_anchor": "calibration", "actuator_test": "override", "node_ota_start": "firmware",
              "reload_config": "config", "privacy": "privacy"}
UNAUDITED_OPS = p.READ_OPS | {"node_ota_upload"}  # pieces of an image: its start is recorded


def user_label(cred: PeerCred, on_behalf_of: str | None) -> str:
    """The OS account for history entries; a root peer may name the sudo user behind it."""
    name = _user_name(cred.uid)
    if cred.uid == 0 and on_behalf_of:
        return f"{on_behalf_of} (via {name})"
    return name


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid{uid}"


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


class ControlServer:
    """Serves one :class:`ControlTarget` on a unix socket for as long as the context is open."""

    def __init__(self, path: str | os.PathLike[str], target: p.ControlTarget, *, group: str | None = None,
                 guard: SocketGuard | None = None) -> None:
        self.path = Path(path)
        self.target = target
        self.group = group
        self.guard = guard
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._socket_gid: int | None = None

    async def __aenter__(self) -> ControlServer:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_socket(self.path)
        self._server = await asyncio.start_unix_server(self._on_connect, path=str(self.path), limit=MAX_LINE)
        try:
            gid = grp.getgrnam(self.group).gr_gid if self.group else -1
            if gid != -1:
                os.chown(self.path, -1, gid)
            os.chmod(self.path, 0o660)
            self._socket_gid = self.path.stat().st_gid
        except (KeyError, OSError) as exc:
            await self.__aexit__(None, None, None)
            raise EdgeError(f"control socket {self.path}: cannot set group {self.group!r} / mode 0660: {exc}") from exc
        log.info("control socket listening on %s (group %s)", self.path, _group_name(self._socket_gid))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            if self._connections:
                await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cred = peer_cred(writer.get_extra_info("socket"))
        why = refusal(
            cred, daemon_uid=os.getuid(), socket_gid=self._socket_gid, groups=supplementary_groups(cred)
        )
        if why is not None:
            log.warning("control socket: refused pid %d uid %d", cred.pid, cred.uid)
            await _send(writer, {"id": None, "ok": False, "error": why})
            await _linger(reader, writer)
            return
        async for line in _lines(reader):
            if line is None:
                await _send(writer, _error(None, f"request longer than {MAX_LINE} bytes; refused"))
                continue
            if not line.strip():
                continue
            await _send(writer, await self._answer(line, cred))

    async def _answer(self, line: bytes, cred: PeerCred) -> dict[str, Any]:
        try:
            doc = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _error(None, f"not valid JSON: {exc}")
        rid = doc.get("id") if isinstance(doc, dict) else None
        if not isinstance(rid, int | str) or isinstance(rid, bool):
            rid = None
        try:
            req = p.REQUEST.validate_python(doc)
        except ValidationError as exc:
            return _error(rid, _validation_line(doc, exc))
        user = user_label(cred, req.on_behalf_of)
        verdict = None if self.guard is None else await self.guard.authorise_socket(req.op, doc, _user_name(cred.uid))
        if verdict is not None and verdict.key_id:
            user = f"{verdict.key_id} via {user}"
        if verdict is not None and not verdict.accepted:
            self._audit(req, user, False, f"{verdict.reason}: {verdict.message}", always=True)
            return {"id": rid, "ok": False, "error": verdict.message, "code": verdict.reason}
        if isinstance(req, p.ReadSensorRequest) and req.args.show_position and verdict is not None:
            message = ("read_sensor: a tag's position is shown to a technician on the gateway only, never to a "
                       "remote tool")
            self._audit(req, user, False, message, always=True)
            return _error(rid, message)
        try:
            result = await asyncio.wait_for(self._dispatch(req, user), REQUEST_TIMEOUT_S)
        except TimeoutError:
            return self._refused(req, user, rid, f"{req.op}: no answer from the daemon within "
                                                 f"{REQUEST_TIMEOUT_S:.0f} s")
        except (EdgeError, ValueError, LookupError, PermissionError) as exc:
            return self._refused(req, user, rid, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        except Exception as exc:
            log.exception("control request %s failed", req.op)
            return self._refused(req, user, rid, f"internal error in {req.op}: {type(exc).__name__}: {exc}; see the "
                                                 "daemon's journal")
        self._audit(req, user, True, "", always=isinstance(req, p.ReadSensorRequest) and req.args.show_position)
        return {"id": rid, "ok": True, "result": result}

    def _refused(self, req: p.Request, user: str, rid: int | str | None, message: str) -> dict[str, Any]:
        self._audit(req, user, False, message)
        return _error(rid, message)

    def _audit(self, req: p.Request, user: str, ok: bool, error: str, *, always: bool = False) -> None:
        """A technician's (or remote tool's) action in the audit log; reads are not recorded unless refused."""
        if self.guard is None or (req.op in UNAUDITED_OPS and not always):
            return
        args = req.args.model_dump(mode="json", exclude={"data", "signature", "subject"})  # a patron: by hash only
        self.guard.record(AUDIT_KIND.get(req.op, "technician"), user,
                          {"op": req.op, "args": args, "ok": ok, **({"error": error[:300]} if error else {})})

    async def _dispatch(self, req: p.Request, user: str) -> Any:
        t = self.target
        match req:
            case p.PingRequest():
                return {"pid": os.getpid(), "user": user, "ops": list(p.OPS)}
            case p.StatusRequest():
                return await t.status()
            case p.SensorsRequest():
                return await t.sensors()
            case p.ReadSensorRequest(args=a):
                return await (t.read_sensor(a.sensor, show_position=True) if a.show_position
                              else t.read_sensor(a.sensor))
            case p.PrivacyRequest(args=a):
                privacy = getattr(t, "privacy", None)
                if privacy is None:
                    raise p.ControlRefused("privacy: this daemon keeps no patron data")
                return await privacy(a.action, a.subject, user)
            case p.CalibrateRequest(args=a):
                return await t.calibrate(a.sensor, a.quantity, a.reference, user, fresh=a.fresh)
            case p.CalibrateUndoRequest(args=a):
                return await t.calibrate_undo(a.sensor, a.quantity, user)
            case p.CalibrationHistoryRequest(args=a):
                return await t.calibration_history(a.sensor)
            case p.ThermalBackgroundRequest(args=a):
                return await t.thermal_capture_background(a.sensor, user)
            case p.SetAnchorRequest(args=a):
                return await t.set_anchor(a.anchor, a.x, a.y, a.z, user)
            case p.ActuatorsRequest():
                return await t.actuators()
            case p.ActuatorTestRequest(args=a):
                return await t.actuator_test(a.actuator, a.level, a.duration_s, user)
            case p.DiagnosticsRequest():
                return await t.diagnostics()
            case p.BuildingRequest(args=a):
                return await t.building(a)
            case p.NodeOtaUploadRequest() | p.NodeOtaStartRequest() | p.NodeOtaStatusRequest():
                return await _node_op(t, req, user)
            case p.ReleaseSeatRequest(args=a):
                return await t.release_seat(a.seat, user)
            case p.SeatsRequest():
                return await t.seats()
            case p.ReloadConfigRequest():
                reload = getattr(t, "reload_config", None)
                if reload is None:
                    raise p.ControlRefused("reload_config: this daemon cannot reload its configuration")
                return await reload()
        raise AssertionError(f"unhandled op {req.op}")  # pragma: no cover - the union is exhaustive


async def _node_op(
    t: object, req: p.NodeOtaUploadRequest | p.NodeOtaStartRequest | p.NodeOtaStatusRequest, user: str
) -> Any:
    """Bridge-node operations, for a daemon that has a bridge line (edge_agent.control.nodes)."""
    if not isinstance(t, NodeTarget):
        raise p.ControlRefused(f"{req.op}: this daemon does not drive firmware-bridge nodes")
    match req:
        case p.NodeOtaUploadRequest(args=a):
            return await t.node_ota_upload(a.node, a.size, a.sha256, a.offset, a.data, user)
        case p.NodeOtaStartRequest(args=a):
            return await t.node_ota_start(a.node, a.sha256, user, a.port, signature=a.signature)
        case p.NodeOtaStatusRequest(args=a):
            return await t.node_ota_status(a.node)


def _remove_stale_socket(path: Path) -> None:
    """Unlink a socket left by a crashed daemon; refuse to steal one that is still served."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise EdgeError(f"control socket {path}: a non-socket file is in the way; remove it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()
        return
    finally:
        probe.close()
    raise EdgeError(f"control socket {path}: another edge-agent is already serving it")


async def _lines(reader: asyncio.StreamReader) -> AsyncIterator[bytes | None]:
    """Yield request lines; an overlong line is dropped up to its newline and yields None once."""
    buf = bytearray()
    discarding = False
    while True:
        chunk = await reader.read(MAX_LINE)
        if not chunk:
            if buf.strip() and not discarding:
                yield bytes(buf)
            return
        buf += chunk
        while (nl := buf.find(b"\n")) >= 0:
            line = bytes(buf[: nl + 1])
            del buf[: nl + 1]
            if discarding:  # the tail of a line already refused
                discarding = False
            elif len(line) > MAX_LINE:
                yield None
            else:
                yield line
        if len(buf) > MAX_LINE:
            if not discarding:
                yield None
                discarding = True
            buf.clear()


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close, then swallow what the peer still sends for a moment before hanging up.

    Closing a unix socket with unread input makes the kernel reset the peer's side, which can
    discard the refusal line before the peer reads it.
    """
    if writer.can_write_eof():
        writer.write_eof()
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(1.0):
            for _ in range(64):  # bounded: a peer streaming junk is cut off after 1 s or 1 MB
                if not await reader.read(MAX_LINE):
                    break


def _validation_line(doc: Any, exc: ValidationError) -> str:
    """One line naming the first problem: unknown op, missing or mistyped argument."""
    if not isinstance(doc, dict):
        return "a request must be a JSON object like {\"id\": 1, \"op\": \"status\", \"args\": {}}"
    op = doc.get("op")
    if not isinstance(op, str) or op not in p.OPS:
        return f"unknown op {op!r}; one of: {', '.join(p.OPS)}"
    err = exc.errors()[0]
    where = ".".join(str(x) for x in err["loc"][1:]) or "request"
    got = err.get("input")
    shown = f" (got {got!r})" if not isinstance(got, dict | list) else ""
    return f"{op}: {where}: {err['msg']}{shown}"


def _error(rid: int | str | None, message: str) -> dict[str, Any]:
    return {"id": rid, "ok": False, "error": message}


async def _send(writer: asyncio.StreamWriter, response: dict[str, Any]) -> None:
    writer.write(json.dumps(response, default=str, separators=(",", ":")).encode() + b"\n")
    await writer.drain()
