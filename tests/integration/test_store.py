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


async def test_upgrade_adds_the_amount_index_except_to_a_deferred_first_sync(dsn: str) -> None:
    """Migration 008 builds the new (amount) index on a chain whose secondary indexes are in
    place, and leaves a chain in a deferred first sync alone (its backfill builds all four)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, name, sql in migrations():
            if version <= 7:
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations VALUES ($1, $2)", version, name)
        for chain in ("live", "syncing"):
            await conn.execute("INSERT INTO chains VALUES ($1, 'evm', $2, 18)", chain, A)
            await conn.execute("SELECT usd1_ensure_partition($1)", chain)
        assert await conn.fetchval("SELECT usd1_drop_event_indexes('syncing')") == 3
        assert await migrate(conn) == [v for v, _, _ in migrations() if v > 7]
        assert await conn.fetchval("SELECT usd1_missing_event_indexes('live')") == 0
        assert await conn.fetchval("SELECT to_regclass('events_live_amount')") is not None
        assert await conn.fetchval("SELECT usd1_missing_event_indexes('syncing')") == 4
    finally:
        await conn.close()


async def test_min_amount_filter_reads_the_amount_index(pool: asyncpg.Pool) -> None:
    """`transfers` with a selective min_amount is answered from the amount index (not a walk
    of the whole history), with the same rows a scan gives."""
    from decimal import Decimal

    from indexer.store import queries

    store = Store(pool)
    await store.register_chain("big", "evm", A, 18)
    refs = [ref(n, "b") for n in range(1, 401)]
    events = [
        ev(r, i, EventKind.TRANSFER, A, B, (10**24 if (r.number * 50 + i) % 997 == 0 else i + 1), "big")
        for r in refs
        for i in range(50)
    ]
    await store.commit(
        Batch("big", expected=None, cursor=refs[-1], finalized=0, events=events, refs=[refs[-1]])
    )
    await pool.execute("ANALYZE events_big")
    wanted = sorted(((e.block_number, e.log_index) for e in events if e.amount >= 10**24), reverse=True)
    assert 10 <= len(wanted) <= 40

    seen: list[str] = []

    class Recording:
        def __init__(self, conn: asyncpg.Connection) -> None:
            self._conn = conn

        async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
            seen.append(sql)
            return await self._conn.fetch(sql, *args)

        def __getattr__(self, name: str) -> object:
            return getattr(self._conn, name)

    f = queries.TransferFilter(chain="big", min_raw=10**24)
    async with pool.acquire() as conn:
        page = await queries.transfers(Recording(conn), f, limit=100)  # type: ignore[arg-type]
        assert [(e.block_number, e.log_index) for e in page.events] == wanted
        sql = seen[-1]
        args = ["big", refs[-1].number, Decimal(10**24), 101]
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, *args))
    assert "events_big_amount" in plan, plan


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


async def test_copy_stores_every_field_exactly_even_with_special_characters(pool: asyncpg.Pool) -> None:
    """Events go in by COPY. A field with COPY's text-format special characters (a hostile reply
    that got past the decoders) is stored exactly, never split into other columns or rows."""
    store = Store(pool)
    await store.register_chain("c2", "solana", "mint", 6)
    b1 = ref(1)
    hostile = "sig\twith\ttabs\nand a newline\\N and \\\\ backslashes\r"
    events = [
        TokenEvent("c2", 1, b1.hash, hostile, 0, EventKind.MINT, None, "Acc1", 10**40 + 1, b1.timestamp),
        TokenEvent("c2", 1, b1.hash, "5igAlnum", 1, EventKind.TRANSFER, "Acc1", "", 7, b1.timestamp),
        TokenEvent("c2", 1, b1.hash, "\\N", 2, EventKind.BURN, "Acc1", None, 3, 0),
    ]
    await store.commit(Batch("c2", expected=None, cursor=b1, finalized=0, events=events, refs=[b1]))
    rows = await pool.fetch(
        "SELECT tx_hash, log_index, kind, from_addr, to_addr, amount, block_time FROM events"
        " WHERE chain = 'c2' ORDER BY log_index"
    )
    assert [(r["tx_hash"], r["kind"], r["from_addr"], r["to_addr"], int(r["amount"])) for r in rows] == [
        (hostile, "mint", None, "Acc1", 10**40 + 1),
        ("5igAlnum", "transfer", "Acc1", "", 7),
        ("\\N", "burn", "Acc1", None, 3),
    ]
    assert rows[0]["block_time"].timestamp() == b1.timestamp and rows[2]["block_time"] is None

    # The same without NULLs, as EVM events always are.
    b2 = ref(2)
    plain = [
        TokenEvent("c2", 2, b2.hash, "0xok", 0, EventKind.TRANSFER, "Acc1", "Acc2", 1, b2.timestamp),
        TokenEvent("c2", 2, b2.hash, "tab\there", 1, EventKind.TRANSFER, "Acc\\1", "Acc\r2", 2, 0),
        TokenEvent("c2", 2, b2.hash, "two\nlines\n", 2, EventKind.TRANSFER, "", "Acc2", 3, 0),
    ]
    await store.commit(Batch("c2", expected=b1, cursor=b2, finalized=0, events=plain, refs=[b2]))
    rows = await pool.fetch(
        "SELECT tx_hash, from_addr, to_addr, amount FROM events WHERE chain = 'c2' AND block_number = 2"
        " ORDER BY log_index"
    )
    assert [tuple(r) for r in rows] == [(e.tx_hash, e.from_addr, e.to_addr, e.amount) for e in plain]


async def test_secondary_event_indexes_drop_and_build_per_chain(pool: asyncpg.Pool) -> None:
    store = Store(pool)
    await store.register_chain("c3", "evm", A, 18)
    await store.register_chain("c4", "evm", B, 18)

    async def names(chain: str) -> set[str]:
        rows = await pool.fetch("SELECT indexname FROM pg_indexes WHERE tablename = $1", f"events_{chain}")
        return {r["indexname"] for r in rows}

    secondary = {"events_c3_tx", "events_c3_from", "events_c3_to", "events_c3_amount"}
    assert secondary <= await names("c3")
    assert await store.missing_event_indexes("c3") == 0
    assert await store.drop_event_indexes("c3") == 4
    assert await store.missing_event_indexes("c3") == 4
    assert not secondary & await names("c3")
    assert await store.missing_event_indexes("c4") == 0  # other chains keep theirs

    # Reads stay exact without the indexes, and the build restores all four.
    b1 = ref(1)
    await store.commit(
        Batch(
            "c3",
            expected=None,
            cursor=b1,
            finalized=0,
            events=[ev(b1, 0, EventKind.MINT, Z, A, 5, "c3")],
            refs=[b1],
        )
    )
    assert await store.balance("c3", A) == 5
    assert await store.build_event_indexes("c3") == 4
    assert await store.build_event_indexes("c3") == 0
    assert secondary <= await names("c3")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")  # the table is tiny
        plan = await conn.fetchval("EXPLAIN SELECT * FROM events WHERE chain = 'c3' AND from_addr = $1", A)
    assert "events_c3_from" in plan


async def test_pre_encoded_copy_stores_exactly_what_asyncpg_stores(pool: asyncpg.Pool) -> None:
    """A batch whose events come already encoded for binary COPY (`copy_binary`, from the decode
    worker) stores every column, and the same supply rows, exactly as asyncpg's own encoding of
    the same events does."""
    import random

    from indexer.store.copy_binary import encode_event_rows

    rng = random.Random(8)
    store = Store(pool)
    amounts = [0, 1, 9_999, 10_000, 10_001, 10**8, 10**20, 10**40 + 1, 2**256 - 1]
    amounts += [rng.getrandbits(rng.choice([16, 64, 80, 128, 256])) for _ in range(200)]
    blocks = [ref(n) for n in range(1, 6)]

    def generate() -> list[TokenEvent]:
        out = []
        for i, amount in enumerate(amounts):
            b = blocks[i * len(blocks) // len(amounts)]
            frm = None if i % 50 == 7 else Z if i % 9 == 0 else f"0x{rng.getrandbits(160):040x}"
            to = None if i % 50 == 8 else Z if i % 11 == 0 else "Acc\t\\N\n" if i == 3 else f"0x{i:040x}"
            kind = (
                EventKind.MINT
                if frm in (None, Z)
                else EventKind.BURN
                if to in (None, Z)
                else EventKind.TRANSFER
            )
            out.append(TokenEvent("", b.number, b.hash, f"0x{i:064x}", i, kind, frm, to, amount, b.timestamp))
        return out

    generated = generate()

    def events(chain: str) -> list[TokenEvent]:
        return [e._replace(chain=chain) for e in generated]

    cols = "block_number, block_hash, tx_hash, log_index, kind, from_addr, to_addr, amount, block_unix, block_time"
    stored, supply = [], []
    for chain, encoded in (("enc1", True), ("enc2", False)):
        await store.register_chain(chain, "evm", A, 18)
        evs = events(chain)
        copy_rows = encode_event_rows(evs) if encoded else None
        last = blocks[-1]
        await store.commit(
            Batch(
                chain, expected=None, cursor=last, finalized=0, events=evs, refs=[last], copy_rows=copy_rows
            )
        )
        stored.append(
            await pool.fetch(f"SELECT {cols} FROM events WHERE chain = $1 ORDER BY log_index", chain)
        )
        supply.append(
            [
                tuple(r)[1:]
                for r in await pool.fetch("SELECT * FROM supply WHERE chain = $1 ORDER BY 2", chain)
            ]
        )
    assert len(stored[0]) == len(amounts)
    assert [tuple(r) for r in stored[0]] == [tuple(r) for r in stored[1]]
    assert len(supply[0]) == len(blocks) and supply[0] == supply[1]
    assert [int(r["amount"]) for r in stored[0]] == amounts

    # An encoding that does not hold the batch's events is refused whole.
    await store.register_chain("enc3", "evm", A, 18)
    evs = events("enc3")
    with pytest.raises(DataConsistencyError, match="holds 10 rows, not"):
        await store.commit(
            Batch(
                "enc3",
                expected=None,
                cursor=blocks[-1],
                finalized=0,
                events=evs,
                refs=[blocks[-1]],
                copy_rows=encode_event_rows(evs[:10]),
            )
        )
    assert await pool.fetchval("SELECT count(*) FROM events WHERE chain = 'enc3'") == 0
    assert (await store.load_checkpoint("enc3")).cursor is None
