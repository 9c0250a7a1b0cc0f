"""Calibration store: correction math, undo, history, sanity ranges, and crash-safe writes."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.calibration import (
    FRC_MIN_RUNNING_S,
    TWO_POINT_WINDOW_S,
    CalibrationError,
    CalibrationStore,
    Correction,
    check_frc,
    check_reference,
)
from tests.control.conftest import FixedClock


@pytest.fixture
def store(tmp_path: Path, clock: FixedClock) -> CalibrationStore:
    return CalibrationStore(tmp_path / "cal.json", clock=clock)


def test_uncalibrated_sensor_passes_values_through(store: CalibrationStore) -> None:
    assert store.coefficients("lux-1") == {}
    assert store.apply("lux-1", "lux", 123.4) == 123.4
    assert store.history("lux-1") == []


def test_gain_from_one_reference(store: CalibrationStore) -> None:
    entry = store.calibrate_gain("lux-1", "lux", reference=520.0, raw=400.0, user="alice")
    assert store.coefficients("lux-1")["lux"] == Correction(1.3, 0.0)
    assert store.apply("lux-1", "lux", 100.0) == pytest.approx(130.0)
    assert entry["old"] == {"gain": 1.0, "offset": 0.0} and entry["new"] == {"gain": 1.3, "offset": 0.0}
    assert (entry["reference"], entry["raw"], entry["user"], entry["action"]) == (520.0, 400.0, "alice", "gain")


def test_second_point_makes_two_point_fit(store: CalibrationStore, clock: FixedClock) -> None:
    store.add_point("lux-1", "lux", reference=130.0, raw=100.0, user="alice")
    clock.t += 300
    entry = store.add_point("lux-1", "lux", reference=610.0, raw=500.0, user="alice")
    c = store.coefficients("lux-1")["lux"]
    assert entry["action"] == "two-point"
    assert c.gain == pytest.approx(1.2) and c.offset == pytest.approx(10.0)
    assert store.apply("lux-1", "lux", 100.0) == pytest.approx(130.0)
    assert store.apply("lux-1", "lux", 500.0) == pytest.approx(610.0)


def test_point_after_window_or_at_same_level_starts_over(store: CalibrationStore, clock: FixedClock) -> None:
    store.add_point("lux-1", "lux", reference=130.0, raw=100.0, user="a")
    clock.t += TWO_POINT_WINDOW_S + 1
    assert store.add_point("lux-1", "lux", reference=600.0, raw=500.0, user="a")["action"] == "gain"
    assert store.add_point("lux-1", "lux", reference=660.0, raw=550.0, user="a")["action"] == "gain"  # too close
    assert store.coefficients("lux-1")["lux"] == Correction(1.2, 0.0)


def test_two_point_with_implausible_slope_is_refused(store: CalibrationStore) -> None:
    store.add_point("lux-1", "lux", reference=100.0, raw=100.0, user="a")
    with pytest.raises(CalibrationError, match="two-point gain"):
        store.add_point("lux-1", "lux", reference=5000.0, raw=300.0, user="a")
    assert store.coefficients("lux-1")["lux"] == Correction(1.0, 0.0)  # unchanged


def test_offset_keeps_gain(store: CalibrationStore) -> None:
    store.calibrate_offset("rh-1", "temperature", reference=21.5, raw=22.3, user="bob")
    assert store.apply("rh-1", "temperature", 22.3) == pytest.approx(21.5)
    store.calibrate_offset("rh-1", "humidity", reference=45.0, raw=41.0, user="bob")
    assert store.coefficients("rh-1") == {"temperature": Correction(1.0, pytest.approx(-0.8)),  # type: ignore[arg-type]
                                          "humidity": Correction(1.0, 4.0)}  # fmt: skip


@settings(deadline=None)  # each example writes a calibration file: its time is the machine's, not the test's
@given(raw=st.floats(2, 50_000), gain=st.floats(0.3, 4.9))
def test_gain_reproduces_reference(tmp_path_factory: pytest.TempPathFactory, raw: float, gain: float) -> None:
    reference = raw * gain
    if reference > 100_000:
        return
    s = CalibrationStore(tmp_path_factory.mktemp("h") / "cal.json", clock=FixedClock())
    s.calibrate_gain("x", "lux", reference, raw, "u")
    assert s.apply("x", "lux", raw) == pytest.approx(reference, rel=1e-9)


def test_undo_walks_back_and_is_recorded(store: CalibrationStore, clock: FixedClock) -> None:
    store.calibrate_offset("rh-1", "temperature", 21.0, 22.0, "a")  # offset -1
    clock.t += 10
    store.calibrate_offset("rh-1", "temperature", 21.0, 23.0, "b")  # offset -2
    undo = store.undo("rh-1", "temperature", "c")
    assert store.coefficients("rh-1")["temperature"].offset == pytest.approx(-1.0)
    assert undo["old"]["offset"] == pytest.approx(-2.0) and undo["user"] == "c"
    store.undo("rh-1", "temperature", "c")
    assert store.coefficients("rh-1")["temperature"] == Correction(1.0, 0.0)
    with pytest.raises(CalibrationError, match="no temperature calibration to undo"):
        store.undo("rh-1", "temperature", "c")
    actions = [(e["action"], e["undone"]) for e in store.history("rh-1")]
    assert actions == [("offset", True), ("offset", True), ("undo", False), ("undo", False)]


def test_load_cell_tare_scale_and_undo_of_each(store: CalibrationStore) -> None:
    store.calibrate_offset("w-1", "mass", 0.0, 20_000.0, "tech")  # tare: the desktop's dead load reads 0
    store.calibrate_scale("w-1", "mass", 2000.0, 22_070.0, "tech")  # the cells read 3.5 % high
    assert store.apply("w-1", "mass", 21_035.0) == pytest.approx(1000.0)
    store.undo("w-1", "mass", "tech")  # the scale goes, the tare stays
    assert store.apply("w-1", "mass", 21_035.0) == pytest.approx(1035.0)
    store.undo("w-1", "mass", "tech")
    assert store.apply("w-1", "mass", 21_035.0) == 21_035.0
    assert [e["action"] for e in store.history("w-1")] == ["offset", "scale", "undo", "undo"]


def test_a_scale_from_a_mass_that_is_not_on_the_platform_is_refused(store: CalibrationStore) -> None:
    store.calibrate_offset("w-1", "mass", 0.0, 20_000.0, "tech")
    with pytest.raises(CalibrationError, match="put the known mass alone on the cleared platform"):
        store.calibrate_scale("w-1", "mass", 500.0, 20_001.0, "tech")  # a gram of noise is no 500 g
    with pytest.raises(CalibrationError, match="not above the tared zero"):
        store.calibrate_scale("w-1", "mass", 500.0, 19_990.0, "tech")
    assert [e["action"] for e in store.history("w-1")] == ["offset"]


def test_undo_of_device_held_change_is_refused(store: CalibrationStore) -> None:
    store.record("co2-1", "co2", "frc", "a", old={}, new={"frc_correction_ppm": -35}, reference=420.0, raw=455.0)
    with pytest.raises(CalibrationError, match="held by the device"):
        store.undo("co2-1", "co2", "a")


def test_history_records_time_sync_user_and_survives_reopen(tmp_path: Path) -> None:
    clock = FixedClock(t=1_700_000_123.0, synced=False)
    s = CalibrationStore(tmp_path / "cal.json", clock=clock)
    s.calibrate_gain("lux-1", "lux", 500.0, 400.0, "alice")
    s.close()
    again = CalibrationStore(tmp_path / "cal.json", clock=clock)
    (entry,) = again.history("lux-1")
    assert entry["at"] == 1_700_000_123.0 and entry["synced"] is False and entry["user"] == "alice"
    assert again.apply("lux-1", "lux", 400.0) == pytest.approx(500.0)


@pytest.mark.parametrize(
    ("quantity", "reference", "message"),
    [
        ("lux", -1.0, "outside the plausible lux range 0..100000"),
        ("lux", 250_000.0, "outside the plausible lux range"),
        ("temperature", 85.0, "-20..60"),
        ("humidity", 101.0, "0..100"),
        ("co2", 300.0, "400..5000"),
        ("lux", float("nan"), "outside"),
        ("pressure", 1000.0, "cannot calibrate 'pressure'"),
    ],
)
def test_reference_out_of_range_is_refused(quantity: str, reference: float, message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        check_reference(quantity, reference)


def test_store_refuses_bad_references_and_wild_corrections(store: CalibrationStore) -> None:
    with pytest.raises(CalibrationError, match="outside the plausible temperature range"):
        store.calibrate_offset("rh-1", "temperature", 75.0, 22.0, "a")
    with pytest.raises(CalibrationError, match="beyond ±10"):
        store.calibrate_offset("rh-1", "temperature", 40.0, 22.0, "a")
    with pytest.raises(CalibrationError, match="switch the lights on"):
        store.calibrate_gain("lux-1", "lux", 300.0, 0.0, "a")
    with pytest.raises(CalibrationError, match=r"outside 0\.2\.\.5"):
        store.calibrate_gain("lux-1", "lux", 3000.0, 100.0, "a")
    assert store.history("rh-1") == [] and store.history("lux-1") == []


def test_frc_preconditions() -> None:
    check_frc(420.0, FRC_MIN_RUNNING_S + 1)
    with pytest.raises(CalibrationError, match=r"400\.\.2000 ppm"):
        check_frc(2500.0, 1000.0)
    with pytest.raises(CalibrationError, match="running for 60 s"):
        check_frc(420.0, 60.0)
    with pytest.raises(CalibrationError, match="not running"):
        check_frc(420.0, None)


WRITER = textwrap.dedent("""
    import sys
    from edge_agent.calibration import CalibrationStore
    class Clock:
        synced = True
        def time(self): return 1.0
    store = CalibrationStore(sys.argv[1], clock=Clock())
    i = len(store.history("rh-1"))
    print("ready", flush=True)
    while True:
        i += 1
        store.calibrate_offset("rh-1", "temperature", 20.0 + (i % 50) / 10, 20.0, "u" + str(i))
        store.calibrate_gain("lux-" + str(i % 7), "lux", 100.0 + i % 300, 100.0, "u")
