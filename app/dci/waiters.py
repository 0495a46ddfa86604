"""Callers waiting on one shared DCImanager call (coalesced server reads and
free-server searches): each gets the call's answer or its error."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def settle(waiters: Iterable[asyncio.Future[T]], outcome: T | BaseException) -> None:
    """Hand ``outcome`` to every waiter still waiting; one whose caller was
    cancelled meanwhile is already done and is skipped."""
    for future in waiters:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
