"""FairTurns: a few turns at a shared resource (the evaluator processes), round-robin among tenants."""

from __future__ import annotations

import asyncio

import pytest

from spectra.probe.fair_turns import FairTurns


async def waiter(turns: FairTurns, tenant: str, name: str, served: list[str]) -> None:
    await turns.acquire(tenant)
    served.append(name)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_free_turns_are_taken_at_once_then_waiters_wait() -> None:
    turns = FairTurns(2)
    await turns.acquire("a")
    await turns.acquire("a")
    served: list[str] = []
    task = asyncio.create_task(waiter(turns, "b", "b1", served))
    await settle()
    assert (served, turns.waiting) == ([], 1)
    turns.release()
    await task
    assert (served, turns.waiting) == (["b1"], 0)


async def test_waiters_are_served_round_robin_by_tenant_not_first_come() -> None:
    turns = FairTurns(1)
    await turns.acquire("busy")
    served: list[str] = []
    arrivals = [("a", "a1"), ("a", "a2"), ("a", "a3"), ("b", "b1"), ("a", "a4"), ("c", "c1"), ("b", "b2")]
    tasks = []
    for tenant, name in arrivals:
        tasks.append(asyncio.create_task(waiter(turns, tenant, name, served)))
        await settle()  # they arrive in this order
    for _ in arrivals:
        turns.release()
        await settle()
    await asyncio.gather(*tasks)
    assert served == ["a1", "b1", "c1", "a2", "b2", "a3", "a4"]


async def test_a_waiter_cancelled_while_waiting_leaves_no_turn_behind() -> None:
    turns = FairTurns(1)
    await turns.acquire("a")
    served: list[str] = []
    gone = asyncio.create_task(waiter(turns, "b", "b1", served))
    await settle()
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert turns.waiting == 0
    turns.release()
    await asyncio.wait_for(turns.acquire("c"), 5)  # the one turn is free again
    assert served == []


async def test_a_turn_given_to_a_waiter_cancelled_before_it_ran_passes_on() -> None:
    turns = FairTurns(1)
    await turns.acquire("a")
    served: list[str] = []
    first = asyncio.create_task(waiter(turns, "b", "b1", served))
    second = asyncio.create_task(waiter(turns, "c", "c1", served))
    await settle()
    turns.release()  # b1's turn is granted ...
    first.cancel()  # ... but it is cancelled before it runs (the check's timeout)
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 5)
    assert served == ["c1"]


def test_there_is_at_least_one_turn() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        FairTurns(0)
