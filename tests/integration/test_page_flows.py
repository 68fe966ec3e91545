"""The page's mints and burns (issue #16 item 7): `queries.flows` sums every window of every chain in
one query over real PostgreSQL, equal to the synthetic history's own sums."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from indexer.model import EventKind
from indexer.store import queries as q
from tests.support import api_data

pytestmark = pytest.mark.integration


async def test_flows_equal_the_events_in_each_window(pool: asyncpg.Pool) -> None:
    syn = await api_data.load(pool, "devnet", blocks=120)
    other = await api_data.load(pool, "devnet2", blocks=60, seed=9)
    head = {"devnet": syn.head, "devnet2": other.head}
    # windows starting inside the history (between blocks and on a block), before it and after it
    sinces = [
        datetime.fromtimestamp(api_data.T0 + 50 * api_data.BLOCK_SECONDS + 1, UTC),
        datetime.fromtimestamp(api_data.T0 + 30 * api_data.BLOCK_SECONDS, UTC),
        datetime.fromtimestamp(api_data.T0 - 86400, UTC),
        datetime.fromtimestamp(api_data.T0 + 10**6, UTC),
    ]
    async with pool.acquire() as conn:
        got = await q.flows(conn, head, sinces)
    assert [(f.chain, f.since) for f in got] == [(c, s) for c in head for s in sinces]
    for f in got:
        s = syn if f.chain == "devnet" else other
        evs = [e for e in s.events if e.timestamp >= f.since.timestamp()]
        mints = [e.amount for e in evs if e.kind == EventKind.MINT]
        burns = [e.amount for e in evs if e.kind == EventKind.BURN]
        assert (f.minted, f.burned, f.mints, f.burns) == (sum(mints), sum(burns), len(mints), len(burns))
    assert got[2].mints > got[0].mints > 0  # the windows differ
    assert got[3].minted == 0
    async with pool.acquire() as conn:
        assert await q.flows(conn, {}, sinces) == []
