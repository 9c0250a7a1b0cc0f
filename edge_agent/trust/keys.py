"""Ed25519 keys: the files they live in, the gateway's own key pair, signing and checking.

A key file is three lines of TOML (``key_id``, ``secret_key``, ``public_key``; base64 of the
32-byte seed and public key), written with mode 0600 and refused when anyone but its owner could
read it. Trusted *public* keys live in the site config (:mod:`edge_agent.trust.policy`).

The gateway's key pair (``gateway.key``, and ``gateway.pub`` for anyone to read) is made once,
at install (``edge-agent keys generate --gateway``, run as the service user) or at the daemon's
first start; it signs the audit log's heads and checkpoints and, when asked, command results.
Its key id is ``{gateway}-{fingerprint}``, so a central system that pins it notices a new one.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

from drivers.errors import TrustError
from edge_agent.trust.canonical import b64, unb64

KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
GATEWAY_KEY = "gateway.key"
GATEWAY_PUB = "gateway.pub"


@dataclass(frozen=True)
class KeyFile:
    """A signing key with the id it is known by."""

    key_id: str
    signing: SigningKey

    @property
    def public(self) -> str:
        return b64(bytes(self.signing.verify_key))

    def sign(self, data: bytes) -> str:
        """The base64 Ed25519 signature of ``data``."""
        return b64(self.signing.sign(data).signature)


def fingerprint(public_key: bytes) -> str:
    """Short, stable name of a public key: the first 8 hex digits of its SHA-256."""
    return hashlib.sha256(public_key).hexdigest()[:8]


def parse_public_key(text: str) -> VerifyKey:
    """A base64 Ed25519 public key (32 bytes); ValueError saying what is wrong."""
    return VerifyKey(unb64(text.strip(), size=32, what="public_key"))


def verify(key: VerifyKey, data: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64, 64 bytes) is ``key``'s over ``data``."""
    try:
        key.verify(data, unb64(signature, size=64, what="signature"))
    except (BadSignatureError, CryptoError, ValueError):
        return False
    return True


def key_text(key: KeyFile) -> str:
    return (f'# edge-agent Ed25519 signing key: keep it secret (mode 0600)\nkey_id = "{key.key_id}"\n'
            f'secret_key = "{b64(bytes(key.signing))}"\npublic_key = "{key.public}"\n')


def write_key(path: Path, key: KeyFile) -> None:
    """Write a new key file (mode 0600); refuse to overwrite one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise TrustError(f"{path} exists already; remove it first if you mean to replace that key",
                         reason="exists") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key_text(key))
        f.flush()
        os.fsync(f.fileno())


def new_key(key_id: str) -> KeyFile:
    if not KEY_ID.match(key_id):
        raise TrustError(f"key id {key_id!r}: use letters, digits, '_', '.', ':', '-' (at most 64)", reason="bad_id")
    return KeyFile(key_id, SigningKey.generate())


def read_key(path: Path) -> KeyFile:
    """A key file; TrustError when it is missing, unreadable, readable by others or malformed."""
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TrustError(f"key file {path}: {exc.strerror or exc}", reason="unreadable") from None
    if st.st_mode & 0o077:
        raise TrustError(f"key file {path} can be read by others (mode {st.st_mode & 0o777:o}); run: chmod 600 {path}",
                         reason="exposed")
    try:
        doc = tomllib.loads(text)
        seed = unb64(str(doc["secret_key"]), size=32, what="secret_key")
        key = KeyFile(str(doc["key_id"]), SigningKey(seed))
    except (tomllib.TOMLDecodeError, KeyError, ValueError, CryptoError) as exc:
        raise TrustError(f"key file {path} is not an edge-agent key file ({exc})", reason="malformed") from None
    if "public_key" in doc and doc["public_key"] != key.public:
        raise TrustError(f"key file {path}: public_key does not belong to secret_key", reason="malformed")
    return key


def gateway_key(state_dir: Path, gateway: str) -> KeyFile:
    """The gateway's key pair from the state directory, made on first use."""
    path = state_dir / GATEWAY_KEY
    if not path.exists():
        signing = SigningKey.generate()
        key = KeyFile(f"{gateway}-{fingerprint(bytes(signing.verify_key))}", signing)
        write_key(path, key)
    key = read_key(path)
    pub = state_dir / GATEWAY_PUB
    want = f'key_id = "{key.key_id}"\npublic_key = "{key.public}"\n'
    if not pub.exists() or pub.read_text(encoding="utf-8") != want:
        tmp = pub.with_name(f".{pub.name}.tmp")
        tmp.write_text(want, encoding="utf-8")
        os.chmod(tmp, 0o644)
        tmp.replace(pub)
    return key


def gateway_public(state_dir: Path) -> tuple[str, VerifyKey]:
    """The gateway's key id and public key, from ``gateway.pub`` (readable without the secret)."""
    path = state_dir / GATEWAY_PUB
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        return str(doc["key_id"]), parse_public_key(str(doc["public_key"]))
    except (OSError, tomllib.TOMLDecodeError, KeyError, ValueError) as exc:
        raise TrustError(f"{path}: no gateway public key there ({exc}); the daemon writes it at its first start",
                         reason="unreadable") from None
