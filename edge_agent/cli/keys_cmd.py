"""``edge-agent keys generate|show|trust|revoke|sign``: the keys a gateway trusts, and its own.

``generate`` makes a signing key file for a central system, an operator's tool, a technician or
a model publisher (the private half stays with them; the public half goes into the site config
with ``trust``), or with ``--gateway`` the gateway's own key pair in its state directory (run by
the installer as the service user). ``trust`` and ``revoke`` edit ``[[security.keys]]`` in the
config file and ask the running daemon to reload it, which is recorded in its audit log with the
technician's OS account. ``sign`` writes the signature document of a model or firmware image.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from drivers.errors import ConfigError, EdgeError, TrustError
from edge_agent.cli.technician import CONFIG_ENV, DEFAULT_CONFIG, daemon, emit_json, table
from edge_agent.control.client import DaemonNotRunning, configured_state_dir
from edge_agent.trust.artefacts import sign_artefact
from edge_agent.trust.canonical import b64
from edge_agent.trust.config_file import add_key, replace_config, revoke_key
from edge_agent.trust.keys import KeyFile, fingerprint, gateway_key, gateway_public, new_key, read_key, write_key
from edge_agent.trust.policy import ROLES

config_option = click.option("--config", "config_path", envvar=CONFIG_ENV, default=DEFAULT_CONFIG, show_default=True,
                             type=click.Path(dir_okay=False, path_type=Path), help="Site configuration file.")
state_option = click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                            help="The daemon's state directory [default: the config's [storage] state_dir].")


def state_dir_of(state_dir: Path | None, config_path: Path) -> Path:
    return state_dir or configured_state_dir(config_path) or Path("/var/lib/edge-agent")


@click.group()
def keys() -> None:
    """Signing keys: generate them, show what the gateway trusts, trust or revoke a key."""


@keys.command()
@click.option("--id", "key_id", help="Key id for a new signing key (e.g. central-2025).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Where to write the new key (mode 0600).")
@click.option("--gateway", "for_gateway", is_flag=True, help="The gateway's own key pair, in its state directory "
              "(kept when it exists).")
@config_option
@state_option
def generate(key_id: str | None, out: Path | None, for_gateway: bool, config_path: Path,
             state_dir: Path | None) -> None:
    """A new Ed25519 key pair: the private key to a file, the public key printed for the site config."""
    try:
        if for_gateway:
            from edge_agent.config import load_config

            directory = state_dir_of(state_dir, config_path)
            gateway = load_config(config_path).site.gateway if config_path.is_file() else "gateway"
            key = gateway_key(directory, gateway)
            click.echo(f"gateway key {key.key_id} in {directory} (private part readable only by this user)")
            click.echo(f"public_key = {key.public}")
            return
        if not key_id or out is None:
            raise click.UsageError("give --id and --out for a signing key (or --gateway for the gateway's own)")
        key = new_key(key_id)
        write_key(out, key)
    except (TrustError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {out} (mode 0600): keep it secret; it signs as {key.key_id!r}")
    click.echo("trust it on a gateway with:")
    click.echo(f"  edge-agent keys trust {key.key_id} --role ROLE --public-key {key.public}")


@keys.command()
@config_option
@state_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def show(config_path: Path, state_dir: Path | None, as_json: bool) -> None:
    """The signature policy, every trusted key with its role, and the gateway's own public key."""
    from edge_agent.config import load_config
    from edge_agent.trust.policy import Keyring

    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(f"{exc}: {'; '.join(exc.problems[:3])}") from None
    ring = Keyring(cfg.security)
    rows = [{"id": k.key_id, "role": k.role, "revoked": k.revoked, "fingerprint": fingerprint(bytes(k.public)),
             "may_send": sorted(c for c in ring.permissions[k.role])} for k in ring.keys.values()]
    own: dict[str, Any] = {"key_id": None, "public_key": None}
    try:
        key_id, public = gateway_public(state_dir_of(state_dir, config_path))
        own = {"key_id": key_id, "public_key": b64(bytes(public))}
    except TrustError as exc:
        own["problem"] = str(exc)
    if as_json:
        emit_json({"policy": ring.policy, "keys": rows, "gateway": own})
        return
    click.echo(f"signatures: {ring.policy}" + ("" if cfg.security.signatures else " (the default: "
               + ("keys are listed)" if ring.keys else "no keys are listed)")))
    if rows:
        click.echo(table(["id", "role", "revoked", "fingerprint"],
                         [[r["id"], r["role"], r["revoked"], r["fingerprint"]] for r in rows]))
    click.echo(f"gateway key: {own['key_id'] or '-'} {own['public_key'] or own.get('problem', '')}")


