"""Logging configured as in production, into a buffer; the global state restored after."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from keyplane.logs import configure_logging

LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def _forget_cached_loggers() -> None:
    """structlog caches module-level loggers on first use; forget them for the next test."""
    for name, module in list(sys.modules.items()):
        if name.startswith("keyplane"):
            for value in list(vars(module).values()):
                if isinstance(value, structlog._config.BoundLoggerLazyProxy):
                    value.__dict__.pop("bind", None)


@contextmanager
def captured_logging(fmt: str = "json", level: str = "DEBUG") -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_libraries = {
        name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate)
        for name in LIBRARY_LOGGERS
    }
    stream = io.StringIO()
    configure_logging(level, fmt, stream=stream)
    logging.getLogger("uvicorn.access").propagate = True  # as with --uvicorn-access-log
    _forget_cached_loggers()
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
        for name, (handlers, propagate) in saved_libraries.items():
            library = logging.getLogger(name)
            library.handlers[:] = handlers
            library.propagate = propagate
        structlog.reset_defaults()
        _forget_cached_loggers()
