"""``edge-agent uwb``: CSV in, positions and biases out; bad input gives clear lines, exit 2."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from edge_agent.cli import main

ANCHORS = {
    "A1": (0.5, 0.5, 2.8),
    "A2": (19.5, 0.3, 2.8),
    "A3": (38.5, 0.5, 2.8),
    "A4": (38.5, 23.5, 2.8),
    "A5": (19.5, 23.7, 2.8),
    "A6": (0.5, 23.5, 2.8),
}
TRUE_BIAS = {"A1": 0.12, "A2": -0.05, "A3": 0.2, "A4": 0.0, "A5": 0.08, "A6": -0.1}


def write(path: Path, header: str, rows: Sequence[Sequence[object]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header.split(","))
        w.writerows(rows)
    return path


@pytest.fixture
def logs(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(31)
    ranges, truth = [], []
    for k in range(40):
        t = float(k)
        for tag in ("tagA", "tagB"):
            p = np.array([rng.uniform(2, 37), rng.uniform(2, 22), 1.0])
            truth.append([t + 0.1, tag, *p])
            for a, xyz in ANCHORS.items():
                d = np.linalg.norm(p - np.array(xyz)) + TRUE_BIAS[a] + rng.normal(0, 0.02)
                ranges.append([round(t + rng.uniform(0, 0.3), 3), tag, a, round(float(d), 4)])
    return {
        "anchors": write(tmp_path / "anchors.csv", "anchor_id,x,y,z", [[a, *xyz] for a, xyz in ANCHORS.items()]),
        "ranges": write(tmp_path / "ranges.csv", "t,tag_id,anchor_id,range_m", ranges),
        "truth": write(tmp_path / "truth.csv", "t,tag_id,x,y,z", truth),
    }


def run(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(args)
        raise SystemExit(0)
    return int(exc.value.code or 0)


def test_solve_writes_one_fix_per_tag_window(logs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "pos.csv"
    code = run(["uwb", "solve", "--anchors", str(logs["anchors"]), "--ranges", str(logs["ranges"]), "--out", str(out)])
    assert code == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["t", "tag_id", "x", "y", "z", "residual_m", "anchors_used", "hdop", "vdop",
                             "offset_m", "dims"]
    assert len(rows) == 80 and {r["tag_id"] for r in rows} == {"tagA", "tagB"}
    assert all(int(r["anchors_used"]) >= 3 for r in rows)
    assert all(0.5 < float(r["hdop"]) < 20 and r["vdop"] == "" and r["dims"] == "2" for r in rows)


def test_3d_on_anchors_at_one_height_gives_2d_fixes_and_a_warning(
    logs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every anchor at 2.8 m: height is not observable. No divergent fix, each 2D at --tag-height, one warning."""
    out = tmp_path / "pos.csv"
    code = run(["uwb", "solve", "--anchors", str(logs["anchors"]), "--ranges", str(logs["ranges"]), "--out", str(out),
                "--3d", "--tag-height", "1.0"])
    assert code == 0
    err = capsys.readouterr().err
    assert "warning: --3d: the anchors cannot observe height for 80 of 80 fixes" in err
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 80
    assert all(r["dims"] == "2" and float(r["z"]) == 1.0 for r in rows)
    assert all(-1 < float(r["x"]) < 40 and -1 < float(r["y"]) < 25 for r in rows)