@keys.command()
@click.argument("key_id")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the key may do ([security.roles]).")
@click.option("--public-key", "public_key", required=True, help="The key's public half, base64 (keys generate).")
@click.option("--note", default="", help="Who holds it (kept in the config).")
@config_option
@click.option("--socket", "socket_path", default=None, help="Control socket of the running daemon.")
def trust(key_id: str, role: str, public_key: str, note: str, config_path: Path, socket_path: str | None) -> None:
    """Add KEY_ID to [[security.keys]] and reload the running daemon."""
    _edit(config_path, socket_path, lambda text: add_key(text, key_id, role, public_key, note),
          f"trusted {key_id!r} as {role}")


@keys.command()
@click.argument("key_id")
@config_option
@click.option("--socket", "socket_path", default=None, help="Control socket of the running daemon.")
def revoke(key_id: str, config_path: Path, socket_path: str | None) -> None:
    """Mark KEY_ID revoked in the config and reload the running daemon: its signatures are refused from then on."""
    _edit(config_path, socket_path, lambda text: revoke_key(text, key_id), f"revoked {key_id!r}")


def _edit(config_path: Path, socket_path: str | None, change: Any, done: str) -> None:
    try:
        text = config_path.read_text(encoding="utf-8")
        replace_config(config_path, change(text))
    except OSError as exc:
        raise click.ClickException(f"{config_path}: {exc.strerror or exc}") from None
    except (ConfigError, ValueError) as exc:
        problems = getattr(exc, "problems", [])
        raise click.ClickException(f"{exc}{': ' + '; '.join(problems[:3]) if problems else ''}; the file is "
                                   "unchanged") from None
    click.echo(f"{config_path}: {done}")
    try:
        with daemon(socket_path, str(config_path)) as client:
            result = client.request("reload_config")
    except click.ClickException as exc:
        if "daemon not running" in exc.message:
            click.echo("no daemon is running: it uses the new keys when it starts")
            return
        raise
    except (DaemonNotRunning, EdgeError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"the daemon is reloading the config ({result.get('config_hash')})")


@keys.command()
@click.argument("artefact", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", "key_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="A model-publisher key file (keys generate).")
@click.option("--kind", type=click.Choice(["model", "firmware"]), required=True)
@click.option("--meta", multiple=True, help="KEY=VALUE stated in the signature (repeatable).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="[default: ARTEFACT.sig]")
def sign(artefact: Path, key_path: Path, kind: str, meta: tuple[str, ...], out: Path | None) -> None:
    """Write the signature document of a forecast model or a node firmware image."""
    pairs = [m.partition("=") for m in meta]
    if any(not sep or not k for k, sep, _ in pairs):
        raise click.UsageError("--meta takes KEY=VALUE")
    try:
        key: KeyFile = read_key(key_path)
    except TrustError as exc:
        raise click.ClickException(str(exc)) from None
    doc = sign_artefact(key, "model" if kind == "model" else "firmware", artefact.read_bytes(),
                        {k: v for k, _, v in pairs})
    target = out or artefact.with_name(artefact.name + ".sig")
    target.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    click.echo(f"wrote {target}: {kind} {doc['sha256'][:12]} signed by {key.key_id}")
