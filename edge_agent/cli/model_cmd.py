"""``edge-agent model``: train, evaluate, inspect the seat-demand model; simulate a history.

Training needs the ``train`` extra (scikit-learn, onnx) and runs off the gateway; ``eval`` and
``info`` need only onnxruntime. Bad input (CSV lines, dates, calendars, models) ends with one
line naming the file and line, exit code 2.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from drivers.errors import ModelError

#: models.features.FEATURE_VERSIONS, newest last (spelled out: the CLI does not import numpy to start)
FEATURE_SETS = ("demand-v3", "demand-v4", "demand-v5")

if TYPE_CHECKING:
    from models.calendar import LibraryCalendar


def _parse_when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date; write 2024-11-01 or 2024-11-01T08:00", param_hint=option
        ) from None
    return parsed.replace(tzinfo=None)


def _parse_horizons(value: str) -> list[int]:
    try:
        out = [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r}: write minutes separated by commas, e.g. 15,30,60") from None
    if not out:
        raise click.BadParameter("give at least one horizon, e.g. 15,30,60")
    return out


def _calendar(path: Path | None) -> LibraryCalendar | None:
    from models.calendar import LibraryCalendar

    return LibraryCalendar.load(path) if path is not None else None


@click.group()
def model() -> None:
    """Train, evaluate and inspect the seat-demand model."""


@model.command()
@click.option("--history", "history_path", type=click.Path(path_type=Path), required=True,
              help="CSV with header timestamp,zone,occupied.")
@click.option("--calendar", "calendar_path", type=click.Path(path_type=Path), default=None,
              help="Calendar TOML ([[periods]] start/end/type, [[holidays]] date).")
@click.option("--horizons", default="15,30,60", show_default=True, help="Minutes ahead, multiples of 15.")
@click.option("--until", "until", default=None, help="Train only on data before this date/time (for eval splits).")
@click.option("--capacity", multiple=True, help="ZONE=SEATS; the zone's scale (default: largest count seen).")
@click.option("--max-iter", default=300, show_default=True, type=click.IntRange(5, 2000), help="Boosting rounds.")
@click.option("--features", "feature_version", type=click.Choice(FEATURE_SETS), default=FEATURE_SETS[-1],
              show_default=True, help="Feature set (docs/model.md); gateways run models of any.")
@click.option("--target", type=click.Choice(("change", "level")), default="change", show_default=True,
              help="What the trees learn: the change from the count now, or the level (docs/model.md).")
@click.option("--out", "out_path", type=click.Path(path_type=Path), required=True, help="Where to write MODEL.onnx.")
def train(
    history_path: Path, calendar_path: Path | None, horizons: str, until: str | None,
    capacity: tuple[str, ...], max_iter: int, feature_version: str, target: str, out_path: Path,
) -> None:
    """Fit the quantile forecast on a history and write one ONNX model."""
    from models.history import read_history_csv

    try:
        from models.training import TrainingParams
        from models.training import train as fit
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ModelError(f"training needs the train extra: pip install 'edge-agent[train]' ({exc})") from None
    capacities: dict[str, float] = {}
    for item in capacity:
        zone, _, seats = item.partition("=")
        try:
            capacities[zone] = float(seats)
        except ValueError:
            raise click.BadParameter(f"{item!r}: write ZONE=SEATS, e.g. z1-quiet=24", param_hint="--capacity") from None
    history = read_history_csv(history_path)
    result = fit(
        history, _parse_horizons(horizons), _calendar(calendar_path), _parse_when(until, "--until"),
        capacities, TrainingParams(max_iter=max_iter, feature_version=feature_version, target=target),
    )
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(result.onnx_bytes)
    meta = result.metadata
    click.echo(
        f"wrote {out_path} ({len(result.onnx_bytes) // 1024} KiB): horizons {meta['horizons_min']} min, "
        f"zones {meta['zones']}, span {meta['training_span']}, features {meta['feature_version']}"
    )


@model.command(name="eval")
@click.option("--history", "history_path", type=click.Path(path_type=Path), required=True)
@click.option("--model", "model_path", type=click.Path(path_type=Path), required=True)
@click.option("--calendar", "calendar_path", type=click.Path(path_type=Path), default=None)
@click.option("--from", "start", default=None, help="Score rows at or after this date (default: the last 20%).")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object.")
def eval_cmd(
    history_path: Path, model_path: Path, calendar_path: Path | None, start: str | None, as_json: bool
) -> None:
    """MAE per horizon of the model and of four baselines, and the model's skill."""
    from models.evaluation import evaluate
    from models.history import read_history_csv
    from models.inference import Forecaster

    history = read_history_csv(history_path)
    forecaster = Forecaster.from_path(model_path)
    when = _parse_when(start, "--from")
    if when is None:
        times = sorted(t for obs in history.values() for t, _ in obs)
        when = times[int(len(times) * 0.8)]
    report = evaluate(forecaster, history, when, _calendar(calendar_path))
    if as_json:
        click.echo(json.dumps(report.to_json()))
    else:
        click.echo(f"scored from {when.isoformat()}")
        click.echo(report.table())


