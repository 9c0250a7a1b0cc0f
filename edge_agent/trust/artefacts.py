"""Signed artefacts: forecast models and node firmware images, signed by a ``model-publisher`` key.

A signature document travels with the artefact (``update_model``'s ``signature`` argument, a
``.sig`` file beside a firmware image, the federation's manifest)::

    {"key_id": "publisher-1", "kind": "model", "sha256": "<hex>", "size": 48213,
     "metadata": {"name": "demand-v3", "horizons": [15, 30, 60]}, "signature": "<base64>"}

The signature is Ed25519 over the canonical bytes of that document without ``signature``: the
digest and size of the artefact and whatever metadata the publisher states. The gateway checks
it against the artefact's own digest *before* anything is written or flashed; a model is then
still smoke-tested, and a firmware image still checked against the node, as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.errors import TrustError
from edge_agent.trust.canonical import canonical
from edge_agent.trust.keys import KEY_ID, KeyFile, verify
from edge_agent.trust.policy import ARTEFACT_ROLE, Keyring

Kind = Literal["model", "firmware"]


class ArtefactSignature(BaseModel):
    """The signature document of one artefact."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str = Field(pattern=KEY_ID.pattern)
    kind: Kind
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=1)
    metadata: dict[str, Any] = Field(default_factory=dict)
    signature: str


def artefact_bytes(doc: Mapping[str, Any]) -> bytes:
    return canonical({k: v for k, v in doc.items() if k != "signature"})


def sign_artefact(key: KeyFile, kind: Kind, data: bytes, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The signature document for ``data``."""
    doc: dict[str, Any] = {"key_id": key.key_id, "kind": kind, "sha256": hashlib.sha256(data).hexdigest(),
                           "size": len(data), "metadata": dict(metadata or {})}
    doc["signature"] = key.sign(artefact_bytes(doc))
    return doc


def artefact_signer(key: KeyFile, kind: Kind = "model") -> Callable[[bytes], dict[str, Any]]:
    """``bytes -> signature document``: the ``sign=`` hook of a model publisher (a federation server's)."""
    return lambda data: sign_artefact(key, kind, data)


def check_artefact(ring: Keyring, kind: Kind, sha256: str, size: int, signature: Mapping[str, Any] | None) -> str:
    """The key id that signed this artefact; TrustError with the refusal reason otherwise."""
    if signature is None:
        raise TrustError(f"the {kind} is not signed; this gateway accepts a {kind} only with a {ARTEFACT_ROLE} "
                         "signature", reason="unsigned")
    try:
        doc = ArtefactSignature.model_validate(signature)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise TrustError(f"signature.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}",
                         reason="bad_signature") from None
    signer = ring.signer(doc.key_id)
    if not verify(signer.public, artefact_bytes(dict(signature)), doc.signature):
        raise TrustError(f"the {kind}'s signature by key {doc.key_id!r} does not verify", reason="bad_signature")
    if doc.kind != kind or doc.sha256 != sha256.lower() or doc.size != size:
        raise TrustError(f"the signature is for another {doc.kind} ({doc.sha256[:12]}, {doc.size} bytes), not this "
                         f"{kind} ({sha256[:12]}, {size} bytes)", reason="bad_signature")
    if signer.role != ARTEFACT_ROLE:
        raise TrustError(f"key {doc.key_id!r} has role {signer.role!r}; a {kind} needs a {ARTEFACT_ROLE} signature",
                         reason="forbidden")
    return doc.key_id
