"""The garbage collector's settings for a long-running dcibridge process."""

from __future__ import annotations

import gc

# CPython collects the young generation every 700 net allocations of container
# objects; one API request or worker step allocates thousands, so the default
# runs several collections per request. 10,000 keeps at most a few MiB of
# short-lived garbage a little longer in exchange for far fewer collections.
YOUNG_GENERATION_THRESHOLD = 10_000


def settle_heap() -> None:
    """Call once start-up is over, from the process's entry point.

    What start-up built (the application, SQLAlchemy's mappers and compiled
    statements, pydantic's validators: well over 100,000 objects) lives as long
    as the process. Frozen, the collector no longer walks it on every full
    collection, so a full collection costs what requests and operations in
    flight hold, not the whole program.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)
