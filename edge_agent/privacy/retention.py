"""Retention, enforced everywhere by one mechanism: a sweep over every store, at start and periodically.

:func:`sweep` runs once when the daemon's floor starts and then every ``[privacy] sweep_interval_s``
on the daemon's clock (virtual in the simulator, so a simulated week sweeps as a gateway's week
does). Each store is swept by its owner, on the owner's thread, so a sweep never races a write:

============== =====================================================================================
outbox         messages past ``[storage] outbox_max_age_h``, command results past
               ``[privacy] command_results_days``; retained seat states of zones no longer published
               per seat (and availability under seat_states off) are cleared on the broker too
traces         lines older than ``[privacy] trace_retention_h`` (also when recording is off)
history        counts older than ``[history] retention_days``
audit, nonces  records past ``[audit] retention_days`` behind a signed checkpoint; spent nonces
               (clock synchronised only)
calibration    history entries older than ``[privacy] calibration_history_days``
consent        lapsed consents with their preferences
tags           pseudonym mappings and tracks unheard for ``[privacy] tag_retention_s``
budget         epsilon ledger days older than ``[privacy] budget_days``
permissions    no store holding personal data stays readable by every local account
============== =====================================================================================

Deletion really deletes: the SQLite stores that hold personal data (outbox, audit) run with
``secure_delete`` (freed pages are zeroed) and truncate their WAL after a sweep; files are
rewritten temp-then-rename. What a filesystem keeps of a replaced file's old blocks is beyond a
program's reach (docs/privacy.md: encrypt the card).
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_agent.actuation.recorder import prune_traces
from edge_agent.privacy.stores import STORES

if TYPE_CHECKING:
    from edge_agent.assembly import Gateway
    from edge_agent.daemon import Daemon

log = logging.getLogger(__name__)


def seat_topic_cleared(gw: Gateway) -> Any:
    """A retained topic the policy no longer allows: a seat state of a zone not published per seat, or a
    zone's availability under ``seat_states = "off"``."""
    zone_of = {s.id: s.zone for s in gw.cfg.seats}
    policy = gw.cfg.privacy

    def cleared(topic: str) -> bool:
        parts = topic.split("/")
        if len(parts) >= 3 and parts[-3] == "zone" and parts[-1] == "availability":
            return policy.seat_policy(parts[-2]) == "off"
        if len(parts) < 3 or parts[-3] != "seat" or parts[-1] != "state":
            return False
        zone = zone_of.get(parts[-2])
        return zone is None or policy.seat_policy(zone) != "per_seat"

    return cleared


def tighten_permissions(state_dir: Path) -> int:
    """Remove every-account access from the files of stores with personal data; returns how many changed."""
    changed = 0
    for store in STORES:
        if not store.personal:
            continue
        for name in store.files:
            for path in (state_dir / name, state_dir / f"{name}-wal", state_dir / f"{name}-shm"):
                try:
                    mode = stat.S_IMODE(path.stat().st_mode)
                except OSError:
                    continue
                if mode & 0o007:
                    os.chmod(path, mode & ~0o007)
                    changed += 1
    return changed


async def sweep(daemon: Daemon, gw: Gateway) -> dict[str, int]:
    """One pass over every store (see the module docstring); returns what went, by store."""
    cfg, clock = daemon.cfg, daemon.clock
    now = clock.time()
    done: dict[str, int] = {}
    if gw.outbox is not None:
        got = await gw.outbox.sweep(results_before=now - cfg.privacy.command_results_days * 86400.0,
                                    clear_retained=seat_topic_cleared(gw))
        done.update(outbox=got["messages"], command_results=got["command_results"],
                    retained_cleared=got["retained_cleared"])
    before = now - cfg.privacy.trace_retention_h * 3600.0
    trace = daemon.state_dir / "trace.jsonl"
    done["traces"] = await (gw.traces.run(lambda: prune_traces(trace, before)) if gw.traces is not None
                            else asyncio.to_thread(prune_traces, trace, before))
    history = gw.zone_history.store if gw.zone_history is not None else None
    if history is not None:
        wall = gw.controller.wall().replace(tzinfo=None)
        done["history"] = await asyncio.to_thread(history.prune, wall)
    if daemon.trust is not None:
        done.update(await daemon.trust.sweep())
    done["calibration"] = await asyncio.to_thread(
        gw.calibration.prune_history, now - cfg.privacy.calibration_history_days * 86400.0)
    done["consent"] = await gw.patrons.purge_expired()
    if gw.tags is not None:
        for pseudonym in gw.tags.expire(clock.monotonic()):
            gw.floor.forget_tag(pseudonym)
    if gw.budget is not None:
        done["budget"] = await asyncio.to_thread(gw.budget.prune, gw.controller.wall().date().isoformat())
    done["permissions"] = await asyncio.to_thread(tighten_permissions, daemon.state_dir)
    gw.last_sweep = {"at": now, **done}
    return done


async def retention_loop(daemon: Daemon, gw: Gateway) -> None:
    """Sweep at start, then every ``[privacy] sweep_interval_s`` of the daemon's clock."""
    while True:
        try:
            done = await sweep(daemon, gw)
        except Exception:  # a failing store must not stop the others' next sweep
            log.exception("retention sweep failed; trying again at the next interval")
        else:
            gone = {k: v for k, v in done.items() if v}
            if gone:
                log.info("retention sweep: %s", ", ".join(f"{k} {v}" for k, v in sorted(gone.items())))
        await daemon.clock.sleep(daemon.cfg.privacy.sweep_interval_s)

