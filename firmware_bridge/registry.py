"""The node registry: what the gateway knows about each node, persisted as one small JSON file.

The file (``<state_dir>/nodes.json``) is what ``edge-agent nodes list`` reads, so it must never be
half-written: it is replaced atomically (write a temp file in the same directory, fsync, rename,
fsync the directory). It is written when something a technician cares about changes (a node
appears, reboots, changes firmware or health) and otherwise (a node's ``last_seen`` moving on) at
most every ``save_interval_s``, five minutes by default, to spare the SD card: each save is two
fsyncs.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from drivers.errors import BridgeError

REGISTRY_FILE = "nodes.json"
SCHEMA = 1


@dataclass(slots=True)
class NodeRecord:
    """One node as last seen. ``health``: unknown | ok | restoring (rebooted; its outputs are being put
    back) | degraded | offline. ``revision``: of PROTOCOL.md the node follows (0: not identified yet)."""

    address: int
    kind: str = "unknown"
    firmware: str = ""
    capabilities: int = 0
    revision: int = 0
    hw_revision: int = 0  # 0: not reported
    channels: int = 0
    boot_id: int | None = None
    active_slot: int = 0
    health: str = "unknown"
    last_seen: float | None = None  # wall-clock seconds (UNIX epoch)
    uptime_s: int = 0
    requests: int = 0
    retries: int = 0
    timeouts: int = 0
    nacks: int = 0
    consecutive_failures: int = 0
    reboots: int = 0
    node_rx_errors: int = 0  # CRC + framing errors the node reports having seen
    events_lost: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class NodeRegistry:
    """Nodes by address, optionally persisted under ``state_dir``."""

    def __init__(self, state_dir: Path | None = None, *, save_interval_s: float = 300.0) -> None:
        self.state_dir = state_dir
        self.save_interval_s = save_interval_s
        self.nodes: dict[int, NodeRecord] = {}
        self._dirty = False
        self._urgent = False
        self._last_save = float("-inf")
        if state_dir is not None and (state_dir / REGISTRY_FILE).exists():
            self.nodes = load_registry(state_dir)

    @property
    def path(self) -> Path | None:
        return None if self.state_dir is None else self.state_dir / REGISTRY_FILE

    def get(self, address: int) -> NodeRecord:
        rec = self.nodes.get(address)
        if rec is None:
            rec = self.nodes[address] = NodeRecord(address)
            self.changed(urgent=True)
        return rec

    def changed(self, *, urgent: bool = False) -> None:
        """Note a change; ``urgent`` ones (discovery, reboot, health) are saved at the next chance."""
        self._dirty = True
        self._urgent = self._urgent or urgent

    def due(self, now: float) -> bool:
        if self.state_dir is None or not self._dirty:
            return False
        return self._urgent or now - self._last_save >= self.save_interval_s

    def snapshot(self) -> str:
        doc = {"schema": SCHEMA, "nodes": [asdict(r) for r in sorted(self.nodes.values(), key=lambda r: r.address)]}
        return json.dumps(doc, indent=1, sort_keys=True)

    def save(self, now: float = 0.0) -> None:
        """Write the registry now (blocking; the link calls it through asyncio.to_thread)."""
        if self.state_dir is None:
            return
        text = self.snapshot()
        self._dirty = self._urgent = False
        self._last_save = now
        atomic_write(self.state_dir / REGISTRY_FILE, text.encode())


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a power cut leaves the old or the new file, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def load_registry(state_dir: Path) -> dict[int, NodeRecord]:
    """Read ``nodes.json``; a damaged file is a BridgeError naming it, never a traceback."""
    path = state_dir / REGISTRY_FILE
    try:
        doc = json.loads(path.read_text())
        if doc.get("schema") != SCHEMA:
            raise BridgeError(f"{path}: schema {doc.get('schema')!r}, expected {SCHEMA}")
        records = [NodeRecord.from_json(d) for d in doc["nodes"]]
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BridgeError(f"{path}: unreadable node registry ({exc}); delete it to start afresh") from exc
    return {r.address: r for r in records}
