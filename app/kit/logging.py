"""structlog set-up: JSON in production, readable console locally, secrets masked."""

from __future__ import annotations

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


def _mask(value: Any) -> Any:
    if isinstance(value, MutableMapping):
        return {
            k: REDACTED if isinstance(k, str) and _SECRET_KEY_PATTERN.search(k) else _mask(v)
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
        key: REDACTED if _SECRET_KEY_PATTERN.search(key) and key != "event" else _mask(value)
        for key, value in event_dict.items()
    }


def configure_logging(*, level: str, log_format: LogFormat) -> None:
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
            # A call below the level is dropped before the processors below it
            # run; stdlib would drop it only after all of them.
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
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
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
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
