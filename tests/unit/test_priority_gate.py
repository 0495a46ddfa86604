import asyncio

import pytest

from app.kit.gate import PriorityGate


async def _hold(
    gate: PriorityGate, priority: int, admitted: list[int], release: asyncio.Event
) -> None:
    async with gate.slot(priority):
        admitted.append(priority)
        await release.wait()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_freed_slot_goes_to_the_lowest_priority_not_the_first_to_arrive() -> None:
    gate = PriorityGate(1)
    admitted: list[int] = []
    release = {p: asyncio.Event() for p in (50, 30, 10, 20)}
    holder = asyncio.create_task(_hold(gate, 50, admitted, release[50]))
    await _settle()
    waiters = [asyncio.create_task(_hold(gate, p, admitted, release[p])) for p in (30, 10, 20)]
    await _settle()
    assert admitted == [50]

    for priority in (50, 10, 20, 30):
        release[priority].set()
        await _settle()
    await asyncio.gather(holder, *waiters)
    assert admitted == [50, 10, 20, 30]


async def test_no_more_than_its_slots_hold_it_at_once() -> None:
    gate = PriorityGate(3)
    inside = 0
    most = 0

    async def work(priority: int) -> None:
        nonlocal inside, most
        async with gate.slot(priority):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.001)
            inside -= 1

    await asyncio.gather(*(work(p % 7) for p in range(40)))
    assert most == 3
    assert inside == 0


async def test_equal_priorities_keep_arrival_order() -> None:
    gate = PriorityGate(1)
    admitted: list[int] = []
    release = asyncio.Event()
    first = asyncio.create_task(_hold(gate, 0, admitted, release))
    await _settle()
    order: list[int] = []

    async def arrive(tag: int) -> None:
        async with gate.slot(5):
            order.append(tag)

    waiters = [asyncio.create_task(arrive(tag)) for tag in range(4)]
    await _settle()
    release.set()
    await asyncio.gather(first, *waiters)
    assert order == [0, 1, 2, 3]


class _HolderAndTwoWaiters:
    """Priority 9 holds a one-slot gate; priorities 1 and 2 wait for it."""

    def __init__(self) -> None:
        self.gate = PriorityGate(1)
        self.admitted: list[int] = []
        self.release = {p: asyncio.Event() for p in (9, 1, 2)}

    async def start(self) -> tuple[asyncio.Task[None], asyncio.Task[None], asyncio.Task[None]]:
        holder = self._task(9)
        await _settle()
        first, second = self._task(1), self._task(2)
        await _settle()
        return holder, first, second

    def _task(self, priority: int) -> asyncio.Task[None]:
        return asyncio.create_task(
            _hold(self.gate, priority, self.admitted, self.release[priority])
        )


async def test_a_cancelled_waiter_neither_enters_nor_loses_the_slot() -> None:
    scene = _HolderAndTwoWaiters()
    holder, cancelled, survivor = await scene.start()
    cancelled.cancel()
    scene.release[9].set()
    scene.release[2].set()
    await asyncio.gather(holder, survivor)
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert scene.admitted == [9, 2]


async def test_a_waiter_cancelled_just_after_being_handed_the_slot_passes_it_on() -> None:
    scene = _HolderAndTwoWaiters()
    holder, handed, later = await scene.start()
    scene.release[9].set()
    await asyncio.sleep(0)  # the holder leaves and hands its slot to priority 1 ...
    handed.cancel()  # ... which is cancelled before it runs again
    scene.release[2].set()
    async with asyncio.timeout(1):  # a lost slot would keep priority 2 out for good
        await asyncio.gather(holder, later)
    with pytest.raises(asyncio.CancelledError):
        await handed
    assert scene.admitted == [9, 2]


def test_a_gate_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        PriorityGate(0)
