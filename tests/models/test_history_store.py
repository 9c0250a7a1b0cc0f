"""The durable zone history: slots, retention, power cuts, export into training, a daemon restart."""

from __future__ import annotations

import csv
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edge_agent.cli import cli
from edge_agent.history import HistoryStore, ZoneRecorder
from models.errors import HistoryStoreError
from models.history import read_history_csv, resample
from tests.clirunner import CliRunner

T0 = datetime(2024, 10, 7, 8, 0)


def test_a_slot_is_written_once_when_the_next_begins(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite")
    assert store.record(T0 + timedelta(minutes=1), {"z": (3.0, 9.0)}) == 0
    assert store.record(T0 + timedelta(minutes=9), {"z": (4.0, 8.0)}) == 0  # same slot (08:00, 08:15]
    assert store.record(T0 + timedelta(minutes=16), {"z": (5.0, 7.0)}) == 1  # 08:15 closed: committed
    assert list(store.rows()) == [(T0 + timedelta(minutes=15), "z", 4.0)]
    store.close()  # flushes the slot in progress
    again = HistoryStore(tmp_path / "h.sqlite")
    assert [v for _, _, v in again.rows()] == [4.0, 5.0]
    again.close()


def test_the_store_rebuilds_the_training_grid(tmp_path: Path) -> None:
    obs = [(T0 + timedelta(minutes=7 * i), float(i % 13)) for i in range(400)]
    store = HistoryStore(tmp_path / "h.sqlite")
    for t, v in obs:
        store.record(t, {"z": (v, None)})
    store.close()
    stored = HistoryStore(tmp_path / "h.sqlite").observations()["z"]
    a, b = resample(obs, T0 + timedelta(hours=1), obs[-1][0]), resample(stored, T0 + timedelta(hours=1), obs[-1][0])
    assert list(a.values) == list(b.values)


def test_a_recorded_history_seeds_the_store_in_one_go_as_live_recording_would(tmp_path: Path) -> None:
    obs = [(T0 + timedelta(minutes=7 * i), float(i % 13)) for i in range(400)]
    live = HistoryStore(tmp_path / "live.sqlite")
    for t, v in obs:
        live.record(t, {"z": (v, None)})
    live.close()
    seeded = HistoryStore(tmp_path / "seeded.sqlite")
    assert seeded.record_many((t, "z", v) for t, v in obs) == len({t for t, _, _ in HistoryStore(
        tmp_path / "live.sqlite", readonly=True).rows()})
    seeded.close()
    want, got = (list(HistoryStore(tmp_path / f, readonly=True).rows()) for f in ("live.sqlite", "seeded.sqlite"))
    assert got == want and len(got) > 100


def test_retention_prunes_old_rows(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite", retention_days=30)
    for day in range(60):
        store.record(T0 + timedelta(days=day), {"z": (float(day), None)})
    store.flush()
    store.prune(T0 + timedelta(days=59))
    first, _, rows = store.span() or (T0, T0, 0)
    assert first >= T0 + timedelta(days=29) and rows <= 31
    store.close()


def test_committed_slots_survive_a_power_cut(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    script = textwrap.dedent(f"""
        import os
        from datetime import datetime, timedelta
        from edge_agent.history import HistoryStore
        store = HistoryStore({str(path)!r})
        t0 = datetime(2024, 10, 7, 8, 0)
        for i in range(10):
            store.record(t0 + timedelta(minutes=15 * i + 1), {{"z": (float(i), None)}})
        os._exit(0)  # no close, no flush: the power goes
    """)
    subprocess.run([sys.executable, "-c", script], check=True)
    store = HistoryStore(path)
    assert [v for _, _, v in store.rows()] == [float(i) for i in range(9)]  # all but the slot in progress
    store.close()


def test_recorder_warms_memory_from_the_store(tmp_path: Path) -> None:
    store = HistoryStore.in_state_dir(tmp_path)
    for i in range(200):
        store.record(T0 + timedelta(minutes=15 * i), {"q": (float(i % 7), 1.0), "gone": (1.0, None)})
    store.close()
    recorder = ZoneRecorder.open({"q": 12.0}, tmp_path, 400, T0 + timedelta(days=3))
    assert recorder.warmed == 200 and len(recorder.histories["q"]) == 200 and recorder.problem == ""
    recorder.close()


def test_unusable_store_is_reported_and_memory_goes_on(tmp_path: Path) -> None:
    (tmp_path / "history.sqlite").mkdir()  # a directory where the file should be
    recorder = ZoneRecorder.open({"q": 12.0}, tmp_path, 400, T0)
    assert recorder.store is None and "history.sqlite" in recorder.problem
    recorder.note(T0, {"q": (3.0, None)})
    assert len(recorder.histories["q"]) == 1


# The forecast loop closes the store when it stops, on the event loop, while the retention sweep may be
# pruning it in a worker thread (or the forecast loop's own write-through may still run in one). The
# writer here is parked inside its write by an SQLite progress handler, deterministically, and the
# store is closed from another thread meanwhile. In a child process: a connection closed under a
# running write killed its process with a segmentation fault.
CLOSE_DURING_WRITE = """
import sys, threading
from datetime import datetime, timedelta
from edge_agent.history import HistoryStore

path = sys.argv[1]
store = HistoryStore(path)
inside, release = threading.Event(), threading.Event()

def park():
    if not release.is_set():
        inside.set()
        release.wait(30)
    return 0

rows = [(datetime(2024, 10, 7) + timedelta(minutes=15 * i), f"z{i % 8}", float(i % 7)) for i in range(2000)]
outcome = {}

def write():
    store._db.set_progress_handler(park, 1000)
    outcome["written"] = store.record_many(rows)

writer = threading.Thread(target=write)
writer.start()
assert inside.wait(30), "the write never started"
closer = threading.Thread(target=store.close)
closer.start()
closer.join(0.2)
outcome["close_waited"] = closer.is_alive()
release.set()
writer.join(30)
closer.join(30)
again = HistoryStore(path, readonly=True)
print(outcome["written"], outcome["close_waited"], sum(1 for _ in again.rows()))
"""


def test_closing_the_store_waits_for_a_write_in_another_thread(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-X", "faulthandler", "-c", CLOSE_DURING_WRITE,
                           str(tmp_path / "h.sqlite")], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["2000", "True", "2000"]  # written, close waited for it, all kept


def test_a_closed_store_refuses_in_one_line(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite")
    store.record_many([(T0, "z", 1.0), (T0 + timedelta(minutes=15), "z", 2.0)])
    reading = store.rows()
    assert next(reading) == (T0, "z", 1.0)
    store.close()
    store.close()  # twice is harmless (the forecast loop's and the daemon's stops)
    with pytest.raises(HistoryStoreError, match="closed"):
        store.prune(T0)
    with pytest.raises(HistoryStoreError, match="closed"):
        store.span()
    assert list(reading) == [(T0 + timedelta(minutes=15), "z", 2.0)]  # the batch read before the close


def test_rows_are_read_in_batches_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edge_agent.history as history

    monkeypatch.setattr(history, "READ_BATCH", 5)
    store = HistoryStore(tmp_path / "h.sqlite")
    rows = [(T0 + timedelta(minutes=15 * (i // 3)), f"z{i % 3}", float(i)) for i in range(17)]
    store.record_many(rows)
    assert list(store.rows()) == [(t + timedelta(0), z, v) for t, z, v in rows]
    assert list(store.rows(since=T0 + timedelta(minutes=30), until=T0 + timedelta(minutes=60))) == rows[6:12]
    store.close()


def test_export_round_trips_into_training(tmp_path: Path, history_files: tuple[Path, Path]) -> None:
    source = read_history_csv(history_files[0])
    store = HistoryStore.in_state_dir(tmp_path / "state")
    rows = sorted((t, z, v) for z, obs in source.items() for t, v in obs)
    for t, z, v in rows:
        store.record(t, {z: (v, None)})
    store.close()
    out = tmp_path / "H.csv"
    runner = CliRunner()
    result = runner.invoke(cli, ["model", "history", "export", "--state-dir", str(tmp_path / "state"),
                                 "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with out.open() as handle:
        header = next(csv.reader(handle))
    assert header == ["timestamp", "zone", "occupied"]
    exported = read_history_csv(out)
    assert set(exported) == set(source) and len(exported["quiet"]) == len(source["quiet"])
    model = tmp_path / "m.onnx"
    result = runner.invoke(cli, ["model", "train", "--history", str(out), "--max-iter", "5", "--horizons", "15,60",
                                 "--out", str(model)], catch_exceptions=False)
    assert result.exit_code == 0 and model.stat().st_size > 1000, result.output


def test_export_without_history_says_where_to_look(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["model", "history", "export", "--state-dir", str(tmp_path), "--out",
                                      str(tmp_path / "H.csv")])
    assert result.exit_code != 0
    assert "no zone history" in str(result.exception or result.output)


@pytest.mark.slow
def test_history_survives_a_daemon_restart(tmp_path: Path) -> None:
    from tests.control.simfloor import LiveFloor

    state = tmp_path / "state"
    state.mkdir()
    with LiveFloor(state, speed=600.0) as floor:
        floor.wait_for("two committed slots", lambda: _committed(floor) >= 12, wall_s=90)  # six zones
    kept = HistoryStore(state / "history.sqlite", readonly=True)
    stored = kept.span()
    kept.close()
    assert stored is not None and stored[2] >= 12
    with LiveFloor(state, speed=600.0) as floor:
        # The forecast loop opens the history once the model is loaded, a moment after start-up.
        recorder = floor.wait_for("the zone history opened", lambda: floor.on_loop(lambda: floor.gateway.zone_history),
                                  wall_s=60)
        assert recorder.warmed >= stored[2]


def _committed(floor: Any) -> int:
    recorder = floor.on_loop(lambda: floor.gateway.zone_history)
    if recorder is None or recorder.store is None:
        return 0
    span = recorder.store.span()
    return 0 if span is None else span[2]
