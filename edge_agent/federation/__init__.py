"""Federated training of the seat-demand forecast on Flower: the gateways' floors teach one model.

A library system has many floors and branches, one gateway each: "move the model to the data".
The central system (or ``edge-agent federation serve``) runs a Flower server; each gateway with
``[federation] enabled = true`` runs a Flower client on its own durable history, trains locally
(DP-SGD over zone-days, :mod:`models.quantile_mlp`) in a low-priority worker thread within a CPU
and memory budget, and sends only model parameters and a few scalar figures (the privacy it spent,
held-out errors). The server averages (FedAvg, FedProx when configured), scores each round on the
gateways' held-out weeks, and publishes a model only when it beats the one in use; the gateways
install it through the same checked, atomic swap as ``update_model``.

- :mod:`edge_agent.federation.trainer`: the gateway's side without Flower (data, budget, ledger);
- :mod:`edge_agent.federation.client`: the Flower client and the daemon's training window;
- :mod:`edge_agent.federation.server`: the strategy, the publisher, ``serve``.

Flower (``flwr``) is the ``federation`` extra and is imported only here, through :func:`flower`.
"""

from __future__ import annotations

import os
from types import ModuleType

from models.errors import FederationError


def flower() -> ModuleType:
    """Import Flower with its telemetry off (nothing leaves a gateway that we did not decide to send)."""
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    try:
        import flwr
    except ImportError as exc:
        raise FederationError(f"federated training needs the federation extra: pip install 'edge-agent[federation]' "
                              f"({exc})") from None
    return flwr
