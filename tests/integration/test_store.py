"""Store invariants on a real PostgreSQL: migrations (incl. upgrading a v1 database with data),
per-chain partitions, and the guards of the commit path."""

from __future__ import annotations

import asyncpg
import pytest

from indexer.errors import DataConsistencyError, FinalityViolation
from indexer.model import BlockRef, EventKind, TokenEvent
from indexer.store.db import migrate, migrations
from indexer.store.store import Batch, Store

pytestmark = pytest.mark.integration
A = "0x" + "a" * 40
B = "0x" + "b" * 40
Z = "0x" + "0" * 40


def ref(n: int, tag: str = "x") -> BlockRef:
    return BlockRef(n, f"0x{tag}{n:063x}"[:66], f"0x{tag}{n - 1:063x}"[:66], 1_700_000_000 + n)


def ev(
    block: BlockRef, i: int, kind: EventKind, frm: str, to: str, amount: int, chain: str = "c1"
) -> TokenEvent:
    return TokenEvent(
        chain, block.number, block.hash, f"0x{i:064x}", i, kind, frm, to, amount, block.timestamp
    )


async def test_upgrade_v1_database_with_data_keeps_every_row(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        v1 = next(m for m in migrations() if m[0] == 1)[2]
        await conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        await conn.execute(v1)
        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES (1, 'init')")
        await conn.execute("INSERT INTO chains VALUES ('old-chain', 'evm', $1, 18)", A)
        await conn.execute(
            "INSERT INTO events VALUES ('old-chain', 5, '0xh', '0xt', 0, 'mint', $1, $2, 77, now()),"
            " ('other', 6, '0xh2', '0xt2', 1, 'transfer', $2, $3, 5, now())",
            Z,
            A,
            B,
        )
        applied = await migrate(conn)
        assert applied == [v for v, _, _ in migrations() if v > 1]
        assert await conn.fetchval("SELECT count(*) FROM events") == 2
        assert await conn.fetchval('SELECT amount FROM "events_old-chain"') == 77
        assert await conn.fetchval("SELECT count(*) FROM events_other") == 1
        assert await migrate(conn) == []  # idempotent
    finally:
        await conn.close()


async def test_partition_per_chain_and_commit_guards(pool: asyncpg.Pool) -> None:
    store = Store(pool)
    await store.register_chain("c1", "evm", A, 18)
    with pytest.raises(DataConsistencyError, match="now configured as"):
        await store.register_chain("c1", "evm", B, 18)

    b1, b2, b3 = ref(1), ref(2), ref(3)
    await store.commit(
        Batch(
            "c1",
            expected=None,
            cursor=b2,
            finalized=1,
            events=[ev(b1, 0, EventKind.MINT, Z, A, 100)],
            refs=[b1, b2],
        )
    )
    assert await pool.fetchval("SELECT count(*) FROM events_c1") == 1
    assert await pool.fetchval("SELECT count(*) FROM events_default") == 0

    # A batch planned on a stale cursor (a second writer) is refused whole.
    with pytest.raises(DataConsistencyError, match="planned on"):
        await store.commit(Batch("c1", expected=b1, cursor=b3, finalized=1, refs=[b3]))
    # Events at or below the cursor are refused (they would double count).
    with pytest.raises(DataConsistencyError, match="not above the cursor"):
        await store.commit(
            Batch(
                "c1",
                expected=b2,
                cursor=b3,
                finalized=1,
                events=[ev(b2, 1, EventKind.MINT, Z, A, 1)],
                refs=[b3],
            )
        )
    assert await pool.fetchval("SELECT count(*) FROM events") == 1

    await store.commit(
        Batch(
            "c1",
            expected=b2,
            cursor=b3,
            finalized=2,
            events=[ev(b3, 2, EventKind.TRANSFER, A, B, 40)],
            refs=[b3],
        )
    )
    # Rolling back below the finalized height is a finality violation; nothing changes.
    with pytest.raises(FinalityViolation):
        await store.commit(
            Batch("c1", expected=b3, cursor=ref(2, "y"), finalized=2, rollback_to=b1, orphaned=[b2, b3])
        )
    assert await store.balance("c1", A) == 60
    assert await store.balance("c1", B) == 40
    assert (await store.supply_at("c1")).supply == 100

    # A legal reorg above finality undoes balances and supply exactly.
    b3y = BlockRef(3, "0x" + "e" * 64, b2.hash, b3.timestamp)
    await store.commit(
        Batch(
            "c1",
            expected=b3,
            cursor=b3y,
            finalized=2,
            events=[ev(b3y, 0, EventKind.BURN, A, Z, 30)],
            refs=[b3y],
            rollback_to=b2,
            orphaned=[b3],
        )
    )
    assert await store.balance("c1", A) == 70
    assert await store.balance("c1", B) == 0
    assert (await store.supply_at("c1")).supply == 70
    assert (await store.supply_at("c1", 2)).supply == 100
    (r,) = await store.reorgs("c1")
    assert (r["depth"], r["ancestor_number"], r["orphaned_events"]) == (1, 2, 1)
    cp = await store.load_checkpoint("c1")
    assert cp.cursor == b3y and cp.finalized == 2 and cp.window == (b2, b3y)
