"""Commands from central systems: validation, dispatch to the daemon, a replay-safe result cache.

A request arrives on ``cmd/{name}`` as ``{"id": "...", "args": {...}}``. It is checked in this order,
and the first failure becomes an error result that changes nothing:

1. size (``max_request_bytes``) -> ``too_large``;
2. JSON object with a string ``id`` -> ``bad_json`` / ``bad_request``;
3. the signed envelope, when the site has keys (:class:`CommandGuard`, edge_agent.trust) ->
   ``unsigned``, ``unknown_key``, ``bad_signature``, ``expired``, ``replayed``, ``forbidden``;
4. a known ``name`` -> ``unknown_command``;
5. ``args`` against the command's pydantic model -> ``bad_request`` (with the key path).

An ``id`` seen before is answered from the persisted cache (``replayed: true``) and never executed
twice: MQTT delivers at least once, so a redelivered ``set_override`` must not extend an override.
A refused signature is never cached (an unsigned request cannot take a signed one's id), and
every request, run or refused, is written to the audit log with its key and outcome.
The daemon performs the actions by implementing :class:`CommandTarget`; a project error raised
there becomes a ``failed`` result carrying its message.

Model updates are too big for one MQTT message on a small broker, so ``update_model`` carries one
base64 chunk per request; :class:`ModelTransfer` reassembles them within size limits and checks the
SHA-256 before the daemon sees the bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.errors import EdgeError, SyncError, TrustError
from edge_agent.sync.messages import PrivacyError, assert_minimum_necessary
from edge_agent.trust.envelope import Verdict
from models.calendar import CalendarDoc

log = logging.getLogger(__name__)

Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]
DEFAULT_MAX_REQUEST_BYTES = 512 * 1024
DEFAULT_MAX_MODEL_BYTES = 64 * 1024 * 1024
MAX_CHUNK_BYTES = 256 * 1024  # decoded bytes per update_model chunk


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoArgs(Args):
    """Commands without arguments accept ``{}`` or an absent ``args``."""


class SetOverride(Args):
    """Hold a zone's lights, a seat's desk or one actuator at ``level`` (0..1), optionally for a while."""

    target_kind: Literal["zone", "seat", "actuator"]
    target: Id
    level: float = Field(ge=0.0, le=1.0)
    duration_s: float | None = Field(default=None, gt=0, le=7 * 24 * 3600, description="None: until cleared.")


class ClearOverride(Args):
    target_kind: Literal["zone", "seat", "actuator"]
    target: Id


class ReleaseSeat(Args):
    """Staff cleared a seat (a ghost seat's belongings taken to lost property): mark it free now."""

    seat: Id


class UpdateModelChunk(Args):
    """One chunk of a new forecast model; all chunks of a transfer repeat size and digest."""

    transfer_id: Id
    index: int = Field(ge=0)
    count: int = Field(ge=1, le=4096)
    total_size: int = Field(ge=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    data: str = Field(description="Base64 of this chunk's bytes.")
    signature: dict[str, Any] | None = Field(default=None, description="The model-publisher's signature document "
                                             "(docs/security.md), the same in every chunk.")


class ConsentSet(Args):
    """A patron, named by the id of their tag, consents to personal preferences (or renews consent)."""

    subject: Id
    scopes: list[Literal["desk_preferences", "lamp_preferences"]] = Field(min_length=1)
    valid_months: int = Field(default=12, ge=1, le=36, description="Consent lapses after this; send again to renew.")


class ConsentWithdraw(Args):
    subject: Id


class PreferencesSet(Args):
    subject: Id
    desk_height_mm: int | None = Field(default=None, ge=600, le=1300)
    lamp_level: float | None = Field(default=None, ge=0.0, le=1.0)


class SetCalendar(Args):
    """The site calendar from a central system (kept across restarts); null hands back to the config's."""

    calendar: CalendarDoc | None = Field(description="The calendar document, as [calendar] in the site config.")


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Id
    args: dict[str, Any] = Field(default_factory=dict)
    auth: dict[str, Any] | None = Field(default=None, description="The signed envelope (docs/mqtt.md, Signed "
                                        "commands): key_id, command, gateway, nonce, issued_at, expires_at, "
                                        "sign_result, signature.")


class CommandGuard(Protocol):
    """The gateway's trust (edge_agent.trust.gateway.GatewayTrust), as the command intake uses it."""

    async def authorise(self, command: str, request: dict[str, Any], request_id: str) -> Verdict: ...
    def check_artefact(self, kind: Literal["model"], sha256: str, size: int, signature: dict[str, Any] | None,
                       *, actor: str) -> str | None: ...
    def record(self, kind: str, actor: str, data: dict[str, Any]) -> None: ...


class CommandTarget(Protocol):
    """What the daemon implements; each returns a small result dict or raises an EdgeError."""

    async def set_override(self, args: SetOverride) -> dict[str, Any]: ...
    async def clear_override(self, args: ClearOverride) -> dict[str, Any]: ...
    async def release_seat_by_command(self, args: ReleaseSeat) -> dict[str, Any]: ...
    async def reload_rules(self) -> dict[str, Any]: ...
    async def reload_config(self) -> dict[str, Any]: ...
    async def update_model(self, data: bytes, sha256: str) -> dict[str, Any]: ...
    async def republish_state(self) -> dict[str, Any]: ...
    async def consent_set(self, args: ConsentSet) -> dict[str, Any]: ...
    async def consent_withdraw(self, args: ConsentWithdraw) -> dict[str, Any]: ...
    async def preferences_set(self, args: PreferencesSet) -> dict[str, Any]: ...
    async def set_calendar(self, args: SetCalendar) -> dict[str, Any]: ...


# name -> argument model; the dispatch below maps each to its CommandTarget method.
COMMANDS: dict[str, type[Args]] = {
    "set_override": SetOverride,
    "clear_override": ClearOverride,
    "release_seat": ReleaseSeat,
    "reload_rules": NoArgs,
    "reload_config": NoArgs,
    "update_model": UpdateModelChunk,
    "republish_state": NoArgs,
    "consent_set": ConsentSet,
    "consent_withdraw": ConsentWithdraw,
    "preferences_set": PreferencesSet,
    "set_calendar": SetCalendar,
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to publish for one request."""

    command: str
    request_id: str | None
    ok: bool
    result: dict[str, Any] | None = None
    error_code: str | None = None
    error: str | None = None
    replayed: bool = False
    auth: dict[str, Any] | None = None  # who signed and what was checked (Verdict.note)
    sign: bool = False  # the request asked for a signed result

    def to_fields(self) -> dict[str, Any]:
        err = None if self.ok else {"code": self.error_code or "failed", "message": self.error or ""}
        return {
            "command": self.command,
            "request_id": self.request_id,
            "ok": self.ok,
            "result": self.result,
            "error": err,
            "replayed": self.replayed,
            "auth": self.auth,
        }


def _fail(command: str, rid: str | None, code: str, message: str) -> Outcome:
    return Outcome(command, rid, False, error_code=code, error=message)


def _pydantic_problem(exc: ValidationError, prefix: str) -> str:
    parts = []
    for err in exc.errors()[:5]:
        path = ".".join(str(p) for p in err["loc"])
        parts.append(f"{prefix}{path}: {err['msg']}" if path else f"{prefix.rstrip('.')}: {err['msg']}")
    return "; ".join(parts)


class ModelTransfer:
    """Reassembles ``update_model`` chunks in memory, one transfer at a time, within limits."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_MODEL_BYTES, idle_timeout_s: float = 600.0) -> None:
        self.max_bytes = max_bytes
        self.idle_timeout_s = idle_timeout_s
        self._id: str | None = None
        self._meta: tuple[int, int, str] = (0, 0, "")
        self._chunks: dict[int, bytes] = {}
        self._touched = 0.0

    def add(self, chunk: UpdateModelChunk) -> bytes | None:
        """Store one chunk; return the whole verified file when the last one arrives.

        Raises SyncError (a ``bad_request`` for the sender) on any inconsistency; a new
        ``transfer_id`` abandons the previous transfer.
        """
        now = time.monotonic()
        if chunk.total_size > self.max_bytes:
            raise SyncError(f"total_size {chunk.total_size} exceeds the limit of {self.max_bytes} bytes")
        if chunk.index >= chunk.count:
            raise SyncError(f"index {chunk.index} is out of range for count {chunk.count}")
        try:
            data = base64.b64decode(chunk.data, validate=True)
        except (binascii.Error, ValueError):
            raise SyncError("data is not valid base64") from None
        if len(data) > MAX_CHUNK_BYTES:
            raise SyncError(f"a chunk may carry at most {MAX_CHUNK_BYTES} bytes, this one has {len(data)}")
        meta = (chunk.count, chunk.total_size, chunk.sha256)
        if self._id != chunk.transfer_id or now - self._touched > self.idle_timeout_s:
            self._id, self._meta, self._chunks = chunk.transfer_id, meta, {}
        elif meta != self._meta:
            raise SyncError("count, total_size and sha256 must be the same in every chunk of a transfer")
        self._touched = now
        self._chunks[chunk.index] = data
        if sum(len(c) for c in self._chunks.values()) > chunk.total_size:
            self._reset()
            raise SyncError("chunks add up to more than total_size; transfer abandoned")
        if len(self._chunks) < chunk.count:
            return None
        whole = b"".join(self._chunks[i] for i in range(chunk.count))
        self._reset()
        if len(whole) != chunk.total_size:
            raise SyncError(f"reassembled {len(whole)} bytes, expected total_size {chunk.total_size}")
        if hashlib.sha256(whole).hexdigest() != chunk.sha256:
            raise SyncError("SHA-256 of the reassembled model does not match; transfer abandoned")
        return whole

    def received(self) -> int:
        return len(self._chunks)

    def _reset(self) -> None:
        self._id, self._meta, self._chunks = None, (0, 0, ""), {}


class ResultCache:
    """Persisted results by request id (a table in the outbox database), bounded in count."""

    TABLE = (
        "CREATE TABLE IF NOT EXISTS command_results "
        "(id TEXT PRIMARY KEY, command TEXT NOT NULL, outcome TEXT NOT NULL, created REAL NOT NULL)"
    )

    def __init__(self, run: Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]], keep: int = 2000) -> None:
        self._run = run
        self.keep = keep

    async def open(self) -> None:
        await self._run(lambda db: db.execute(self.TABLE))

    async def get(self, rid: str) -> Outcome | None:
        sql = "SELECT outcome FROM command_results WHERE id = ?"
        row = await self._run(lambda db: db.execute(sql, (rid,)).fetchone())
        if row is None:
            return None
        data = json.loads(row[0])
        return Outcome(**data)

    async def put(self, outcome: Outcome) -> None:
        data = json.dumps(
            {k: getattr(outcome, k) for k in ("command", "request_id", "ok", "result", "error_code", "error")}
        )

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR REPLACE INTO command_results VALUES (?, ?, ?, ?)",
                (outcome.request_id, outcome.command, data, time.time()),
            )
            db.execute(
                "DELETE FROM command_results WHERE id NOT IN "
                "(SELECT id FROM command_results ORDER BY created DESC LIMIT ?)",
                (self.keep,),
            )

        await self._run(write)


