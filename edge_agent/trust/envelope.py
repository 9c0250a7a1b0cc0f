"""The signed command envelope: an ``auth`` object in the request, and the gateway's check of it.

A signed request on ``cmd/{name}`` (or a remote tool's request on the control socket) carries::

    "auth": {"key_id": "central-2025", "command": "set_override", "gateway": "central-library/gw-floor-3",
             "nonce": "4q2Lr9...", "issued_at": 1741083362, "expires_at": 1741083662,
             "sign_result": false, "signature": "base64 of 64 bytes"}

The signature is Ed25519 over the canonical bytes (:mod:`edge_agent.trust.canonical`) of the
whole request as sent, with ``auth.signature`` left out. ``command`` and ``gateway`` bind it to
one command on one gateway, so a signed ``clear_override`` cannot be replayed as a
``set_override`` or to another floor. Times are unix seconds.

:func:`check` decides everything that needs no storage, in this order, and the first failure is
the refusal: no ``auth`` -> ``unsigned``; a malformed one, or a signature that does not verify or
was made for another command or gateway -> ``bad_signature``; a key not listed or revoked ->
``unknown_key``; outside its validity -> ``expired``; a role that may not send this command ->
``forbidden``. The nonce (``replayed``) is checked after it, against the persisted store
(:mod:`edge_agent.trust.nonces`).

Before the wall clock is synchronised (a Pi has no RTC) the gateway cannot tell whether a request
has expired. It then still refuses what has certainly expired (``expires_at`` before the latest
time it ever knew to be right, kept across restarts), accepts the rest only with a nonce it has
never seen and a key allowed the command, and says so in the result (``expiry_checked: false``).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.errors import TrustError
from edge_agent.trust.canonical import canonical
from edge_agent.trust.keys import KEY_ID, KeyFile, verify
from edge_agent.trust.policy import Keyring, Signer

NONCE = r"^[A-Za-z0-9_-]{16,64}$"
REASONS = ("unsigned", "unknown_key", "bad_signature", "expired", "replayed", "forbidden")


class Auth(BaseModel):
    """The ``auth`` object of a signed request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str = Field(pattern=KEY_ID.pattern)
    command: str = Field(min_length=1, max_length=64, description="The command name (MQTT) or op (control socket).")
    gateway: str = Field(min_length=3, max_length=200, description="'{site}/{gateway}' of the gateway it is for.")
    nonce: str = Field(pattern=NONCE, description="Unique per request and key: 16-64 of A-Z a-z 0-9 _ -.")
    issued_at: int = Field(ge=0, description="Unix seconds.")
    expires_at: int = Field(ge=0, description="Unix seconds; at most [security] max_validity_s after issued_at.")
    sign_result: bool = Field(default=False, description="Ask the gateway to sign its result.")
    signature: str = Field(description="Base64 Ed25519 signature over the canonical request without this field.")


def signed_bytes(request: Mapping[str, Any]) -> bytes:
    """The bytes a request's signature covers: the canonical request without ``auth.signature``."""
    auth = {k: v for k, v in dict(request["auth"]).items() if k != "signature"}
    return canonical({**request, "auth": auth})


def sign_request(key: KeyFile, command: str, gateway: str, request: Mapping[str, Any], *, now: float,
                 ttl_s: int = 300, nonce: str | None = None, sign_result: bool = False) -> dict[str, Any]:
    """``request`` (``{"id", "args"}``, or a control-socket request) with a signed ``auth`` added."""
    auth: dict[str, Any] = {"key_id": key.key_id, "command": command, "gateway": gateway,
                            "nonce": nonce or secrets.token_urlsafe(18), "issued_at": int(now),
                            "expires_at": int(now) + ttl_s}
    if sign_result:
        auth["sign_result"] = True
    doc = {**request, "auth": auth}
    auth["signature"] = key.sign(signed_bytes(doc))
    return doc


