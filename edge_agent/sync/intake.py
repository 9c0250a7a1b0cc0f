"""Command intake: a request on ``cmd/{name}`` in, exactly one result out, whatever it holds.

:class:`CommandIntake` hands the raw request to the :class:`~edge_agent.sync.commands.CommandProcessor`
(validation, the replay cache, the daemon's action) and puts the result in the outbox, addressed
to ``cmd/{name}/result`` or to the request's MQTT 5 response topic with its correlation data. No
failure, of the processor, the cache or the daemon behind it, escapes: it becomes a ``failed``
result and the session carries on. A response topic that cannot be published to (a wildcard, a
``$`` topic, too long) is not used, so one bad property cannot block the outbox's stream.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from edge_agent.sync.commands import CommandProcessor
from edge_agent.sync.messages import Topics

log = logging.getLogger(__name__)

class ResultSink(Protocol):
    """``(topic, fields, correlation data, sign=...)`` -> the result's sequence number (Publisher.publish_result)."""

    def __call__(self, topic: str, fields: Mapping[str, Any], correlation: bytes | None, *,
                 sign: bool = False) -> int: ...


def usable_response_topic(topic: object) -> bool:
    """An MQTT 5 response topic the result can go to: a topic name (no wildcards, no NUL, not a
    ``$`` broker topic, within MQTT's 65535 bytes)."""
    if not isinstance(topic, str) or not topic or topic.startswith("$"):
        return False
    if any(c in topic for c in "+#\x00"):
        return False
    try:
        return len(topic.encode("utf-8")) <= 65535
    except UnicodeEncodeError:  # a lone surrogate
        return False


class CommandIntake:
    """Answers every command request once (see module docstring)."""

    def __init__(self, processor: CommandProcessor, topics: Topics, results: ResultSink) -> None:
        self.processor = processor
        self.topics = topics
        self.results = results
        self.answered = 0

    async def handle(self, name: str, raw: bytes, props: Any = None) -> int:
        """Process one request; returns the sequence number of its result."""
        sign = False
        try:
            outcome = await self.processor.handle(name, raw)
            fields, sign = outcome.to_fields(), outcome.sign
        except Exception as exc:  # the result cache failed, or a bug: answer, say so, keep the session
            log.exception("command %s could not be processed", name)
            fields = {"command": name, "request_id": None, "ok": False, "result": None,
                      "error": {"code": "failed", "message": f"gateway error: {type(exc).__name__}: {exc}"}}
        response = getattr(props, "ResponseTopic", None) if props is not None else None
        correlation = getattr(props, "CorrelationData", None) if props is not None else None
        topic = response if isinstance(response, str) and usable_response_topic(response) else \
            self.topics.command_result(name)
        if not isinstance(correlation, bytes) or len(correlation) > 65535:
            correlation = None
        self.answered += 1
        return self.results(topic, fields, correlation, sign=sign)
