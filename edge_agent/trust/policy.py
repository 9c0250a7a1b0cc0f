"""``[security]`` and ``[audit]`` in the site config, and the keyring built from them.

::

    [security]
    signatures = "required"        # "required" | "log-only" | "off"; default: required when any key is listed
    max_validity_s = 900           # longest expires_at - issued_at a request may ask for
    clock_skew_s = 120             # how far the sender's clock may be off
    signed_socket_users = []       # OS users on the control socket that are remote tools: they must sign

    [[security.keys]]
    id = "central-2025"
    role = "central"               # central | operator | technician | model-publisher
    public_key = "base64 of 32 bytes"
    revoked = false

    [security.roles]               # optional: replace a role's command list
    operator = ["set_override", "clear_override", "release_seat", "republish_state"]

Keys are rotated and revoked by editing this table and reloading the config: over MQTT only with
a signed ``reload_config``, or locally (``edge-agent config reload``, ``keys trust|revoke``, SIGHUP).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nacl.signing import VerifyKey
from pydantic import Field, field_validator, model_validator

from drivers.errors import TrustError
from edge_agent.config_base import Strict
from edge_agent.trust.keys import KEY_ID, parse_public_key

Role = Literal["central", "operator", "technician", "model-publisher"]
ROLES: tuple[Role, ...] = ("central", "operator", "technician", "model-publisher")
Policy = Literal["required", "log-only", "off"]
ARTEFACT_ROLE: Role = "model-publisher"  # the only role whose signature makes a model or firmware image acceptable


class TrustedKey(Strict):
    """A public key the gateway accepts signatures from, in one role."""

    id: str = Field(pattern=KEY_ID.pattern)
    role: Role
    public_key: str
    revoked: bool = False
    note: str = ""

    @field_validator("public_key")
    @classmethod
    def _key(cls, v: str) -> str:
        parse_public_key(v)
        return v.strip()


class AuditConf(Strict):
    """The audit log's retention and how often its head is published."""

    retention_days: float = Field(default=365.0, ge=1, le=3650)
    head_interval_s: float = Field(default=300.0, ge=10, le=86400)


class SecurityConf(Strict):
    """Trusted keys, their roles and the signature policy (see module docstring)."""

    signatures: Policy | None = None
    keys: list[TrustedKey] = []
    roles: dict[Role, list[str]] = {}
    max_validity_s: int = Field(default=900, ge=10, le=7 * 86400)
    clock_skew_s: int = Field(default=120, ge=0, le=3600)
    signed_socket_users: list[str] = []

    @model_validator(mode="after")
    def _consistent(self) -> SecurityConf:
        problems: list[str] = []
        seen: dict[str, int] = {}
        for i, key in enumerate(self.keys):
            if key.id in seen:
                problems.append(f"security.keys[{i}].id: {key.id!r} is used twice; give each key its own id")
            seen[key.id] = i
        known = set(known_commands()) if self.roles else set()
        for role, names in self.roles.items():
            for j, name in enumerate(names):
                if name not in known:
                    problems.append(f"security.roles.{role}[{j}]: unknown command {name!r}; one of: "
                                    f"{', '.join(sorted(known))}")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def policy(self) -> Policy:
        return self.signatures or ("required" if self.keys else "off")


def known_commands() -> dict[str, bool]:
    """Every name a role may list: MQTT commands and control-socket operations (True: changes something)."""
    from edge_agent.control.protocol import OPS, READ_OPS
    from edge_agent.sync.commands import COMMANDS

    return {**{op: op not in READ_OPS for op in OPS}, **dict.fromkeys(COMMANDS, True)}


def default_permissions() -> dict[Role, frozenset[str]]:
    """What each role may send unless ``[security.roles]`` says otherwise.

    Every role may use the control socket's read-only operations; ``central`` every MQTT command
    but ``update_model`` (new commands included); ``operator`` overrides, seat releases and a republish;
    ``technician`` what ``operator`` may, reloads, and every control-socket action;
    ``model-publisher`` ``update_model``.
    """
    from edge_agent.control.protocol import OPS, READ_OPS
    from edge_agent.sync.commands import COMMANDS

    reads = frozenset(READ_OPS)
    operator = frozenset({"set_override", "clear_override", "release_seat", "republish_state"})
    return {
        "central": reads | (frozenset(COMMANDS) - {"update_model"}),
        "operator": reads | operator,
        "technician": reads | operator | {"reload_rules", "reload_config"} | frozenset(OPS),
        "model-publisher": reads | {"update_model"},
    }


@dataclass(frozen=True)
class Signer:
    """A trusted key as the keyring holds it."""

    key_id: str
    role: Role
    public: VerifyKey
    revoked: bool


class Keyring:
    """The trusted keys and role permissions of one configuration."""

    def __init__(self, conf: SecurityConf) -> None:
        self.conf = conf
        self.policy: Policy = conf.policy
        self.keys = {k.id: Signer(k.id, k.role, parse_public_key(k.public_key), k.revoked) for k in conf.keys}
        defaults = default_permissions()
        self.permissions = {role: frozenset(conf.roles[role]) if role in conf.roles else defaults[role]
                            for role in ROLES}

    def signer(self, key_id: str) -> Signer:
        """The key named ``key_id``; TrustError ``unknown_key`` when it is not listed or was revoked."""
        found = self.keys.get(key_id)
        if found is None:
            raise TrustError(f"key {key_id!r} is not trusted by this gateway ([security.keys])", reason="unknown_key")
        if found.revoked:
            raise TrustError(f"key {key_id!r} was revoked", reason="unknown_key")
        return found

    def allows(self, role: Role, command: str) -> bool:
        return command in self.permissions[role]

    def summary(self) -> dict[str, object]:
        """For ``keys show`` and the audit record of a reload: the policy and each key's role and state."""
        return {"policy": self.policy,
                "keys": {k.key_id: ("revoked" if k.revoked else k.role) for k in self.keys.values()}}
