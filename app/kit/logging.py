"""structlog set-up: JSON in production, readable console locally, secrets masked.

dcibridge's own events are rendered by structlog and written straight to the
stream, skipping the standard library's record, handler and formatter, which cost
more than twice as much as everything else an event does; the access log writes
one per request. Other libraries' records (uvicorn, SQLAlchemy...) go through the
standard library and the same renderer, to the same stream, under the same lock.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from app.config import LogFormat

REDACTED = "***"
_SECRET_KEY_PATTERN = re.compile(
    r"(pass(word)?|secret|token|api_?key|authorization|cookie|ses6|xsrf|private_key)",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=1024)
def _names_a_secret(key: str) -> bool:
    # Events reuse a few hundred field names; a regex search per field per event
    # used to be the dearest step of an event.
    return _SECRET_KEY_PATTERN.search(key) is not None


# Most values logged are plain; checking their type first spares them the
# abstract base class checks below, which cost more than the rest of masking.
_PLAIN = frozenset({str, int, float, bool, type(None)})


def _mask(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, MutableMapping):
        return {
            k: REDACTED if isinstance(k, str) and _names_a_secret(k) else _mask(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_mask(v) for v in value)
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask any field whose name says it holds a secret, however deeply nested."""
    return {
        key: REDACTED if key != "event" and _names_a_secret(key) else _mask(value)
        for key, value in event_dict.items()
    }


# Where every rendered line goes; configure_logging replaces it.
_handler = logging.StreamHandler(sys.stderr)


class LineWriter:
    """The end of structlog's chain: writes the rendered line through the root
    handler's stream and lock, so that it never interleaves with a standard
    library line, and follows the handler when logging is configured again.
    Whether a level is logged is still the standard library's logger's say."""

    __slots__ = ("_stdlib", "getEffectiveLevel", "isEnabledFor", "name")

    def __init__(self, name: str = "") -> None:
        self._stdlib = logging.getLogger(name)
        self.name = self._stdlib.name
        self.getEffectiveLevel = self._stdlib.getEffectiveLevel
        self.isEnabledFor = self._stdlib.isEnabledFor

    @property
    def disabled(self) -> bool:
        return self._stdlib.disabled

    def msg(self, line: str) -> None:
        handler = _handler
        try:
            with handler.lock:  # type: ignore[union-attr]  # StreamHandler always has one
                handler.stream.write(line + handler.terminator)
                handler.flush()
        except Exception:
            # As for a standard library record: a line that cannot be written is
            # reported, and never fails the work that logged it.
            handler.handleError(logging.makeLogRecord({"msg": line}))

    debug = info = warning = warn = error = critical = exception = fatal = log = msg


def configure_logging(*, level: str, log_format: LogFormat) -> None:
    global _handler
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if log_format is LogFormat.JSON
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            # A call below the level is dropped before the processors below it run.
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.format_exc_info,
            renderer,
        ],
        logger_factory=LineWriter,
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [_handler]
    root.setLevel(level.upper())
    # Alembic narrates every connection at INFO; dcibridge logs the migrations it runs itself.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs every request at INFO; the DCImanager client logs its own, without secrets.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # uvicorn's access log duplicates our own request log line.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
