"""The per-day epsilon budget, and the noise it pays for (discrete Laplace, sampled by OpenDP).

Every noisy release (a window of noisy zone summaries, an hour of the data-platform export)
spends epsilon from its opening day's budget, ``[privacy] daily_epsilon`` (the day the library
opened: hours past midnight count to the evening before, edge_agent.privacy.policy). Spending is
recorded in ``<state_dir>/privacy-budget.json`` before the release is published, so a restart
cannot reset the day's account; once the day's budget is spent, noisy publications are withheld
(published as ``null`` with ``counts_policy = "suppressed"``) until the next opening day.

The ledger (written atomically, one small write per release)::

    {"daily_epsilon": 3.0, "days": {"2025-03-11": {"spent": 1.25, "releases": 14}}}

Noise is never hand-made here: :func:`discrete_laplace` asks OpenDP's ``make_laplace`` over
integers (the discrete Laplace, or two-sided geometric, mechanism: exact sampling from the
library's cryptographically seeded source, no floating-point leaks). OpenDP is imported on the
first noisy release only, so a gateway that publishes nothing noisy never loads it (its cost:
docs/benchmarks.md, "Privacy").
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from drivers.errors import SyncError
from edge_agent.storage import AtomicJSONStorage

log = logging.getLogger(__name__)

BUDGET_FILE = "privacy-budget.json"


@lru_cache(maxsize=64)
def _mechanism(scale: float) -> Callable[[int], int]:
    # Module by module: opendp.prelude would also load scipy (docs/benchmarks.md, "Privacy").
    try:
        from opendp.domains import atom_domain
        from opendp.measurements import make_laplace
        from opendp.metrics import absolute_distance
        from opendp.mod import enable_features
    except ImportError as exc:
        raise SyncError(f"noisy counts need OpenDP, which cannot be imported ({exc}); reinstall the gateway's "
                        "package, or set [privacy] zone_counts and export_counts to exact or thresholded") from exc

    enable_features("contrib")  # make_laplace over integers is in OpenDP's contrib set
    measurement = make_laplace(atom_domain(T=int), absolute_distance(T=int), scale=scale)
    return lambda value: int(measurement(int(value)))


def discrete_laplace(value: int, scale: float) -> int:
    """``value`` plus discrete Laplace noise of ``scale`` (OpenDP): epsilon = sensitivity / scale."""
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"noise scale {scale!r} must be a positive number")
    return _mechanism(round(float(scale), 9))(value)


def error_bound(scale: float, alpha: float = 1e-6) -> float:
    """|noise| stays within this with probability at least ``1 - alpha`` (discrete Laplace of ``scale``).

    P(|N| >= t) <= 2 exp(-(t - 1) / scale) for integers t >= 1, hence t = 1 + scale * ln(2 / alpha).
    """
    return 1.0 + scale * math.log(2.0 / alpha)


class EpsilonBudget:
    """The per-day account of epsilon spent (see the module docstring). Thread-safe."""

    def __init__(self, path: Path, daily_epsilon: float, *, keep_days: int = 400) -> None:
        self.path = Path(path)
        self.daily_epsilon = float(daily_epsilon)
        self.keep_days = keep_days
        self._storage = AtomicJSONStorage(self.path)
        self._lock = threading.Lock()
        self._days: dict[str, dict[str, float]] = {}
        try:
            doc: Any = json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else {}
        except (OSError, ValueError) as exc:
            # An unreadable ledger must not hand out a fresh budget: today counts as spent.
            log.error("%s is unreadable (%s); noisy publications wait for tomorrow", self.path, exc)
            doc = {"unreadable": True}
        self._block_first_day = bool(doc.get("unreadable"))
        for day, entry in (doc.get("days") or {}).items():
            if isinstance(entry, dict):
                self._days[str(day)] = {"spent": float(entry.get("spent", 0.0)),
                                        "releases": float(entry.get("releases", 0))}

    @classmethod
    def in_state_dir(cls, state_dir: Path, daily_epsilon: float, *, keep_days: int = 400) -> EpsilonBudget:
        return cls(state_dir / BUDGET_FILE, daily_epsilon, keep_days=keep_days)

    def _entry(self, day: str) -> dict[str, float]:
        if self._block_first_day:  # the ledger was unreadable at start: the day it happened counts as spent
            self._block_first_day = False
            self._days.setdefault(day, {"spent": self.daily_epsilon, "releases": 0.0})
        return self._days.get(day, {"spent": 0.0, "releases": 0.0})

    def spent(self, day: str) -> float:
        with self._lock:
            return self._entry(day)["spent"]

    def remaining(self, day: str) -> float:
        return max(0.0, self.daily_epsilon - self.spent(day))

    def spend(self, day: str, epsilon: float) -> bool:
        """Record ``epsilon`` against ``day`` if the budget allows it; False (nothing recorded) if not."""
        if epsilon <= 0:
            raise ValueError("a release spends a positive epsilon")
        with self._lock:
            entry = self._entry(day)
            if entry["spent"] + epsilon > self.daily_epsilon * (1 + 1e-9):
                return False
            self._days[day] = {"spent": entry["spent"] + epsilon, "releases": entry["releases"] + 1}
            self._write()
        return True

    def state(self, day: str) -> dict[str, Any]:
        """What ``health`` and ``privacy report`` show."""
        spent = self.spent(day)
        return {"day": day, "epsilon_spent": round(spent, 6), "epsilon_budget": self.daily_epsilon,
                "epsilon_remaining": round(max(0.0, self.daily_epsilon - spent), 6)}

    def days(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {d: dict(e) for d, e in self._days.items()}

    def prune(self, today: str) -> int:
        """Forget days older than ``keep_days`` before ``today`` (ISO dates); returns how many went."""
        from datetime import date, timedelta

        oldest = (date.fromisoformat(today) - timedelta(days=self.keep_days)).isoformat()
        with self._lock:
            gone = [d for d in self._days if d < oldest]
            for d in gone:
                del self._days[d]
            if gone:
                self._write()
        return len(gone)

    def _write(self) -> None:
        doc = {"daily_epsilon": self.daily_epsilon, "days": {d: self._days[d] for d in sorted(self._days)}}
        self._storage.write(doc)  # type: ignore[arg-type]
