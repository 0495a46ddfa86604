"""FastAPI dependencies shared by the simulated services: the simulator, the session,
and the list query parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from app.simulator.errors import ErrorKind, SimError
from app.simulator.listing import ListQuery
from app.simulator.runtime import Simulator
from app.simulator.sessions import Session

SESSION_COOKIE = "ses6"


def get_simulator(request: Request) -> Simulator:
    simulator = request.app.state.simulator
    assert isinstance(simulator, Simulator)
    return simulator


SimulatorDep = Annotated[Simulator, Depends(get_simulator)]


def require_session(request: Request, sim: SimulatorDep) -> Session:
    """Accept a call only with the three credentials the vendor's examples send:
    the ``ses6`` cookie (or the ``ISP-Session`` header the vendor's PHP library
    sends instead), an ``x-xsrf-token`` header equal to it, and
    ``isp-box-instance: true``."""
    token = request.cookies.get(SESSION_COOKIE) or request.headers.get("isp-session")
    if (
        not token
        or request.headers.get("x-xsrf-token") != token
        or request.headers.get("isp-box-instance", "").lower() != "true"
    ):
        raise SimError(ErrorKind.UNAUTHORIZED)
    session = sim.sessions.find(token, ttl_seconds=sim.faults.config.token_ttl_seconds)
    if session is None:
        raise SimError(ErrorKind.UNAUTHORIZED)
    return session


SessionDep = Annotated[Session, Depends(require_session)]


def list_query(
    where: Annotated[str | None, Query()] = None,
    orderby: Annotated[str | None, Query()] = None,
    limit: Annotated[str | None, Query()] = None,
) -> ListQuery:
    return ListQuery(where, orderby, limit)


ListQueryDep = Annotated[ListQuery, Depends(list_query)]
