"""Searches for free servers of one configuration, shared by the claims that ask at once.

To claim a server, an order lists the free servers of its configuration: as many
as the claims of our own that DCImanager may still show as free, plus a margin.
In a burst those claims number in the hundreds, so every claim read a list of
hundreds of servers, and a burst of N orders read N such lists.

Searches for the same configuration now share calls. A search goes out at once
when none of its configuration is on the wire, so a lone claim waits for
nothing. Searches asked while one is out wait for it to come back, then leave
together as one call. They never take the answer of a call sent before they
asked: every answer is a list read after its search was asked, as fresh as a
call of its own.

A shared call asks for the largest limit among its searches plus one server per
other search, because each of them may take one of the servers it returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from app.dci.models import Server
from app.dci.waiters import settle

# The free servers of a configuration, at most ``limit`` of them.
Search = Callable[[str, int], Awaitable[list[Server]]]


@dataclass
class _Searches:
    """The searches of one configuration that will leave together."""

    limit: int = 0
    waiters: list[asyncio.Future[list[Server]]] = field(default_factory=list)

    @property
    def shared_limit(self) -> int:
        return self.limit + len(self.waiters) - 1


class FreeServerSearches:
    def __init__(self, *, search: Search) -> None:
        self._search = search
        self._on_the_wire: set[str] = set()
        self._next: dict[str, _Searches] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def find(self, configuration: str, limit: int) -> list[Server]:
        future: asyncio.Future[list[Server]] = asyncio.get_running_loop().create_future()
        searches = self._next.setdefault(configuration, _Searches())
        searches.limit = max(searches.limit, limit)
        searches.waiters.append(future)
        self._dispatch(configuration)
        # A list of its own: a claim reordering its candidates moves no other claim's.
        return list(await future)

    def _dispatch(self, configuration: str) -> None:
        if configuration in self._on_the_wire or configuration not in self._next:
            return
        searches = self._next.pop(configuration)
        self._on_the_wire.add(configuration)
        task = asyncio.create_task(self._serve(configuration, searches))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, configuration: str, searches: _Searches) -> None:
        outcome: list[Server] | BaseException
        try:
            outcome = await self._search(configuration, searches.shared_limit)
        except asyncio.CancelledError:
            for future in searches.waiters:
                future.cancel()
            raise
        except Exception as exc:  # every search of this call gets it, as its own call would
            outcome = exc
        finally:
            self._on_the_wire.discard(configuration)
            self._dispatch(configuration)
        settle(searches.waiters, outcome)
