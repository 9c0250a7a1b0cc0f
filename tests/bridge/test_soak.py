"""The acceptance run: 24 nodes, 1 % byte errors, 1 Hz polls plus commands, 10 simulated minutes."""

from __future__ import annotations

import pytest

from simulator.clock import run_virtual
from simulator.nodes_workload import soak


@pytest.mark.slow
def test_ten_minutes_of_noisy_line_confirms_commands_and_never_misactuates() -> None:
    result = run_virtual(soak(nodes=24, seconds=600, baud=115200, byte_error_rate=0.01, seed=1))
    assert result.commands > 24 * 600 / 5  # every node commanded every 2-5 s
    assert result.confirmed_in_time / result.commands >= 0.999, result
    assert result.wrong == []
    assert result.line_errors > 1000  # the noise really hit the line
    assert 0.05 < result.utilisation < 0.6


@pytest.mark.slow
def test_soak_detects_a_node_that_misapplies() -> None:
    """The soak's audit must be able to fail: a node that ignores every fifth lamp command is caught."""
    import simulator.nodes as nodes_module

    original = nodes_module.SimNode._apply
    calls = {"n": 0}

    def forgetful(self: nodes_module.SimNode, cmd: object, now: float) -> None:
        calls["n"] += 1
        if calls["n"] % 5:
            original(self, cmd, now)  # type: ignore[arg-type]

    nodes_module.SimNode._apply = forgetful  # type: ignore[method-assign]
    try:
        result = run_virtual(soak(nodes=4, seconds=30, byte_error_rate=0.0, seed=2))
    finally:
        nodes_module.SimNode._apply = original  # type: ignore[method-assign]
    assert result.wrong, "a node that drops commands went unnoticed"