@model.command()
@click.argument("model_path", type=click.Path(path_type=Path))
def info(model_path: Path) -> None:
    """Show a model's metadata after the same checks a gateway makes."""
    from models.inference import Forecaster

    forecaster = Forecaster.from_path(model_path)
    click.echo(f"sha256: {forecaster.info.sha256}")
    for key, value in sorted(forecaster.info.metadata.items()):
        click.echo(f"{key}: {value}")


@model.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), required=True, help="Site TOML.")
@click.option("--start", default="2024-10-07", show_default=True, help="First simulated day.")
@click.option("--days", default=28, show_default=True, type=click.IntRange(1, 3650))
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--out", "out_path", type=click.Path(path_type=Path), required=True, help="HISTORY.csv to write.")
@click.option("--calendar-out", type=click.Path(path_type=Path), default=None, help="Also write the calendar TOML.")
def simulate(config_path: Path, start: str, days: int, seed: int, out_path: Path, calendar_out: Path | None) -> None:
    """Write a simulated occupancy history (simulator.demand) for a site's zones."""
    from edge_agent.config import load_config
    from simulator.demand import calendar_toml, generate_history

    try:
        first = date.fromisoformat(start)
    except ValueError:
        raise click.BadParameter(f"{start!r}: write a date like 2024-10-07", param_hint="--start") from None
    rows = generate_history(load_config(config_path), first, days, seed)
    with out_path.open("w", encoding="utf-8") as handle:
        handle.write("timestamp,zone,occupied\n")
        handle.writelines(f"{t.isoformat()},{zone},{count}\n" for t, zone, count in rows)
    if calendar_out is not None:
        calendar_out.write_text(calendar_toml(first, days), encoding="utf-8")
    click.echo(f"wrote {len(rows)} rows to {out_path}")


@model.group()
def history() -> None:
    """The gateway's durable zone history (``<state_dir>/history.sqlite``)."""


@history.command("export")
@click.option("--state-dir", type=click.Path(path_type=Path), default=None,
              help="The daemon's state directory (default: [storage] state_dir of --config, else /var/lib/edge-agent).")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None, help="Site TOML.")
@click.option("--since", default=None, help="First date/time to export (default: everything kept).")
@click.option("--until", default=None, help="Export rows before this date/time.")
@click.option("--out", "out_path", type=click.Path(path_type=Path), required=True, help="HISTORY.csv to write.")
def history_export(state_dir: Path | None, config_path: Path | None, since: str | None, until: str | None,
                   out_path: Path) -> None:
    """Write the zone history as timestamp,zone,occupied (aggregates only), the format `model train` reads."""
    from edge_agent.history import FILE_NAME, HistoryStore
    from models.errors import HistoryStoreError

    if state_dir is None:
        from edge_agent.config import load_config

        state_dir = load_config(config_path).storage.state_dir if config_path else Path("/var/lib/edge-agent")
    path = state_dir / FILE_NAME
    if not path.exists():
        raise HistoryStoreError(f"{path}: no zone history here; give the daemon's --state-dir (or --config)")
    store = HistoryStore(path, readonly=True)
    try:
        tmp = out_path.with_name(f".{out_path.name}.tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            rows = store.export_csv(handle, _parse_when(since, "--since"), _parse_when(until, "--until"))
        tmp.replace(out_path)
    finally:
        store.close()
    click.echo(f"wrote {rows} rows to {out_path}")
