"""``edge-agent demo``: one simulated library day, end to end, with nothing installed but the package.

It starts an embedded MQTT broker (amqtt) on a free local port unless one is given, runs the real
daemon on the example floor with the simulator as fast as possible, shows progress, and prints
the headline figures of the day's report.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edge_agent.embedded_broker import EmbeddedBroker
from edge_agent.simulate import SimulationOptions, run_simulation

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SCENARIO = REPO_ROOT / "simulator" / "scenarios" / "normal-day.toml"


def _progress(clock_text: str, fraction: float) -> None:
    """A bar redrawn in place on a terminal; in a log (CI, a pipe) one line per simulated two hours."""
    if sys.stderr.isatty():
        bar = "#" * int(fraction * 30)
        sys.stderr.write(f"\r  simulating {clock_text}  [{bar:<30}] {fraction * 100:5.1f}%")
    elif (clock_text.endswith(":30") and int(clock_text[:2]) % 2 == 1) or fraction >= 1.0:
        sys.stderr.write(f"  simulated up to {clock_text} ({fraction * 100:.0f}%)\n")
    sys.stderr.flush()


def _fmt(value: Any, spec: str = ".2f") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float | int):
        return format(value, spec)
    return str(value)


#: The loads of the report's breakdown, as the headline names them.
LOADS = {"luminaires": "luminaires", "desk_lamps": "desk lamps", "fans": "fans",
         "ventilation_air": "ventilation air", "zone_conditioning": "zone heating/cooling"}


def _percent(value: Any, spec: str = ".1f") -> str:
    return _fmt(value * 100 if isinstance(value, float | int) else None, spec)


def energy_lines(report: dict[str, Any]) -> list[str]:
    """The whole floor against a conventional one, every load named, and comfort on both floors."""
    mine = report.get("energy_by_load_kwh") or {}
    base = report.get("baseline_energy_by_load_kwh") or {}
    band = report.get("comfort_band_c") or [None, None]
    underlit = _percent(report.get("underlit_occupied_seat_minutes_fraction") or 0, ".2f")
    underlit_base = _percent(report.get("baseline_underlit_occupied_seat_minutes_fraction") or 0, ".2f")
    by_load = "; ".join(f"{name} {_fmt(mine.get(key))} vs {_fmt(base.get(key))}" for key, name in LOADS.items())
    return [
        f"whole floor: {_fmt(report.get('total_energy_kwh'))} kWh vs {_fmt(report.get('baseline_total_energy_kwh'))} "
        f"kWh on a conventional floor (saving {_percent(report.get('total_saving'))}%)",
        f"  by load, kWh (gateway vs conventional): {by_load}",
        f"lighting: {_fmt(report.get('lighting_kwh'))} kWh vs {_fmt(report.get('baseline_lighting_kwh'))} kWh "
        f"all-on schedule (saving {_percent(report.get('lighting_saving'))}%)",
        f"comfort (conventional floor in brackets): occupied zone-minutes outside {_fmt(band[0], 'g')}-"
        f"{_fmt(band[1], 'g')} C {report.get('occupied_minutes_outside_comfort')} "
        f"({report.get('baseline_occupied_minutes_outside_comfort')}); CO2 over 1000 ppm "
        f"{report.get('co2_over_1000ppm_minutes')} zone-minutes ({report.get('baseline_co2_over_1000ppm_minutes')}); "
        f"under-lit occupied seat-minutes {underlit}% ({underlit_base}%)",
    ]


def _spread(value: Any) -> str:
    """p50/p90 of a ``{p50, p90}`` figure in seconds."""
    value = value or {}
    return f"{_fmt(value.get('p50'), '.0f')}/{_fmt(value.get('p90'), '.0f')} s"


def seat_lines(report: dict[str, Any]) -> list[str]:
    """Seat states against the truth, and seats for patrons against the conventional floor (no gateway)."""
    wanted = report.get("seats_wanted") or {}
    crunch = ""
    if wanted.get("over_capacity_minutes"):
        crunch = (f"; up to {wanted.get('peak')} wanted a seat at once ({wanted.get('seats')} seats), "
                  f"{wanted.get('over_capacity_from')}-{wanted.get('over_capacity_to')}")
    by_truth = report.get("seat_state_accuracy_by_truth") or {}
    truths = ", ".join(f"{k} {_fmt(by_truth.get(k), '.3f')}" for k in ("free", "occupied", "away", "ghost"))
    return [
        f"seat-state accuracy vs truth: {_fmt(report.get('seat_state_accuracy'), '.3f')} "
        f"(the sensors' ceiling: {_fmt(report.get('seat_state_accuracy_ceiling'), '.3f')}; by truth: {truths}); "
        f"unknown seat-minutes {report.get('unknown_seat_minutes')}; zone count MAE: "
        f"{_fmt(report.get('zone_count_mae'), '.2f')}",
        f"seats (conventional floor in brackets): utilisation {_percent(report.get('seat_utilisation'))}% "
        f"({_percent(report.get('baseline_seat_utilisation'))}%); demand met "
        f"{_percent(report.get('seat_demand_met'))}% ({_percent(report.get('baseline_seat_demand_met'))}%) of "
        f"{report.get('arrivals')} arrivals, turned away {report.get('turned_away')} "
        f"({report.get('baseline_turned_away')}); seat search p50/p90 {_spread(report.get('seat_search_s'))} "
        f"({_spread(report.get('baseline_seat_search_s'))}){crunch}",
        f"ghost seats: {report.get('ghost_seat_minutes')} seat-minutes ({report.get('baseline_ghost_seat_minutes')}); "
        f"ghost to release p50/p90 {_spread(report.get('ghost_to_release_s'))} "
        f"({_spread(report.get('baseline_ghost_to_release_s'))}); staff cleared {report.get('staff_cleared')} of "
        f"{report.get('staff_dispatches')} dispatches; patrons back to a cleared seat and none free: "
        f"{report.get('displaced_patrons')}",
    ]


def headline(report: dict[str, Any]) -> list[str]:
    """The demo's summary lines, in the order a library manager reads them."""
    lat = report.get("actuation_latency_s") or {}
    return [
        f"simulated {_fmt(report.get('sim_hours'), '.1f')} h of the library day "
        f"in {_fmt(report.get('wall_seconds'), '.1f')} s wall",
        *energy_lines(report),
        f"actuation latency: p50 {_fmt(lat.get('p50'))} s, p99 {_fmt(lat.get('p99'))} s, max {_fmt(lat.get('max'))} s; "
        f"over 120 s: {report.get('actuations_over_120s')}",
        *seat_lines(report),
        f"MQTT: {report.get('messages_produced')} produced, {report.get('messages_delivered')} delivered, "
        f"{report.get('messages_dropped')} dropped",
        *incident_lines(report),
    ]


