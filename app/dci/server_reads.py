"""Reads of single servers, coalesced into filtered list calls when many wait at once.

In a burst, hundreds of orders each watch their own server (OS installs, wipes,
ports, power). One ``GET server/{id}`` per look costs an HTTP round trip on both
sides; one ``GET server?where=(id EQ a) OR (id EQ b) ...`` answers them all.

How it batches: a read goes out at once when nothing is on the wire, so an
idle system waits for nothing. Reads asked while a call is out queue up and
leave together when it comes back: the busier the system, the bigger the
batches. A full batch does not wait; it leaves beside the call already out, up to
``max_in_flight`` calls. Every answer is a read made after it was asked for, as
fresh as a single GET.

That DCImanager filters servers on ``id`` and that list items are whole server
objects are both unconfirmed. So the answer is checked, not trusted: items
that were not asked for are ignored, servers missing from it are read one by
one, and if an item lacks a field a single read carries, or the filter itself is
refused, this client stops batching and reads one by one from then on.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence

import structlog

from app.dci.exceptions import DCIProtocolError, DCIRequestError
from app.dci.models import Server
from app.dci.waiters import settle

log = structlog.get_logger(__name__)

# Answers that say this instance does not take the filter (or its length).
_FILTER_REFUSED = frozenset({400, 404, 414, 422})

ReadOne = Callable[[int], Awaitable[Server]]
# The servers with these ids, or None when the answer's items are not whole servers.
ReadMany = Callable[[Sequence[int]], Awaitable[list[Server] | None]]


class ServerReads:
    def __init__(
        self,
        *,
        read_one: ReadOne,
        read_many: ReadMany,
        batch_size: int = 50,
        max_in_flight: int = 2,
        enabled: bool = True,
    ) -> None:
        self._read_one = read_one
        self._read_many = read_many
        self._batch_size = batch_size
        self._max_in_flight = max_in_flight
        self.batching = enabled
        self._waiting: dict[int, list[asyncio.Future[Server]]] = {}
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, server_id: int) -> Server:
        if not self.batching:
            return await self._read_one(server_id)
        future: asyncio.Future[Server] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(server_id, []).append(future)
        self._dispatch()
        return await future

    def _may_send(self) -> bool:
        if not self._waiting:
            return False
        if self._in_flight == 0:
            return True
        return self._in_flight < self._max_in_flight and len(self._waiting) >= self._batch_size

    def _dispatch(self) -> None:
        while self._may_send():
            ids = list(itertools.islice(self._waiting, self._batch_size))
            batch = {server_id: self._waiting.pop(server_id) for server_id in ids}
            self._in_flight += 1
            task = asyncio.create_task(self._serve(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, batch: dict[int, list[asyncio.Future[Server]]]) -> None:
        try:
            outcomes = await self._read(list(batch))
        except asyncio.CancelledError:
            for futures in batch.values():
                for future in futures:
                    future.cancel()
            raise
        except Exception as exc:  # the waiters get it, as a single read would give it
            outcomes = dict.fromkeys(batch, exc)
        finally:
            self._in_flight -= 1
            self._dispatch()
        for server_id, futures in batch.items():
            settle(futures, outcomes[server_id])

    async def _read(self, ids: list[int]) -> dict[int, Server | BaseException]:
        found: dict[int, Server | BaseException] = {}
        if len(ids) > 1 and self.batching:
            servers = await self._read_listed(ids)
            wanted = set(ids)
            found.update((s.id, s) for s in servers if s.id in wanted)
        missing = [server_id for server_id in ids if server_id not in found]
        singles = await asyncio.gather(
            *(self._read_one(server_id) for server_id in missing), return_exceptions=True
        )
        found.update(zip(missing, singles, strict=True))
        return found

    async def _read_listed(self, ids: list[int]) -> list[Server]:
        try:
            servers = await self._read_many(ids)
        except DCIProtocolError as exc:
            self._stop_batching(f"the answer does not parse: {exc}")
            return []
        except DCIRequestError as exc:
            if exc.status not in _FILTER_REFUSED:
                raise  # e.g. a refused login: single reads would fail alike
            self._stop_batching(f"the filter was refused: {exc}")
            return []
        if servers is None:
            self._stop_batching("list items are not whole server objects")
            return []
        return servers

    def _stop_batching(self, why: str) -> None:
        if self.batching:
            self.batching = False
            log.warning("dci.server_reads.batching_off", reason=why)
