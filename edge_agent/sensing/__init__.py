"""Sensing pipeline: readings in, a rules.state.FloorState out. Pure computation, no I/O.

- :mod:`.thermal`   AMG8833 frames -> background, warm blobs, per-seat presence
- :mod:`.seats`     presence over time -> free / occupied / away / ghost / unknown
- :mod:`.uwb`       ranges -> robust position fixes (and the plain least-squares baseline)
- :mod:`.tags`      tag pseudonyms and per-tag smoothing
- :mod:`.zones`     environment per zone with quality
- :mod:`.floor`     :class:`FloorModel`, the object the daemon feeds
- :mod:`.scoring`   accuracy of seat states and zone counts against simulator truth
- :mod:`.uwb_logs`  recorded UWB logs (CSV) for the ``edge-agent uwb`` commands
"""

from edge_agent.sensing.floor import FloorModel, ThermalStatus
from edge_agent.sensing.seats import SeatStateMachine, SeatTiming
from edge_agent.sensing.tags import TagTrack, pseudonymise
from edge_agent.sensing.thermal import ThermalParams, ThermalSeatDetector
from edge_agent.sensing.uwb import Fix, solve, solve_linear, solve_robust

__all__ = [
    "Fix",
    "FloorModel",
    "SeatStateMachine",
    "SeatTiming",
    "TagTrack",
    "ThermalParams",
    "ThermalSeatDetector",
    "ThermalStatus",
    "pseudonymise",
    "solve",
    "solve_linear",
    "solve_robust",
]
