from __future__ import annotations

import logging
import sys

from app.simulator.middleware import ResponseDropped, quiet_dropped_responses


def record_for(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException:
        info = sys.exc_info()
    return logging.LogRecord(
        "uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application", (), info
    )


def test_uvicorn_reports_real_crashes_but_not_deliberate_drops() -> None:
    quiet_dropped_responses()
    uvicorn_log = logging.getLogger("uvicorn.error")
    assert not uvicorn_log.filter(record_for(ResponseDropped("dropped")))
    assert uvicorn_log.filter(record_for(RuntimeError("real bug")))
