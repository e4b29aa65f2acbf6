"""recommender_svc.retired: the retired-set is reloaded when the shared version moves, or is old."""

from __future__ import annotations

import asyncio

from recommender_svc.retired import RetiredSet


class _Source:
    def __init__(self) -> None:
        self.ids: frozenset[int] = frozenset()
        self.loads = 0

    async def __call__(self) -> frozenset[int]:
        self.loads += 1
        await asyncio.sleep(0)
        return self.ids


async def test_reloads_only_when_the_version_moves() -> None:
    source = _Source()
    retired = RetiredSet(source)
    assert await retired.current(b"") == frozenset() and source.loads == 1
    source.ids = frozenset({7})
    assert await retired.current(b"") == frozenset()  # same version: no database read
    assert source.loads == 1
    assert await retired.current(b"1") == frozenset({7})
    assert source.loads == 2


async def test_a_burst_that_saw_one_change_reloads_once() -> None:
    source = _Source()
    retired = RetiredSet(source)
    await retired.current(b"")
    source.ids = frozenset({3})
    results = await asyncio.gather(*(retired.current(b"2") for _ in range(20)))
    assert all(r == frozenset({3}) for r in results)
    assert source.loads == 2


async def test_an_unknown_version_keeps_the_set_until_it_is_old() -> None:
    source = _Source()
    retired = RetiredSet(source, max_age_seconds=0.05)
    await retired.current(None)
    source.ids = frozenset({9})
    assert await retired.current(None) == frozenset()
    await asyncio.sleep(0.06)
    assert await retired.current(None) == frozenset({9})
