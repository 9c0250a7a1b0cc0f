"""Logging to stderr in a journald-friendly way: text (with syslog priority prefixes) or JSON lines.

journald reads ``<N>`` priority prefixes on each line when ``SyslogLevelPrefix=`` is on (the
default), so ``journalctl -p warning`` works without a journald library. JSON output is for
log shippers.
"""

from __future__ import annotations

import json
import logging
import sys
import time

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class JournalTextFormatter(logging.Formatter):
    def __init__(self, prefix_priority: bool) -> None:
        super().__init__("%(name)s: %(message)s")
        self.prefix_priority = prefix_priority

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if self.prefix_priority:
            return f"<{_PRIORITY.get(record.levelno, 6)}>{text}"
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        return f"{stamp} {record.levelname:<7} {text}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, separators=(",", ":"))


def setup_logging(fmt: str = "text", level: str = "INFO") -> None:
    """Configure the root logger once; under systemd (JOURNAL_STREAM set) text gets <N> prefixes."""
    import os

    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(JournalTextFormatter(prefix_priority=bool(os.environ.get("JOURNAL_STREAM"))))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("amqtt", "transitions", "bleak", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
