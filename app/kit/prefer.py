"""RFC 7240 ``Prefer: wait=N``: how long a client is willing to wait for the result."""

from __future__ import annotations

MAX_WAIT_SECONDS = 60


def requested_wait(header: str | None) -> int | None:
    """The ``wait`` preference in seconds, capped; None when absent or malformed.

    Preferences are hints (RFC 7240 section 2): one that cannot be understood is
    ignored, not refused.
    """
    if not header:
        return None
    for preference in header.split(","):
        name, _, value = preference.split(";")[0].strip().partition("=")
        if name.strip().lower() == "wait":
            value = value.strip().strip('"')
            if value.isdigit():
                return min(int(value), MAX_WAIT_SECONDS)
    return None