@dataclass(frozen=True)
class Verdict:
    """The gateway's decision on one request.

    ``accepted`` is what happens; ``reason`` the refusal code when a check failed (under
    ``log-only`` a request can be accepted with a reason: it would have been refused).
    ``verified``: the signature checked out (so the nonce may be recorded); ``duplicate``: the
    very same signed request was received before (an MQTT redelivery), to be answered, not run.
    """

    accepted: bool
    policy: str
    reason: str | None = None
    message: str = ""
    key_id: str | None = None
    role: str | None = None
    nonce: str | None = None
    expires_at: int | None = None
    verified: bool = False
    expiry_checked: bool = True
    sign_result: bool = False
    duplicate: bool = False

    def note(self) -> dict[str, Any] | None:
        """The result's ``auth`` field: who signed and what was checked (None when signatures are off)."""
        if self.policy == "off":
            return None
        note: dict[str, Any] = {"policy": self.policy, "key_id": self.key_id, "role": self.role,
                                "expiry_checked": self.expiry_checked}
        if self.reason is not None:
            note["would_refuse"] = self.reason
        return note

    def refused(self, reason: str, message: str, lenient: bool) -> Verdict:
        """This verdict with a failed check: refused, or accepted and noted under ``log-only``."""
        return replace(self, accepted=lenient, reason=reason, message=message)


def check(ring: Keyring, command: str, gateway: str, request: Mapping[str, Any], *, now: float, synced: bool,
          time_floor: float, strict: bool = False) -> Verdict:
    """Everything but the nonce (see module docstring). ``strict``: refuse even under ``log-only``."""
    policy = ring.policy
    if policy == "off":
        return Verdict(True, policy)
    lenient = policy == "log-only" and not strict
    raw = request.get("auth")
    if raw is None:
        return Verdict(lenient, policy, "unsigned", f"{command}: this gateway requires signed requests (an 'auth' "
                                                    "object); see docs/mqtt.md, 'Signed commands'")
    try:
        auth = Auth.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return Verdict(lenient, policy, "bad_signature", f"auth.{where}: {err['msg']}" if where else
                       f"auth: {err['msg']}")
    role: str | None = None
    verified = False

    def verdict(reason: str | None = None, message: str = "") -> Verdict:
        return Verdict(reason is None or lenient, policy, reason, message, auth.key_id, role, auth.nonce,
                       auth.expires_at, verified, synced, auth.sign_result)

    try:
        signer: Signer = ring.signer(auth.key_id)
    except TrustError as exc:
        return verdict(exc.reason, str(exc))
    role = signer.role
    if not verify(signer.public, signed_bytes(request), auth.signature):
        return verdict("bad_signature", f"the signature of key {auth.key_id!r} does not verify over this request")
    verified = True
    if auth.command != command or auth.gateway != gateway:
        return verdict("bad_signature", f"signed for {auth.command!r} on {auth.gateway!r}, received as {command!r} "
                                        f"on {gateway!r}")
    expired = _expired(auth, now=now, synced=synced, time_floor=time_floor, skew=ring.conf.clock_skew_s,
                       longest=ring.conf.max_validity_s)
    if expired:
        return verdict("expired", expired)
    if not ring.allows(signer.role, command):
        return verdict("forbidden", f"key {auth.key_id!r} has role {signer.role!r}, which may not send {command!r}")
    return verdict()


def _expired(auth: Auth, *, now: float, synced: bool, time_floor: float, skew: int, longest: int) -> str:
    """Why the request is outside its validity, or '' (see module docstring for an unsynced clock)."""
    if auth.expires_at < auth.issued_at:
        return "auth.expires_at is before auth.issued_at"
    if auth.expires_at - auth.issued_at > longest:
        return (f"valid for {auth.expires_at - auth.issued_at} s; this gateway accepts at most {longest} s "
                "([security] max_validity_s)")
    if synced:
        if auth.issued_at > now + skew:
            return f"issued {auth.issued_at - now:.0f} s in the future by the gateway's clock; check the sender's clock"
        if now > auth.expires_at + skew:
            return f"expired {now - auth.expires_at:.0f} s ago by the gateway's clock"
        return ""
    if auth.expires_at + skew < time_floor:
        return (f"expired: the gateway's clock is not synchronised yet, but it knows the time is past "
                f"{int(time_floor)}, {int(time_floor - auth.expires_at)} s after expires_at")
    return ""
