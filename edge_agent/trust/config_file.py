"""Editing ``[[security.keys]]`` in a site config file in place, for ``edge-agent keys trust|revoke``.

The file is the technician's: comments, order and every other table stay as they are. A new key
is appended as its own ``[[security.keys]]`` table; a revoked key gets ``revoked = true`` in its
table. The edited text is validated as a whole config before it replaces the file (written
beside it, then renamed, keeping the file's mode and owner), so a bad edit never reaches the
daemon.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from drivers.errors import ConfigError
from edge_agent.trust.keys import parse_public_key

_HEADER = re.compile(r"^\s*\[")


def add_key(text: str, key_id: str, role: str, public_key: str, note: str = "") -> str:
    """``text`` with a new trusted key appended (ConfigError if the id is taken)."""
    parse_public_key(public_key)
    if any(k.get("id") == key_id for k in _keys(text)):
        raise ConfigError(f"security.keys: a key {key_id!r} is already listed; revoke it and trust the new one "
                          "under a new id")
    block = f'\n[[security.keys]]\nid = "{key_id}"\nrole = "{role}"\npublic_key = "{public_key}"\n'
    if note:
        block += f"note = {_toml_string(note)}\n"
    return text.rstrip("\n") + "\n" + block


def revoke_key(text: str, key_id: str) -> str:
    """``text`` with ``revoked = true`` in the ``[[security.keys]]`` table whose id is ``key_id``."""
    lines = text.splitlines(keepends=True)
    start = None
    for i, line in enumerate(lines):
        if line.strip() == "[[security.keys]]":
            end = next((j for j in range(i + 1, len(lines)) if _HEADER.match(lines[j])), len(lines))
            if any(re.fullmatch(rf'\s*id\s*=\s*["\']{re.escape(key_id)}["\']\s*(#.*)?', ln.rstrip("\n"))
                   for ln in lines[i + 1:end]):
                start = i
                break
    if start is None:
        known = ", ".join(str(k.get("id")) for k in _keys(text)) or "none"
        raise ConfigError(f"security.keys: no key {key_id!r} in [[security.keys]] tables; listed: {known}")
    end = next((j for j in range(start + 1, len(lines)) if _HEADER.match(lines[j])), len(lines))
    for j in range(start + 1, end):
        if re.match(r"\s*revoked\s*=", lines[j]):
            lines[j] = "revoked = true\n"
            return "".join(lines)
    last = end
    while last > start + 1 and not lines[last - 1].strip():
        last -= 1
    if not lines[last - 1].endswith("\n"):
        lines[last - 1] += "\n"
    lines.insert(last, "revoked = true\n")
    return "".join(lines)


def replace_config(path: Path, text: str) -> None:
    """Validate ``text`` as a site config, then put it in place of ``path`` atomically."""
    from edge_agent.config import parse_config

    try:
        parse_config(tomllib.loads(text), str(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: the edit would not be valid TOML ({exc}); edit the file by hand") from None
    st = path.stat()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, st.st_mode & 0o7777)
    try:
        os.chown(tmp, st.st_uid, st.st_gid)
    except PermissionError:
        pass
    tmp.replace(path)


def _keys(text: str) -> list[dict[str, object]]:
    try:
        security = tomllib.loads(text).get("security", {})
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the config is not valid TOML ({exc}); fix it first") from None
    keys = security.get("keys", []) if isinstance(security, dict) else []
    return [k for k in keys if isinstance(k, dict)]


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