def test_3d_with_anchors_at_varied_heights_solves_height(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    anchors = {"a": (0.0, 0.0, 0.5), "b": (10.0, 0.0, 3.0), "c": (10.0, 10.0, 0.5), "d": (0.0, 10.0, 3.0),
               "e": (5.0, 5.0, 3.5)}
    rng = np.random.default_rng(32)
    rows = []
    for k in range(20):
        p = np.array([rng.uniform(2, 8), rng.uniform(2, 8), 1.4])
        rows += [[k, "t", a, round(float(np.linalg.norm(p - np.array(xyz)) + rng.normal(0, 0.01)), 4)]
                 for a, xyz in anchors.items()]
    a_path = write(tmp_path / "a.csv", "anchor_id,x,y,z", [[a, *xyz] for a, xyz in anchors.items()])
    r_path = write(tmp_path / "r.csv", "t,tag_id,anchor_id,range_m", rows)
    out = tmp_path / "pos.csv"
    assert run(["uwb", "solve", "--anchors", str(a_path), "--ranges", str(r_path), "--out", str(out), "--3d"]) == 0
    assert "warning" not in capsys.readouterr().err
    fixes = list(csv.DictReader(out.open()))
    assert len(fixes) == 20 and all(r["dims"] == "3" and abs(float(r["z"]) - 1.4) < 0.15 for r in fixes)
    assert all(float(r["vdop"]) < 5 for r in fixes)


def test_calibrate_bias_recovers_biases_and_improves_fixes(
    logs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bias = tmp_path / "bias.csv"
    base = ["--anchors", str(logs["anchors"]), "--ranges", str(logs["ranges"])]
    assert run(["uwb", "calibrate-bias", *base, "--truth", str(logs["truth"]), "--out", str(bias)]) == 0
    got = {r["anchor_id"]: float(r["bias_m"]) for r in csv.DictReader(bias.open())}
    assert got.keys() == TRUE_BIAS.keys()
    assert all(abs(got[a] - TRUE_BIAS[a]) < 0.02 for a in TRUE_BIAS)
    capsys.readouterr()
    assert run(["uwb", "score", *base, "--truth", str(logs["truth"])]) == 0
    before = float(capsys.readouterr().out.split("robust 2D RMSE: ")[1].split()[0])
    assert run(["uwb", "score", *base, "--truth", str(logs["truth"]), "--bias", str(bias)]) == 0
    after = float(capsys.readouterr().out.split("robust 2D RMSE: ")[1].split()[0])
    assert after < before and after < 0.05


def test_malformed_rows_are_reported_with_line_numbers_and_skipped(
    logs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = logs["ranges"].read_text().splitlines()
    text.insert(3, "1.0,tagA,A1,not-a-number")
    text.insert(5, "1.0,tagA,A1")
    text.insert(7, "nan,tagA,A1,3.0")
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(text) + "\n")
    out = tmp_path / "pos.csv"
    code = run(["uwb", "solve", "--anchors", str(logs["anchors"]), "--ranges", str(bad), "--out", str(out)])
    assert code == 0
    err = capsys.readouterr().err
    assert f"{bad}:4: range_m" in err and f"{bad}:6: 3 fields, expected 4" in err and f"{bad}:8: t" in err
    assert "3 problem row(s) skipped" in err
    assert len(list(csv.DictReader(out.open()))) == 80


def test_wrong_header_is_refused_with_exit_2(
    logs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path / "r.csv", "time,tag,anchor_id,range_m", [[0, "t", "A1", 3]])
    code = run(["uwb", "solve", "--anchors", str(logs["anchors"]), "--ranges", str(bad), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing t,tag_id" in err[0] and "unexpected time,tag" in err[0]
    code = run(["uwb", "solve", "--anchors", str(tmp_path / "nope.csv"), "--ranges", str(bad), "--out", "x"])
    assert code == 2


def test_windows_with_too_few_anchors_give_no_fix(logs: dict[str, Path], tmp_path: Path) -> None:
    two = write(
        tmp_path / "r.csv",
        "t,tag_id,anchor_id,range_m",
        [[0.0, "x", "A1", 5.0], [0.1, "x", "A2", 15.0], [5.0, "x", "A1", 5.0], [5.0, "x", "A9", 5.0]],
    )
    out = tmp_path / "pos.csv"
    assert run(["uwb", "solve", "--anchors", str(logs["anchors"]), "--ranges", str(two), "--out", str(out)]) == 0
    assert list(csv.DictReader(out.open())) == []
