"""Privacy accounting of DP-SGD over zone-days, with Google's ``dp-accounting`` (RDP accountant).

Each local training step is a Poisson-subsampled Gaussian mechanism: zone-days sampled with rate
``q``, noise multiplier ``z`` (noise std / clip). A round is ``steps`` of them; rounds compose.
:class:`PrivacyLedger` is the gateway's running account: the steps it has spent, the epsilon
they add up to at ``delta``, and whether one more round still fits the budget. It is plain data
(JSON) so the gateway can keep it in its state directory across restarts: the budget is for the
gateway's life, not for one federation session.

``dp-accounting`` comes with the ``federation`` extra and is imported when a figure is asked for.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

# Integer Renyi orders: the accountant's default fractional ones fail to converge (and warn) at high q.
ORDERS = [float(a) for a in range(2, 257)]


def epsilon(spent: list[tuple[float, float, int]], delta: float) -> float:
    """Epsilon at ``delta`` of the composition of ``(q, noise_multiplier, steps)`` entries."""
    import dp_accounting
    from dp_accounting import rdp

    if not spent:
        return 0.0
    if any(z <= 0 for _, z, n in spent if n > 0):
        return math.inf
    accountant = rdp.RdpAccountant(ORDERS)
    for q, z, steps in spent:
        if steps > 0:
            event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z))
            accountant.compose(dp_accounting.SelfComposedDpEvent(event, steps))
    return float(accountant.get_epsilon(delta))


def noise_for(target_epsilon: float, q: float, steps: int, delta: float,
              prior: list[tuple[float, float, int]] | None = None) -> float:
    """The smallest noise multiplier whose ``steps`` at rate ``q`` stay within ``target_epsilon`` (bisection),
    after what ``prior`` already spent (e.g. a released profile: ``(1.0, z, 1)``, a Gaussian mechanism)."""
    before = list(prior or [])
    lo, hi = 0.3, 64.0
    if epsilon([*before, (q, hi, steps)], delta) > target_epsilon:
        raise ValueError(f"epsilon {target_epsilon} is out of reach for {steps} steps at q={q}")
    for _ in range(40):
        mid = math.sqrt(lo * hi)
        if epsilon([*before, (q, mid, steps)], delta) > target_epsilon:
            lo = mid
        else:
            hi = mid
    return hi


@dataclass
class PrivacyLedger:
    """What a gateway has spent of its budget (see the module docstring)."""

    budget: float
    delta: float
    spent: list[tuple[float, float, int]] = field(default_factory=list)
    rounds: int = 0

    def total(self) -> float:
        return epsilon(self.spent, self.delta)

    def after(self, q: float, noise_multiplier: float, steps: int) -> float:
        """Total epsilon if a round of ``steps`` at (q, z) were spent now."""
        return epsilon([*self.spent, (q, noise_multiplier, steps)], self.delta)

    def round_epsilon(self, q: float, noise_multiplier: float, steps: int) -> float:
        """Epsilon of one round on its own."""
        return epsilon([(q, noise_multiplier, steps)], self.delta)

    def record(self, q: float, noise_multiplier: float, steps: int) -> None:
        self.spent.append((q, noise_multiplier, steps))
        self.rounds += 1

    def add(self, q: float, noise_multiplier: float, steps: int) -> None:
        """Spend an entry that is not a training round (a released profile: one Gaussian mechanism)."""
        self.spent.append((q, noise_multiplier, steps))

    def to_json(self) -> str:
        return json.dumps({"budget": self.budget, "delta": self.delta, "rounds": self.rounds,
                           "spent": [list(s) for s in self.spent]})

    @classmethod
    def from_json(cls, text: str, budget: float, delta: float) -> PrivacyLedger:
        """Restore a ledger under the configured budget and delta (spending is kept as (q, z, steps), so
        a changed delta re-accounts it; a lowered budget may refuse the next round)."""
        doc: dict[str, Any] = json.loads(text)
        spent = [(float(q), float(z), int(n)) for q, z, n in doc.get("spent", [])]
        return cls(budget, delta, spent, int(doc.get("rounds", len(spent))))
