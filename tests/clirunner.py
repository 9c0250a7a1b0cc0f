"""click's test runner with stderr kept apart from stdout on every click the project installs.

click 8.2 captures stderr separately by default and dropped ``mix_stderr``; click 8.1 (which the
``federation`` extra brings: Flower and the embedded broker agree on no newer typer) mixes them
unless told. Tests read ``result.stdout`` and ``result.stderr`` either way; ``result.output`` is
what a user sees on the terminal, both streams, as on 8.2.
"""

from __future__ import annotations

import inspect
from typing import Any

from click.testing import CliRunner as ClickRunner
from click.testing import Result

SEPARATE = "mix_stderr" in inspect.signature(ClickRunner.__init__).parameters


class TerminalResult(Result):
    """A click 8.1 result whose ``output`` holds both streams, as on 8.2."""

    @property
    def output(self) -> str:
        return self.stdout + (self.stderr if self.stderr_bytes is not None else "")


class CliRunner(ClickRunner):
    def __init__(self, **kwargs: Any) -> None:
        if SEPARATE:
            kwargs.setdefault("mix_stderr", False)
        super().__init__(**kwargs)

    def invoke(self, *args: Any, **kwargs: Any) -> Result:
        result = super().invoke(*args, **kwargs)
        if SEPARATE:
            result.__class__ = TerminalResult
        return result
