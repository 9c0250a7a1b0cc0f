"""``edge-agent federation serve``: the Flower server for sites without a central one.

Each session waits for ``--min-gateways`` gateways (they connect in their ``[federation] window``),
runs ``--rounds`` rounds of federated training, publishes a model into ``--out`` only when it
beats the one in use on the gateways' held-out days, and delivers it to them. ``--sessions 0``
serves session after session until stopped (the systemd way); each session's outcome is printed
as a table, or one JSON object per line with ``--json``.

With ``--sign-key`` (a ``model-publisher`` key) every published model's manifest carries its
signature, which gateways check before they install it, as they check ``update_model``.

Off loopback the server needs TLS (``--tls-cert``, ``--tls-key``, and the CA that signed them):
gateways refuse a remote server without it, and what they send is theirs.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import click

from drivers.errors import ConfigError, TrustError
from models.errors import FederationError


@click.group()
def federation() -> None:
    """Federated training of the seat-demand forecast (needs the federation extra)."""


def _listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{value!r} is not HOST:PORT (e.g. 0.0.0.0:9092 or [::]:9092)", param_hint="--listen")
    return value


def _loopback(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read(path: Path | None, what: str) -> bytes:
    if path is None:
        raise ConfigError(f"{what} is needed with --tls-cert")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what} {path}: {exc.strerror or exc}") from None


def _table(report: Any) -> str:
    lines = [f"started from {report.start}",
             " round  gateways  refused  held-out MAE  baseline  in use   epsilon  published"]
    for r in report.rounds:
        def fig(key: str, row: dict[str, Any] = r) -> str:
            value = row.get(key)
            return "-" if value is None else f"{value:.3f}"

        lines.append(f"{r['round']:>6}  {r.get('gateways', '-'):>8}  {r.get('refused', '-'):>7}  "
                     f"{fig('mae_new'):>12}  {fig('mae_baseline'):>8}  {fig('mae_current'):>6}  "
                     f"{fig('epsilon_max'):>8}  {str(r.get('published', ''))[:12]}")
    published = report.published
    lines.append("published: " + (f"{published['sha256'][:12]} (round {published['round']})" if published
                                  else "nothing (no round beat the model in use)"))
    return "\n".join(lines)


@federation.command()
@click.option("--listen", default="127.0.0.1:9092", show_default=True, callback=lambda _c, _p, v: _listen(v),
              help="HOST:PORT the gateways connect to ([federation] server).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Directory of the published model.onnx and its manifest model.json.")
@click.option("--rounds", default=5, show_default=True, type=click.IntRange(1, 100))
@click.option("--min-gateways", default=2, show_default=True, type=click.IntRange(1, 10000),
              help="Gateways each round waits for.")
@click.option("--horizons", default="15,30,60", show_default=True, help="Minutes ahead, multiples of 15.")
@click.option("--steps", default=100, show_default=True, type=click.IntRange(1, 10000), help="Local steps per round.")
@click.option("--sessions", default=1, show_default=True, type=click.IntRange(0, None), help="0: serve until stopped.")
@click.option("--round-timeout", default=3600.0, show_default=True, type=click.FloatRange(1, None),
              help="Seconds a round waits for the gateways' replies.")
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--tls-key", type=click.Path(path_type=Path, dir_okay=False), default=None)
@click.option("--tls-ca", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="The CA that signed --tls-cert (gateways hold it as [federation.tls] ca_file).")
@click.option("--inputs", type=click.Choice(["in-day", "profile", "all"]), default="in-day", show_default=True,
              help="in-day: start from a model of the columns gateways train under DP; profile: the same as a "
                   "residual over the released typed profile (demand-v4); all: gateways without DP.")
@click.option("--sign-key", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="A model-publisher key file (keys generate): every published model is signed with it.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per session.")
def serve(listen: str, out_dir: Path, rounds: int, min_gateways: int, horizons: str, steps: int, sessions: int,
          round_timeout: float, tls_cert: Path | None, tls_key: Path | None, tls_ca: Path | None,
          inputs: str, sign_key: Path | None, as_json: bool) -> None:
    """Run federation sessions and publish the models that beat the one in use."""
    from edge_agent.federation.server import DirectoryPublisher, FederationServer, SessionPlan
    from edge_agent.trust.artefacts import artefact_signer
    from edge_agent.trust.keys import read_key

    try:
        wanted = tuple(int(h) for h in horizons.split(","))
    except ValueError:
        raise click.BadParameter(f"{horizons!r} is not a comma-separated list of minutes",
                                 param_hint="--horizons") from None
    if not wanted or any(h <= 0 or h % 15 for h in wanted):
        raise click.BadParameter("horizons must be positive multiples of 15 minutes", param_hint="--horizons")
    certificates = None
    if tls_cert is not None or tls_key is not None:
        certificates = (_read(tls_ca, "--tls-ca"), _read(tls_cert, "--tls-cert"), _read(tls_key, "--tls-key"))
    elif not _loopback(listen):
        raise ConfigError(f"--listen {listen} is not on this machine: give --tls-cert, --tls-key and --tls-ca "
                          "(gateways refuse a remote server without TLS)")
    plan = SessionPlan(rounds=rounds, min_gateways=min_gateways, horizons=wanted, steps=steps,
                       round_timeout_s=round_timeout, inputs=inputs)
    if sign_key is not None:
        try:
            signer = artefact_signer(read_key(sign_key))
        except TrustError as exc:
            raise click.BadParameter(f"{sign_key}: {exc}", param_hint="--sign-key") from None
    else:
        signer = None
        click.echo("note: published models are not signed (no --sign-key): gateways whose [security] requires "
                   "signatures refuse them", err=True)
    publisher = DirectoryPublisher(out_dir, sign=signer)
    done = 0
    while sessions == 0 or done < sessions:
        try:
            report = FederationServer(listen, plan, publisher, certificates).start().wait()
        except FederationError:
            raise
        except Exception as exc:  # gRPC and Flower raise their own types (a port in use, a bad certificate)
            raise FederationError(f"cannot serve on {listen}: {type(exc).__name__}: {exc}") from None
        done += 1
        if as_json:
            click.echo(json.dumps({"session": done, "start": report.start, "rounds": report.rounds,
                                   "published": report.published}, sort_keys=True))
        else:
            click.echo(_table(report))