def incident_lines(report: dict[str, Any]) -> list[str]:
    """What went wrong on the day, when anything did: the scenario's faults, daemon restarts, lost probes."""
    events = report.get("events") or []
    starts = report.get("daemon_starts") or 1
    lost = report.get("probe_failures") or 0
    if not events and starts <= 1 and not lost:
        return []
    return [f"incidents: {'; '.join(events) or 'no scenario events'}; the daemon started {starts} time(s); "
            f"{lost} minute(s) it could not be asked for its seat states"]


def run_demo(*, broker: tuple[str, int] | None, scenario: Path | None, report: Path | None) -> int:
    scenario = scenario or DEFAULT_SCENARIO
    report_path = report or Path(tempfile.mkdtemp(prefix="edge-agent-demo-")) / "report.json"
    embedded: EmbeddedBroker | None = None
    print(f"edge-agent demo: scenario {scenario.name}, floor examples/floor-3.toml")
    if broker is None:
        embedded = EmbeddedBroker()
        embedded.start()
        broker = ("127.0.0.1", embedded.port)
        print(f"  embedded MQTT broker (amqtt) on 127.0.0.1:{embedded.port}")
    else:
        print(f"  MQTT broker {broker[0]}:{broker[1]}")
    started = time.monotonic()
    try:
        code = run_simulation(SimulationOptions(scenario=scenario, broker=broker, speed=None, report=report_path,
                                                progress=_progress, drain_s=60.0,
                                                mqtt_protocol="3.1.1" if embedded is not None else None))
    finally:
        sys.stderr.write("\n")
        if embedded is not None:
            embedded.stop()
    if code != 0:
        return code
    doc = json.loads(report_path.read_text())
    print(f"done in {time.monotonic() - started:.1f} s; report: {report_path}")
    for line in headline(doc):
        print(f"  {line}")
    return 0
