"""Parameter and field constraints shared by every router."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

# Ids are 64-bit in the database; anything larger is simply not found, and must
# not reach the driver (which would overflow).
MAX_ID = 2**63 - 1

# PostgreSQL cannot store NUL in text, and nothing we pass on to DCImanager
# should carry one: every free-text input refuses it up front, on every database.
NO_NUL = r"^[^\x00]*$"

IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
PageLimit = Annotated[int, Query(ge=1, le=100)]
