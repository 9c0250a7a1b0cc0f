"""The trust parts of one running daemon: keyring, nonce store, audit log and the gateway key.

:class:`GatewayTrust` lives as long as the daemon (a config reload only swaps its keyring). Its
SQLite files are used from one thread of its own, so nothing blocks the event loop:
:meth:`GatewayTrust.record` queues an audit record and returns at once, in order, and each new
head is handed to ``on_head`` (the uplink's retained ``audit/head``) on the loop.

The daemon's parts call it at each place that changes something (``daemon.audit(kind, data,
actor=...)``): commands at the MQTT intake and the control socket, overrides, consent and
preferences, calibrations, config, rules and model changes, firmware updates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from drivers.errors import TrustError
from edge_agent.trust.artefacts import Kind, check_artefact
from edge_agent.trust.audit import AUDIT_DB, AuditLog, Head, head_statement
from edge_agent.trust.canonical import canonical
from edge_agent.trust.envelope import Verdict, check
from edge_agent.trust.keys import KeyFile, gateway_key
from edge_agent.trust.nonces import NONCE_DB, NonceStore
from edge_agent.trust.policy import AuditConf, Keyring, SecurityConf

log = logging.getLogger("edge_agent.trust")
T = TypeVar("T")
FLOOR_STEP_S = 30.0  # how stale the persisted time floor may get (one write per step at most)


class Clock(Protocol):
    """The daemon's clock (``synced``, where it has one, says whether the wall clock is known to be right)."""

    def time(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


class GatewayTrust:
    """See module docstring. ``async with`` it, or :meth:`open` / :meth:`close`."""

    def __init__(self, state_dir: Path, site: str, gateway: str, security: SecurityConf, audit: AuditConf,
                 clock: Clock) -> None:
        self.state_dir = state_dir
        self.clock = clock
        self.on_head: Callable[[Mapping[str, Any]], object] | None = None
        self.use(site, gateway, security, audit)
        self.key: KeyFile | None = None
        self.head = Head(0, "")
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._log: AuditLog | None = None
        self._nonces: NonceStore | None = None
        self._last: Future[Head] | None = None

    def use(self, site: str, gateway: str, security: SecurityConf, audit: AuditConf) -> None:
        """The configuration's keys, roles and policy (at start and after every reload)."""
        self.gateway = f"{site}/{gateway}"
        self.gateway_id = gateway
        self.ring = Keyring(security)
        self.audit_conf = audit

    # -- life -----------------------------------------------------------------------------------
    async def open(self) -> GatewayTrust:
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trust")
        await self._run(self._open)
        return self

    def _open(self) -> None:
        self.key = gateway_key(self.state_dir, self.gateway_id)
        self._log = AuditLog(self.state_dir / AUDIT_DB)
        self._nonces = NonceStore(self.state_dir / NONCE_DB, skew_s=self.ring.conf.clock_skew_s)
        self.head = self._log.head

    async def close(self) -> None:
        if self._executor is None:
            return
        await self.flush()
        await self._run(self._close)
        self._executor.shutdown(wait=True)
        self._executor = None

    def _close(self) -> None:
        for db in (self._log, self._nonces):
            if db is not None:
                db.close()
        self._log = self._nonces = None

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise TrustError("the gateway's trust store is not open", reason="closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    # -- requests -------------------------------------------------------------------------------
    async def authorise(self, command: str, request: Mapping[str, Any], request_id: str, *,
                        strict: bool = False) -> Verdict:
        """The verdict on one request (edge_agent.trust.envelope), its nonce claimed when it is to run."""
        now, synced = self.clock.time(), self.synced
        nonces = self._nonces
        floor = nonces.time_floor if nonces is not None else 0.0
        strict = strict or (command == "reload_config" and bool(self.ring.keys))  # keys change only by a signed reload
        verdict = check(self.ring, command, self.gateway, request, now=now, synced=synced, time_floor=floor,
                        strict=strict)
        if synced and now > floor + FLOOR_STEP_S:
            await self._run(lambda: self._store().advance(now))
        if not (verdict.accepted and verdict.verified and verdict.key_id and verdict.nonce):
            return verdict
        key_id, nonce, expires = verdict.key_id, verdict.nonce, int(verdict.expires_at or 0)
        first = await self._run(lambda: self._store().claim(key_id, nonce, request_id, expires))
        if first is None:
            return verdict
        if first == request_id:
            return replace(verdict, duplicate=True)
        return verdict.refused("replayed", f"nonce {nonce!r} of key {key_id!r} was used before (request "
                                           f"{first!r}); sign every request with a new nonce",
                               verdict.policy == "log-only" and not strict)

    async def authorise_socket(self, op: str, request: Mapping[str, Any], peer: str) -> Verdict | None:
        """A control-socket request: checked when it is signed or comes from a remote tool's account;
        None for a local technician's unsigned request (the socket's peer check already let it in)."""
        if request.get("auth") is None and peer not in self.ring.conf.signed_socket_users:
            return None
        return await self.authorise(op, request, f"socket:{request.get('id')}")

    async def nonces_held(self) -> int:
        """How many nonces the store keeps (status, tests)."""
        return await self._run(lambda: self._store().count())

    def _store(self) -> NonceStore:
        if self._nonces is None:
            raise TrustError("the nonce store is not open", reason="closed")
        return self._nonces

    def check_artefact(self, kind: Kind, sha256: str, size: int, signature: Mapping[str, Any] | None,
                       *, actor: str) -> str | None:
        """The signer of a model or firmware image, checked before it is written or flashed.

        Raises TrustError (the refusal reason) under ``required``; under ``log-only`` a failure
        is recorded and logged and the artefact accepted; under ``off`` nothing is checked.
        """
        if self.ring.policy == "off":
            return None
        try:
            return check_artefact(self.ring, kind, sha256, size, signature)
        except TrustError as exc:
            self.record(kind, actor, {"sha256": sha256, "size": size, "ok": False, "reason": exc.reason,
                                      "message": str(exc)[:300], "policy": self.ring.policy})
            if self.ring.policy == "log-only":
                log.warning("%s accepted under signatures = log-only, though: %s", kind, exc)
                return None
            raise

    def sign_document(self, doc: Mapping[str, Any]) -> dict[str, str]:
        """The gateway key's signature over ``doc`` (canonical): ``{"key_id", "value"}``."""
        key = self._gateway_key()
        return {"key_id": key.key_id, "value": key.sign(canonical(dict(doc)))}

    def _gateway_key(self) -> KeyFile:
        if self.key is None:
            raise TrustError("the gateway key is not loaded", reason="closed")
        return self.key

    # -- the audit log --------------------------------------------------------------------------
    def record(self, kind: str, actor: str, data: Mapping[str, Any]) -> None:
        """Queue one audit record (in order); the new head goes to ``on_head`` once written."""
        if self._executor is None:
            log.error("audit record %s by %s not written: the audit log is closed (%s)", kind, actor, dict(data))
            return
        at, synced = self.clock.time(), self.synced
        future = self._executor.submit(lambda: self._audit().append(kind, actor, data, at=at, synced=synced))
        future.add_done_callback(self._written)
        self._last = future

    def _audit(self) -> AuditLog:
        if self._log is None:
            raise TrustError("the audit log is not open", reason="closed")
        return self._log

    def _written(self, future: Future[Head]) -> None:
        exc = future.exception()
        if exc is not None:
            log.error("an audit record could not be written: %s", exc)
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._new_head, future.result())

    def _new_head(self, head: Head) -> None:
        if head.seq > self.head.seq:
            self.head = head
            self.publish_head()

    async def flush(self) -> Head:
        """Wait until every queued record is written; the head then."""
        head = await self._run(lambda: self._audit().head)
        self.head = head if head.seq >= self.head.seq else self.head
        return head

    async def records(self, **filters: Any) -> list[dict[str, Any]]:
        """Audit records written so far (AuditLog.records filters: since, kind, from_seq, limit)."""
        await self.flush()
        return await self._run(lambda: list(self._audit().records(**filters)))

    def head_document(self) -> dict[str, Any]:
        """The signed head as ``audit/head`` carries it (without the message envelope)."""
        key = self._gateway_key()
        head = self.head
        return {"gateway": self.gateway, "audit_seq": head.seq, "hash": head.hash, "key_id": key.key_id,
                "public_key": key.public, "signature": key.sign(head_statement(self.gateway, head.seq, head.hash))}

    def publish_head(self) -> None:
        if self.on_head is not None and self.key is not None:
            try:
                self.on_head(self.head_document())
            except Exception:  # publishing must never lose the record or stop the caller
                log.exception("audit head not published")

    @property
    def synced(self) -> bool:
        return bool(getattr(self.clock, "synced", False))

    def _prune(self) -> int:
        before = self.clock.time() - self.audit_conf.retention_days * 86400.0
        key = self._gateway_key()
        return self._audit().prune(before, self.gateway, lambda statement: (key.key_id, key.sign(statement)))

    async def sweep(self) -> dict[str, int]:
        """The retention sweep's part (edge_agent.privacy.retention): audit records past ``[audit]
        retention_days`` behind a signed checkpoint, and nonces behind the time floor; only while the
        clock is synchronised (a wrong clock must not decide what history is old)."""
        if not self.synced:
            return {"audit": 0, "nonces": 0}
        now = self.clock.time()
        gone = await self._run(self._prune)
        nonces = await self._run(lambda: self._store().advance(now))
        if gone:
            log.info("audit log: %d records past the retention replaced by a signed checkpoint", gone)
            self.record("audit", "gateway", {"pruned": gone, "retention_days": self.audit_conf.retention_days})
        return {"audit": gone, "nonces": nonces}

    async def maintain(self) -> None:
        """Publish the head every ``[audit] head_interval_s`` (the retention sweep prunes the log)."""
        while True:
            self.publish_head()
            await self.clock.sleep(self.audit_conf.head_interval_s)
