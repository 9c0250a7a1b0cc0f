"""The control socket: round trips, bad requests that must not hurt the server, peer credentials."""

from __future__ import annotations

import json
import os
import pwd
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge_agent.control.client import ControlClient, ControlRequestError, DaemonNotRunning, resolve_socket
from edge_agent.control.server import ControlServer, PeerCred, refusal, user_label
from edge_agent.control.wire import MAX_LINE, unknown_id_message
from tests.control.conftest import FakeTarget, ServedTarget

ME = pwd.getpwuid(os.getuid()).pw_name


def raw_session(path: Path, payload: bytes, expect_lines: int) -> list[dict[str, object]]:
    """Send raw bytes, read ``expect_lines`` response lines."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(payload)
        f = s.makefile("rb")
        return [json.loads(f.readline()) for _ in range(expect_lines)]


def test_round_trip_calls_target_with_peer_user(served: ServedTarget, target: FakeTarget) -> None:
    with ControlClient(served.path) as c:
        pong = c.request("ping")
        reading = c.request("read_sensor", sensor="rh-z1-quiet")
        result = c.request("calibrate", sensor="rh-z1-quiet", quantity="temperature", reference=21.5)
    assert pong["user"] == ME and "calibrate" in pong["ops"]
    assert reading["raw"] == {"temperature": 21.0, "humidity": 40.0}
    assert result["new"] == {"gain": 1.0, "offset": pytest.approx(0.5)}
    assert ("calibrate", ("rh-z1-quiet", "temperature", 21.5, ME, False)) in target.calls
    assert target.store.apply("rh-z1-quiet", "temperature", 21.0) == pytest.approx(21.5)


def test_bad_requests_get_errors_and_connection_stays_usable(served: ServedTarget, target: FakeTarget) -> None:
    payload = b"".join([
        b"{not json\n",
        b'["a", "list"]\n',
        b'{"id": 2, "op": "reboot", "args": {}}\n',
        b'{"id": 3, "op": "read_sensor", "args": {"sensor": 5}}\n',
        b'{"id": 4, "op": "calibrate", "args": {"sensor": "x", "quantity": "lux", "reference": "bright"}}\n',
        b'{"id": 5, "op": "status", "args": {"surprise": 1}}\n',
        b'{"id": 6, "op": "actuator_test", "args": {"actuator": "light-z1", "level": 0.5, "duration_s": 9999}}\n',
        b"\xff\xfe\n",
        b'{"id": 7, "op": "status"}\n',
    ])  # fmt: skip
    answers = raw_session(served.path, payload, 9)
    assert [a["ok"] for a in answers] == [False] * 8 + [True]
    assert "not valid JSON" in str(answers[0]["error"])
    assert "JSON object" in str(answers[1]["error"])
    assert answers[2]["id"] == 2 and "unknown op 'reboot'" in str(answers[2]["error"])
    assert "sensor" in str(answers[3]["error"]) and "(got 5)" in str(answers[3]["error"])
    assert "reference" in str(answers[4]["error"])
    assert "surprise" in str(answers[5]["error"])
    assert "duration_s" in str(answers[6]["error"])
    assert "not valid JSON" in str(answers[7]["error"])
    assert answers[8]["id"] == 7 and answers[8]["result"]["gateway"] == "gw-floor-3"  # type: ignore[index]
    assert all("\n" not in str(a.get("error", "")) for a in answers)
    assert [c[0] for c in target.calls] == ["status"]  # nothing invalid reached the daemon


def test_overlong_line_is_refused_then_server_continues(served: ServedTarget) -> None:
    payload = b'{"id": 1, "op": "ping", "pad": "' + b"x" * (MAX_LINE * 3) + b'"}\n{"id": 2, "op": "ping"}\n'
    first, second = raw_session(served.path, payload, 2)
    assert first["ok"] is False and "longer than" in str(first["error"])
    assert second["ok"] is True and second["id"] == 2


def test_target_refusals_and_crashes_are_one_line_errors(served: ServedTarget, target: FakeTarget) -> None:
    async def broken() -> None:
        raise RuntimeError("boom\nsecond line")

    target.status = broken  # type: ignore[method-assign]
    with ControlClient(served.path) as c:
        with pytest.raises(ControlRequestError, match="closest: lux-z1-quiet") as unknown:
            c.request("read_sensor", sensor="lux-z1-quiit")
        with pytest.raises(ControlRequestError, match="internal error in status: RuntimeError: boom"):
            c.request("status")
        assert c.request("ping")["user"] == ME  # still serving on the same connection
    assert "\n" not in str(unknown.value)


def test_second_server_on_same_path_is_refused_and_stale_socket_replaced(sock_dir: Path, target: FakeTarget) -> None:
    path = sock_dir / "control.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # a socket file nobody serves: a crashed daemon's leftover
    with ServedTarget(path, target):
        assert oct(path.stat().st_mode & 0o777) == "0o660"
        with pytest.raises(Exception, match="already serving"), ServedTarget(path, target):
            pass
        with ControlClient(path) as c:
            assert c.request("ping")["pid"] == os.getpid()
    assert not path.exists()  # removed on exit


def test_client_without_daemon_says_how_to_start(sock_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_AGENT_SOCKET", raising=False)
    with pytest.raises(DaemonNotRunning, match="systemctl start edge-agent") as exc:
        resolve_socket(None, sock_dir)
    assert str(sock_dir / "control.sock") in str(exc.value) and "/run/edge-agent/control.sock" in str(exc.value)
    (sock_dir / "x.sock").touch()
    with pytest.raises(DaemonNotRunning, match="nothing listens"):
        ControlClient(sock_dir / "x.sock").connect()
    monkeypatch.setenv("EDGE_AGENT_SOCKET", str(sock_dir / "x.sock"))
    assert resolve_socket(None, None) == sock_dir / "x.sock"


# ---- peer credentials --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cred", "groups", "allowed"),
    [
        (PeerCred(10, 0, 0), set(), True),  # root
        (PeerCred(10, 998, 998), set(), True),  # the daemon's own uid
        (PeerCred(10, 1001, 990), {990}, True),  # primary group is the socket's
        (PeerCred(10, 1001, 1001), {1001, 990}, True),  # supplementary member
        (PeerCred(10, 1001, 1001), {1001, 27}, False),  # sudo group but not the service group
        (PeerCred(10, 65534, 65534), {65534}, False),
    ],
)
def test_refusal_policy(cred: PeerCred, groups: set[int], allowed: bool) -> None:
    why = refusal(cred, daemon_uid=998, socket_gid=990, groups=groups)
    assert (why is None) is allowed
    if not allowed:
        assert why is not None and "permission denied" in why and f"uid {cred.uid}" in why


def test_refusal_without_socket_group_allows_only_root_and_daemon() -> None:
    assert refusal(PeerCred(1, 1001, 990), daemon_uid=998, socket_gid=None, groups={990}) is not None
    assert refusal(PeerCred(1, 998, 998), daemon_uid=998, socket_gid=None, groups=set()) is None


def test_user_label_honours_sudo_user_only_for_root() -> None:
    assert user_label(PeerCred(1, 0, 0), "alice") == "alice (via root)"
    assert user_label(PeerCred(1, 65534, 65534), "alice") == pwd.getpwuid(65534).pw_name


NOBODY_CLIENT = textwrap.dedent("""
    import json, os, socket, sys
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(sys.argv[1])
    except PermissionError:
        print(json.dumps({"connect": "EACCES"})); sys.exit(0)
    try:
        s.sendall(b'{"id": 1, "op": "status"}\\n')
    except BrokenPipeError:
        pass
    f = s.makefile("rb")
    first = f.readline()
    try:
        s.shutdown(socket.SHUT_WR)  # done sending: an accepted peer is now hung up on too
    except OSError:
        pass
    rest = f.readline()
    print(json.dumps({"first": json.loads(first) if first else None, "closed": rest == b""}))
