"""The forecast in a short-lived process of its own, so the daemon's process never loads onnxruntime.

Importing onnxruntime and loading one model add about 55 MiB to a process (29 MiB the import, the
rest the session and its arenas), and a process does not give that back; the daemon forecasts
once every 5 minutes, for a few tens of milliseconds. So a :class:`~models.inference.ModelSlot`
made with ``isolated=True`` checks and runs its model here, in a child that lives for one request:
``python -m models.worker`` reads one pickled request on stdin, writes one pickled answer on
stdout and exits. The price is the child's start (the interpreter, numpy, onnxruntime and the
session: a few tenths of a second of CPU here) once per forecast.

Requests and answers (pickled tuples; both ends are this module, one program's parent and child):

- ``("check", path)``: load and smoke-test the model file -> ``("ok", sha256)``;
- ``("predict", path, sha256, histories, now, calendar)``: forecast with the model at ``path``,
  which must still have that digest -> ``("ok", forecast)``;
- any :class:`~drivers.errors.ModelError` -> ``("error", message)``.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from drivers.errors import ModelError

TIMEOUT_S = 120.0  # a cold start on a loaded Pi takes seconds; a child that hangs must not hold the forecast


def ask(request: tuple[Any, ...], timeout_s: float = TIMEOUT_S) -> Any:
    """Run one request in a fresh child process (blocking: call it from a thread); ModelError on failure."""
    try:
        proc = subprocess.run([sys.executable, "-m", "models.worker"], input=pickle.dumps(request),
                              capture_output=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelError(f"the forecast worker could not run: {exc}") from None
    if proc.returncode != 0 or not proc.stdout:
        last = (proc.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1][:200]
        raise ModelError(f"the forecast worker exited with {proc.returncode}: {last}")
    status, value = pickle.loads(proc.stdout)
    if status != "ok":
        raise ModelError(str(value))
    return value


def check(path: Path) -> str:
    """The model's SHA-256 once a child has loaded and smoke-tested it."""
    return str(ask(("check", str(path))))


def predict(path: Path, sha256: str, histories: Mapping[str, Any], now: datetime, calendar: Any) -> Any:
    """A forecast of every zone by the model at ``path`` (which must still be ``sha256``), in a child."""
    return ask(("predict", str(path), sha256, dict(histories), now, calendar))


def serve(request: tuple[Any, ...]) -> Any:
    """The child's side of one request."""
    from models.inference import Forecaster

    kind, path = request[0], request[1]
    model = Forecaster.from_path(path)
    if kind == "check":
        return model.info.sha256
    if kind == "predict":
        sha256, histories, now, calendar = request[2:]
        if model.info.sha256 != sha256:
            raise ModelError(f"{path}: the model changed since it was checked ({model.info.sha256[:12]})")
        return model.predict(histories, now, calendar)
    raise ModelError(f"unknown forecast worker request {kind!r}")


def main() -> int:
    request = pickle.load(sys.stdin.buffer)
    try:
        answer: tuple[str, Any] = ("ok", serve(request))
    except ModelError as exc:
        answer = ("error", str(exc))
    sys.stdout.buffer.write(pickle.dumps(answer))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
