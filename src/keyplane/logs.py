"""Structured logging: JSON lines in production, readable in a terminal.

Credentials are removed at three depths, so that no handler ever sees one:

1. every log record, whoever creates it and whichever handler receives it,
   is redacted as it is made (a record factory);
2. the structured fields of each event are redacted by name and content
   (a structlog event's fields once, as its record is made; a foreign
   record's extra fields in the formatter);
3. the rendered line is searched once more for token shapes.

Libraries that would log SQL parameters (argon2 hashes among them) are kept
at WARNING whatever the level asked for.

Every value is bounded (``keyplane.redaction.FIELD_LIMIT``, tracebacks
``TRACEBACK_LIMIT``) before it is searched, so no log line costs more than
linear work in a bounded size. In the console format, which is meant for a
terminal, every control character of every value is shown as an escape
(``keyplane.terminal``), so logged request data cannot move the cursor, clear
the screen or forge a line.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from keyplane.redaction import TRACEBACK_LIMIT, redact_shapes, redact_text, redact_value
from keyplane.terminal import visible, visible_lines

QUIET_LIBRARIES = ("sqlalchemy", "aiosqlite", "asyncpg", "alembic.runtime.plugins")


# Set on a record whose structlog event the record factory has redacted whole.
_FIELDS_REDACTED = "_keyplane_fields_redacted"


def _redact_event(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    exception = event_dict.pop("exception", None)
    redacted: EventDict = (
        event_dict  # its every field passed through the record factory (depth 1)
        if event_dict.get("_from_structlog")
        and getattr(event_dict.get("_record"), _FIELDS_REDACTED, False)
        else redact_value(event_dict)  # a foreign record: its extras are new here
    )
    if isinstance(exception, str):  # a traceback: a larger bound than other values
        redacted["exception"] = redact_text(exception, TRACEBACK_LIMIT)
    elif exception is not None:
        redacted["exception"] = redact_value(exception)
    return redacted


_MULTILINE_FIELDS = frozenset({"exception", "stack"})


def _escape_for_terminal(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Console format only: no value can drive the terminal or forge a line."""
    return {
        visible(key): (visible_lines(value) if key in _MULTILINE_FIELDS else visible(value))
        if isinstance(value, str)
        else value
        for key, value in event_dict.items()
    }


def _drop_color_message(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    event_dict.pop("color_message", None)  # uvicorn's duplicate of the message
    return event_dict


class _RedactingFormatter(structlog.stdlib.ProcessorFormatter):
    """Redacts the finished line too, whatever a renderer added to it."""

    def format(self, record: logging.LogRecord) -> str:
        # Shapes only: replacing them cannot break a JSON line.
        return redact_shapes(super().format(record))


_plain_record_factory = logging.getLogRecordFactory()


def _redacting_record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _plain_record_factory(*args, **kwargs)
    if isinstance(record.msg, dict):  # a structlog event, rendered by our formatter
        record.msg = redact_value(record.msg)
        setattr(record, _FIELDS_REDACTED, True)
    else:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg, record.args = redact_text(message), None
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = redact_text(
            "".join(traceback.format_exception(*record.exc_info)), TRACEBACK_LIMIT
        )
    return record


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Route every logger through one redacting formatter on ``stream`` (standard error)."""
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    rendering: list[Processor] = (
        [structlog.processors.JSONRenderer()]
        if use_json
        else [_escape_for_terminal, structlog.dev.ConsoleRenderer(colors=stream.isatty())]
    )
    formatter = _RedactingFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.processors.format_exc_info,
            _redact_event,  # before the record it reads is removed
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _drop_color_message,
            *rendering,
        ],
    )
    logging.setLogRecordFactory(_redacting_record_factory)
    # No line shows where it was logged from, so no record looks it up (a walk
    # of the caller's frames per line): the logging HOWTO's "Optimization".
    logging._srcfile = None
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        library_logger = logging.getLogger(name)
        library_logger.handlers.clear()
        # Except for the access lines: uvicorn turns their propagation off for
        # ``--no-uvicorn-access-log``, and in a worker process it does so before
        # the app is loaded and this runs.
        if name != "uvicorn.access":
            library_logger.propagate = True
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)
