"""The gateway's Hardware over the simulated parts, its RS-485 nodes behind an in-memory line.

Tests that drive the daemon's own link, pollers and decide loop on virtual time need the same
set-up: the simulated I2C buses, GPIO pins and BLE of ``build_simulated_hardware``, the given
nodes on a ``SimLine`` at 115200 baud, and ``Hardware`` opened over them with the gateway's 1 s
node poll.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

from edge_agent.backend import SimulatedBackend
from edge_agent.config import SiteConfig
from edge_agent.hardware import Hardware
from simulator.clock import VirtualClock
from simulator.hw.floor import SimHardware
from simulator.nodes import SimNode
from simulator.nodes_line import SimLine


@contextlib.asynccontextmanager
async def hardware_on_memory_line(
    cfg: SiteConfig, hw: SimHardware, nodes: Iterable[SimNode], clock: VirtualClock, state_dir: Path,
    *, trace: bool = False,
) -> AsyncIterator[tuple[Hardware, SimLine]]:
    """Open ``Hardware`` over ``hw`` and ``nodes``; closes it on the way out (``hw`` stays the caller's)."""
    line = SimLine(nodes, seed=3, trace=trace)
    async with line.on_memory_line(115200) as mline:
        backend = SimulatedBackend(i2c_buses=hw.buses, pin_factory=hw.pin_factory, ble_backend=hw.ble_backend,
                                   transport=mline.master, serial_streams={}, building_parts=hw.building)
        hardware = Hardware(cfg, backend, clock, state_dir, node_poll_interval_s=1.0)
        await hardware.open()
        assert hardware.link is not None
        try:
            yield hardware, line
        finally:
            await hardware.close()
