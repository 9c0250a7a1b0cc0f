"""``edge-agent model``: train and eval end to end on a generated history, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.cli import main
from models.inference import Forecaster

UNTIL = "2024-11-04"


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(history_files: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    history, calendar = history_files
    out = tmp_path_factory.mktemp("model") / "m.onnx"
    main(["model", "train", "--history", str(history), "--calendar", str(calendar), "--until", UNTIL,
          "--horizons", "15,30,60", "--max-iter", "60", "--out", str(out)])
    return out


def test_train_writes_a_checked_model(trained: Path) -> None:
    model = Forecaster.from_path(trained)
    meta = model.info.metadata
    assert model.horizons == (15, 30, 60)
    assert meta["zones"] == "group,quiet"
    assert json.loads(meta["zone_scale"]) == {"group": 8.0, "quiet": 12.0}
    assert meta["training_span"].endswith("2024-11-03T23:45:00")  # nothing at or after --until
    assert set(json.loads(meta["metrics"])) == {"15", "30", "60"}


def test_eval_json_shape_and_skill(
    trained: Path, history_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    history, calendar = history_files
    code, out, _ = run(["model", "eval", "--history", str(history), "--model", str(trained), "--calendar",
                        str(calendar), "--from", UNTIL, "--json"], capsys)
    assert code == 0
    report = json.loads(out)  # exactly one object, nothing else on stdout
    assert set(report) == {"horizons", "model_mae", "baseline_mae", "skill", "rows"}
    assert report["horizons"] == [15, 30, 60]
    keys = {"15", "30", "60"}
    assert set(report["model_mae"]) == keys and set(report["skill"]) == keys
    assert set(report["baseline_mae"]) == {
        "last_value", "same_time_yesterday", "same_time_last_week", "weekday_time_mean"}
    assert all(set(v) == keys for v in report["baseline_mae"].values())
    assert report["rows"] == 2 * (14 * 96 - 4)  # 14 days x 2 zones, less the last hour (no 60-min target)
    for h in keys:
        best = min(v[h] for v in report["baseline_mae"].values())
        assert report["skill"][h] == pytest.approx(1 - report["model_mae"][h] / best, abs=1e-3)
        # The model beats every naive lag at every horizon; the weekday profile, fitted on the
        # same three weeks, is close to the simulator's noise floor and is beaten at 15 minutes.
        for lag in ("last_value", "same_time_yesterday", "same_time_last_week"):
            assert report["model_mae"][h] < report["baseline_mae"][lag][h], (h, lag, report)
    assert report["skill"]["15"] > 0.0, report


def test_eval_table(trained: Path, history_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["model", "eval", "--history", str(history_files[0]), "--model", str(trained)], capsys)
    assert code == 0 and "same_time_last_week" in out and "rows:" in out


def test_horizon_below_sampling_interval_is_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["timestamp,zone,occupied"]
    for i in range(14 * 48):  # two weeks every 30 minutes
        hour, minute = divmod(30 * (i % 48), 60)
        lines.append(f"2024-10-{7 + i // 48:02d}T{hour:02d}:{minute:02d}:00+02:00,hall,{(i % 48) // 2}")
    (tmp_path / "h.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, _out, err = run(["model", "train", "--history", str(tmp_path / "h.csv"), "--horizons", "15,30",
                          "--max-iter", "10", "--out", str(tmp_path / "m.onnx")], capsys)
    assert code == 0, err
    assert "horizon 15 min skipped" in err
    assert Forecaster.from_path(tmp_path / "m.onnx").horizons == (30,)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--history", "{bad}"], "bad.csv:3: bad timestamp"),
        (["--history", "{good}", "--horizons", "20"], "multiple of 15"),
        (["--history", "{good}", "--until", "soon"], "is not a date"),
        (["--history", "{good}", "--calendar", "{bad}"], "not valid TOML"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    tmp_path: Path, history_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,zone,occupied\n2024-10-07T08:00,z,1\n07/10/2024 08:15,z,2\n", encoding="utf-8")
    filled = [a.format(bad=bad, good=history_files[0]) for a in args]
    code, _out, err = run(["model", "train", *filled, "--out", str(tmp_path / "m.onnx")], capsys)
    assert code == 2
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "m.onnx").exists()


def test_eval_rejects_a_corrupt_model(
    tmp_path: Path, history_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "m.onnx").write_bytes(b"not a model")
    code, _, err = run(["model", "eval", "--history", str(history_files[0]), "--model", str(tmp_path / "m.onnx")],
                       capsys)
    assert code == 2 and "not a loadable ONNX model" in err and len(err.strip().splitlines()) == 1