""")


def run_as_nobody(path: Path) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", NOBODY_CLIENT, str(path)], capture_output=True, text=True,
                          timeout=20, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    return result


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to uid 65534 (CI runs as root)")


@needs_root
def test_unprivileged_peer_is_refused_by_credentials(sock_dir: Path, target: FakeTarget) -> None:
    sock_dir.chmod(0o755)
    path = sock_dir / "control.sock"
    with ServedTarget(path, target):
        assert run_as_nobody(path) == {"connect": "EACCES"}  # mode 0660, group root: the kernel says no
        path.chmod(0o666)  # a misconfigured mode must still not let strangers in
        answer = run_as_nobody(path)
    first = answer["first"]
    assert isinstance(first, dict) and first["ok"] is False and "permission denied: uid 65534" in first["error"]
    assert answer["closed"] is True
    assert ("status", ()) not in target.calls


@needs_root
def test_member_of_socket_group_is_allowed(sock_dir: Path, target: FakeTarget) -> None:
    sock_dir.chmod(0o755)
    path = sock_dir / "control.sock"
    group = __import__("grp").getgrgid(65534).gr_name
    with ServedTarget(path, target, group=group):
        assert path.stat().st_gid == 65534
        answer = run_as_nobody(path)
    first = answer["first"]
    assert isinstance(first, dict) and first["ok"] is True and first["result"]["gateway"] == "gw-floor-3"


def test_unknown_id_message_lists_closest() -> None:
    ids = ["lux-z1-quiet", "lux-z2-group", "rh-z1-quiet"]
    assert "; closest: lux-z1-quiet, " in unknown_id_message("sensor", "lux-z1-quite", ids)
    assert "known: lux-z1-quiet" in unknown_id_message("sensor", "zzzzzz", ids)
    assert "no sensors are configured" in unknown_id_message("sensor", "a", [])


async def test_server_shuts_down_with_open_connections(sock_dir: Path, target: FakeTarget) -> None:
    import asyncio

    path = sock_dir / "c.sock"
    async with ControlServer(path, target):
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b'{"id": 1, "op": "ping"}\n')
        assert json.loads(await reader.readline())["ok"] is True
    assert await asyncio.wait_for(reader.read(), 2) == b""  # the server hung up on exit
    writer.close()
    assert not path.exists()


def test_fake_target_satisfies_the_protocol(target: FakeTarget) -> None:
    from edge_agent.control.protocol import ControlTarget

    assert isinstance(target, ControlTarget)
    missing = [name for name in ControlTarget.__dict__ if not name.startswith("_") and not hasattr(target, name)]
    assert missing == []