class CommandProcessor:
    """Turns raw request bytes into an :class:`Outcome`, executing each request id at most once."""

    def __init__(
        self,
        target: CommandTarget,
        cache: ResultCache,
        *,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        transfer: ModelTransfer | None = None,
        guard: CommandGuard | None = None,
    ) -> None:
        self.target = target
        self.cache = cache
        self.max_request_bytes = max_request_bytes
        self.transfer = transfer or ModelTransfer()
        self.guard = guard

    async def handle(self, name: str, raw: bytes) -> Outcome:
        """Validate, check the signature, dedupe, execute; never raises for bad input. Audited."""
        args: dict[str, Any] = {}
        outcome, verdict = await self._handle(name, raw, args)
        if self.guard is not None:
            actor = (verdict.key_id if verdict else None) or "unsigned"
            self.guard.record("command", actor, audit_entry(outcome, args))
        return outcome

    async def _handle(self, name: str, raw: bytes, args: dict[str, Any]) -> tuple[Outcome, Verdict | None]:
        if len(raw) > self.max_request_bytes:
            return _fail(name, None, "too_large", f"request is {len(raw)} bytes; the limit is "
                                                  f"{self.max_request_bytes}"), None
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _fail(name, None, "bad_json", f"request is not valid JSON: {exc}"), None
        rid = doc.get("id") if isinstance(doc, dict) and isinstance(doc.get("id"), str) else None
        try:
            request = Request.model_validate(doc)
        except ValidationError as exc:
            return _fail(name, rid, "bad_request", _pydantic_problem(exc, "")), None
        rid = request.id
        args.update(request.args)
        verdict = None if self.guard is None else await self.guard.authorise(name, doc, rid)
        note = None if verdict is None else verdict.note()
        if verdict is not None and not verdict.accepted:
            return replace(_fail(name, rid, verdict.reason or "forbidden", verdict.message), auth=note), verdict
        signed = verdict is not None and verdict.sign_result
        cached = await self.cache.get(rid)
        if cached is not None:
            return replace(_replay(cached), auth=note, sign=signed), verdict
        if verdict is not None and verdict.duplicate:  # received before, its result no longer cached
            return replace(_fail(name, rid, "replayed", "this signed request was received before; it is not run "
                                 "again"), auth=note, sign=signed), verdict
        outcome = replace(await self._execute(name, rid, request.args, verdict), auth=note, sign=signed)
        await self.cache.put(outcome)
        return outcome, verdict

    async def _execute(self, name: str, rid: str, raw_args: dict[str, Any], verdict: Verdict | None) -> Outcome:
        model = COMMANDS.get(name)
        if model is None:
            known = ", ".join(sorted(COMMANDS))
            return _fail(name, rid, "unknown_command", f"unknown command {name!r}; known: {known}")
        try:
            args = model.model_validate(raw_args)
        except ValidationError as exc:
            return _fail(name, rid, "bad_request", _pydantic_problem(exc, "args."))
        try:
            result = await self._dispatch(name, args, (verdict.key_id if verdict else None) or "unsigned")
        except TrustError as exc:
            return _fail(name, rid, exc.reason, str(exc))
        except PrivacyError as exc:
            return _fail(name, rid, "privacy", str(exc))
        except EdgeError as exc:
            code = "bad_request" if name == "update_model" and isinstance(exc, SyncError) else "failed"
            return _fail(name, rid, code, str(exc))
        except Exception as exc:  # a bug behind a command must end as a result, never end the session
            log.exception("command %s (id %s) failed unexpectedly", name, rid)
            return _fail(name, rid, "failed", f"gateway error: {type(exc).__name__}: {exc}; nothing was changed "
                                              "as far as the gateway knows: check the gateway's log, then resend "
                                              "with a new id")
        try:
            assert_minimum_necessary(result)
        except PrivacyError as exc:
            log.error("command %s returned a result with private data; withheld: %s", name, exc)
            return _fail(name, rid, "privacy", "result withheld: it contained data that never leaves the gateway")
        return Outcome(name, rid, True, result=result)

    async def _dispatch(self, name: str, args: Args, actor: str) -> dict[str, Any]:
        t = self.target
        if isinstance(args, SetOverride):
            return await t.set_override(args)
        if isinstance(args, ClearOverride):
            return await t.clear_override(args)
        if isinstance(args, ReleaseSeat):
            return await t.release_seat_by_command(args)
        if isinstance(args, UpdateModelChunk):
            if self.guard is not None:  # checked on every chunk, so a bad signature stops the transfer at once
                self.guard.check_artefact("model", args.sha256, args.total_size, args.signature, actor=actor)
            whole = self.transfer.add(args)
            if whole is None:
                return {"transfer_id": args.transfer_id, "received": self.transfer.received(), "of": args.count}
            return {"transfer_id": args.transfer_id, "complete": True, **await t.update_model(whole, args.sha256)}
        if isinstance(args, ConsentSet):
            return await t.consent_set(args)
        if isinstance(args, ConsentWithdraw):
            return await t.consent_withdraw(args)
        if isinstance(args, PreferencesSet):
            return await t.preferences_set(args)
        if isinstance(args, SetCalendar):
            return await t.set_calendar(args)
        simple: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
            "reload_rules": t.reload_rules,
            "reload_config": t.reload_config,
            "republish_state": t.republish_state,
        }
        return await simple[name]()


#: Arguments the audit log does not copy: a model chunk's bytes, a signature document, a patron's reference.
UNAUDITED_ARGS = frozenset({"data", "signature", "subject"})


def audit_entry(outcome: Outcome, args: dict[str, Any]) -> dict[str, Any]:
    """What the audit log keeps of one request: the command, its id and arguments, the outcome, the checks."""
    shown: dict[str, Any] = {k: ("(withheld)" if k in UNAUDITED_ARGS else v) for k, v in args.items()}
    if len(json.dumps(shown, default=str)) > 2000:
        shown = {"(withheld)": f"{len(shown)} arguments, too long to keep"}
    entry: dict[str, Any] = {"command": outcome.command, "request_id": outcome.request_id, "args": shown,
                             "ok": outcome.ok, "replayed": outcome.replayed}
    if not outcome.ok:
        entry.update(code=outcome.error_code, message=(outcome.error or "")[:300])
    if outcome.auth is not None:
        entry["auth"] = outcome.auth
    return entry


def _replay(cached: Outcome) -> Outcome:
    return Outcome(
        cached.command, cached.request_id, cached.ok, cached.result, cached.error_code, cached.error, replayed=True
    )