""")


def test_killed_writer_never_leaves_a_half_written_file(tmp_path: Path) -> None:
    path = tmp_path / "cal.json"
    rng = random.Random(1234)
    seen_lengths = []
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.05, 0.3))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(5)
        doc = json.loads(path.read_text())  # must parse, every time
        store = CalibrationStore(path, clock=FixedClock())
        history = store.history("rh-1")
        assert history, "the writer made no progress"
        last = history[-1]
        # the coefficients are exactly those of the last history entry: one complete state
        assert store.coefficients("rh-1")["temperature"].offset == pytest.approx(last["new"]["offset"])
        assert last["user"] == f"u{len(history)}"
        assert [e["user"] for e in history] == [f"u{n}" for n in range(1, len(history) + 1)]
        seen_lengths.append(len(history))
        store.close()
        assert isinstance(doc, dict)
    assert seen_lengths == sorted(seen_lengths) and seen_lengths[-1] > seen_lengths[0]
    assert not list(tmp_path.glob(".cal.json.*.tmp"))  # leftovers of cut writes are cleaned on open


def test_undo_of_recorded_position_returns_the_earlier_state(store: CalibrationStore) -> None:
    store.record("anchor-2", "position", "position", "a", old={"x": 10.0, "y": 0.0, "z": 2.5},
                 new={"x": 10.2, "y": 0.1, "z": 2.4})  # fmt: skip
    undo = store.undo("anchor-2", "position", "b")
    assert undo["new"] == {"x": 10.0, "y": 0.0, "z": 2.5} and undo["old"] == {"x": 10.2, "y": 0.1, "z": 2.4}
    assert store.coefficients("anchor-2") == {}
    with pytest.raises(CalibrationError, match="no position calibration to undo"):
        store.undo("anchor-2", "position", "b")
