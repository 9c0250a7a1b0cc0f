"""``keys generate`` and ``keys sign`` (no daemon needed), key files' modes, and editing [[security.keys]]."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from drivers.errors import ConfigError, TrustError
from edge_agent.cli import cli
from edge_agent.config import load_config
from edge_agent.trust.artefacts import check_artefact
from edge_agent.trust.config_file import add_key, replace_config, revoke_key
from edge_agent.trust.keys import gateway_key, read_key
from edge_agent.trust.policy import Keyring

ROOT = Path(__file__).resolve().parents[2]


def test_generate_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    out = tmp_path / "central.key"
    done = CliRunner().invoke(cli, ["keys", "generate", "--id", "central-2025", "--out", str(out)])
    assert done.exit_code == 0 and "keys trust central-2025 --role ROLE --public-key" in done.output
    assert out.stat().st_mode & 0o777 == 0o600
    assert read_key(out).key_id == "central-2025"
    again = CliRunner().invoke(cli, ["keys", "generate", "--id", "central-2025", "--out", str(out)])
    assert again.exit_code == 1 and "exists already" in again.output
    os.chmod(out, 0o644)
    with pytest.raises(TrustError, match="chmod 600"):
        read_key(out)
    bad = CliRunner().invoke(cli, ["keys", "generate", "--id", "bad id!", "--out", str(tmp_path / "x.key")])
    assert bad.exit_code == 1 and "key id 'bad id!'" in bad.output


def test_the_gateway_key_is_made_once(tmp_path: Path) -> None:
    args = ["keys", "generate", "--gateway", "--state-dir", str(tmp_path), "--config", str(tmp_path / "none.toml")]
    first = CliRunner().invoke(cli, args)
    second = CliRunner().invoke(cli, args)
    assert first.exit_code == 0 and first.output == second.output
    assert (tmp_path / "gateway.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "gateway.pub").stat().st_mode & 0o777 == 0o644
    assert gateway_key(tmp_path, "gateway").public in first.output


def test_sign_writes_a_signature_document_the_gateway_accepts(tmp_path: Path) -> None:
    key = tmp_path / "pub.key"
    CliRunner().invoke(cli, ["keys", "generate", "--id", "publisher-1", "--out", str(key)])
    image = tmp_path / "desk.bin"
    image.write_bytes(b"firmware" * 100)
    done = CliRunner().invoke(cli, ["keys", "sign", str(image), "--key", str(key), "--kind", "firmware",
                                    "--meta", "board=desk-v2"])
    assert done.exit_code == 0, done.output
    doc = json.loads((tmp_path / "desk.bin.sig").read_text())
    assert doc["metadata"] == {"board": "desk-v2"}
    text = add_key((ROOT / "examples" / "floor-3.toml").read_text(), "publisher-1", "model-publisher",
                   read_key(key).public)
    config = tmp_path / "gateway.toml"
    config.write_text(text)
    ring = Keyring(load_config(config).security)
    data = image.read_bytes()
    assert check_artefact(ring, "firmware", hashlib.sha256(data).hexdigest(), len(data), doc) == "publisher-1"
    with pytest.raises(TrustError) as exc:
        check_artefact(ring, "model", hashlib.sha256(data).hexdigest(), len(data), doc)
    assert exc.value.reason == "bad_signature"


def test_trust_and_revoke_edit_the_config_in_place(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    original = (ROOT / "examples" / "floor-3.toml").read_text() + "\n# the library's own note\n"
    config.write_text(original)
    os.chmod(config, 0o640)
    pub = read_key_public(tmp_path)
    replace_config(config, add_key(config.read_text(), "op-1", "operator", pub, note='desk "north"'))
    replace_config(config, add_key(config.read_text(), "op-2", "operator", pub))
    replace_config(config, revoke_key(config.read_text(), "op-1"))
    text = config.read_text()
    assert text.startswith(original.rstrip("\n")) and "# the library's own note" in text
    assert config.stat().st_mode & 0o777 == 0o640
    keys = {k.id: k for k in load_config(config).security.keys}
    assert keys["op-1"].revoked and not keys["op-2"].revoked and keys["op-1"].note == 'desk "north"'
    assert load_config(config).security.policy == "required"
    with pytest.raises(ConfigError, match="already listed"):
        add_key(text, "op-2", "operator", pub)
    with pytest.raises(ConfigError, match=r"no key 'op-9'.*listed: op-1, op-2"):
        revoke_key(text, "op-9")
    with pytest.raises(ConfigError):  # an edit that would not validate leaves the file alone
        replace_config(config, text + "\n[security]\nsignatures = \"sometimes\"\n")
    assert config.read_text() == text


def read_key_public(tmp_path: Path) -> str:
    CliRunner().invoke(cli, ["keys", "generate", "--id", "k", "--out", str(tmp_path / "k.key")])
    return read_key(tmp_path / "k.key").public
