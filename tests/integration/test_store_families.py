"""The store's event-family seam on a real PostgreSQL: the block-scoped table registry against the
schema, commit + rollback of every family against an in-memory reference model (hypothesis),
coverage per family and the fill of a family below the cursor."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.errors import DataConsistencyError
from indexer.model import BlockRef, ControlEvent, ControlKind, EventKind, Family, FamilyConfig, TokenEvent
from indexer.store.blocktables import BLOCK_TABLES, CHAIN_TABLES
from indexer.store.db import create_pool, migrate
from indexer.store.store import Batch, Store
from tests.conftest import _with_db

pytestmark = pytest.mark.integration
ZERO = "0x" + "0" * 40
ADDRS = ["0x" + c * 40 for c in "abcd"]
TRANSFERS = FamilyConfig(
    "fp-t", {"0xtoken": ["Transfer(address,address,uint256)"]}, fillable=False, legacy=True
)
CONTROLS = FamilyConfig("fp-c", {"0xtoken": ["Freeze(address,address)"]}, fillable=True)


async def test_every_table_keyed_by_chain_is_registered(pool: asyncpg.Pool) -> None:
    """A table with a `chain` column is either block-scoped (in the rollback registry, with its
    block column) or listed as chain-wide: a new family's table cannot be forgotten in a reorg."""
    rows = await pool.fetch(
        "SELECT c.relname AS t, array_agg(a.attname::text) AS cols FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        " WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition GROUP BY c.relname"
    )
    tables = {r["t"]: set(r["cols"]) for r in rows}
    keyed = {t for t, cols in tables.items() if "chain" in cols}
    registered = {t.table for t in BLOCK_TABLES}
    assert keyed == registered | set(CHAIN_TABLES)
    assert not registered & set(CHAIN_TABLES)
    for t in BLOCK_TABLES:
        assert t.block_column in tables[t.table], t


# ---- the reference model ----------------------------------------------------------------------
@dataclass
class Block:
    ref: BlockRef
    events: list[TokenEvent]
    controls: list[ControlEvent]


@dataclass
class Model:
    chain: str
    blocks: list[Block] = field(default_factory=list)
    finalized: int = -1
    serial: int = 0
    last_orphaned: dict[str, int] | None = None

    def new_hash(self) -> str:
        self.serial += 1
        return f"0x{self.serial:064x}"

    def events(self) -> set[tuple[Any, ...]]:
        return {tuple(e) for b in self.blocks for e in b.events}

    def controls(self) -> set[tuple[Any, ...]]:
        return {_control_key(c) for b in self.blocks for c in b.controls}

    def supply(self) -> int:
        out = 0
        for b in self.blocks:
            for e in b.events:
                out += e.amount if e.kind is EventKind.MINT else -e.amount if e.kind is EventKind.BURN else 0
        return out

    def balances(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for b in self.blocks:
            for e in b.events:
                if e.kind is not EventKind.MINT:
                    out[e.from_addr or ""] -= e.amount
                if e.kind is not EventKind.BURN:
                    out[e.to_addr or ""] += e.amount
        return out


def _control_key(c: ControlEvent) -> tuple[Any, ...]:
    return (
        c.block_number,
        c.block_hash,
        c.tx_hash,
        c.log_index,
        c.kind.value,
        c.address,
        c.subject,
        c.amount,
    )


# One block's content: transfers as (kind, from, to, amount) and control events as (kind, subject).
move = st.tuples(
    st.sampled_from(list(EventKind)), st.sampled_from(ADDRS), st.sampled_from(ADDRS), st.integers(1, 2**80)
)
control = st.tuples(
    st.sampled_from([ControlKind.FROZEN, ControlKind.UNFROZEN, ControlKind.PAUSED]), st.sampled_from(ADDRS)
)
block = st.tuples(st.lists(move, max_size=3), st.lists(control, max_size=2))
op = st.one_of(
    st.tuples(st.just("advance"), st.lists(block, min_size=1, max_size=3), st.booleans()),
    st.tuples(st.just("reorg"), st.integers(1, 4), st.lists(block, max_size=3)),
    st.tuples(st.just("finalize"), st.integers(1, 3)),
)


def _make_block(m: Model, number: int, parent: str, content: Any) -> Block:
    moves, ctrls = content
    ref = BlockRef(number, m.new_hash(), parent, 1_700_000_000 + number)
    events = []
    for i, (kind, a, b, amount) in enumerate(moves):
        frm = ZERO if kind is EventKind.MINT else a
        to = ZERO if kind is EventKind.BURN else b
        events.append(
            TokenEvent(m.chain, number, ref.hash, m.new_hash(), i, kind, frm, to, amount, ref.timestamp)
        )
    controls = [
        ControlEvent(
            m.chain,
            number,
            ref.hash,
            m.new_hash(),
            100 + i,
            kind,
            kind.value,
            "0xtoken",
            subject=a,
            timestamp=ref.timestamp,
        )
        for i, (kind, a) in enumerate(ctrls)
    ]
    return Block(ref, events, controls)


async def _apply(store: Store, m: Model, step: Any) -> None:
    tip = m.blocks[-1].ref if m.blocks else None
    match step:
        case ("advance", contents, fold):
            parent = tip.hash if tip else "0x" + "0" * 64
            new = []
            for c in contents:
                b = _make_block(m, (tip.number + 1 if tip else 0) + len(new), parent, c)
                new.append(b)
                parent = b.ref.hash
            await store.commit(
                Batch(
                    m.chain,
                    expected=tip,
                    cursor=new[-1].ref,
                    finalized=m.finalized,
                    events=[e for b in new for e in b.events],
                    controls=[c for b in new for c in b.controls],
                    refs=[b.ref for b in new],
                    fold_balances=fold,
                )
            )
            m.blocks += new
        case ("reorg", depth, contents):
            unfinal = [b for b in m.blocks if b.ref.number > m.finalized]
            depth = min(depth, len(unfinal), len(m.blocks) - 1)
            if depth <= 0 or tip is None:
                return
            keep, gone = m.blocks[:-depth], m.blocks[-depth:]
            ancestor = keep[-1].ref
            new, parent = [], ancestor.hash
            for c in contents:
                b = _make_block(m, ancestor.number + 1 + len(new), parent, c)
                new.append(b)
                parent = b.ref.hash
            result = await store.commit(
                Batch(
                    m.chain,
                    expected=tip,
                    cursor=new[-1].ref if new else ancestor,
                    finalized=m.finalized,
                    events=[e for b in new for e in b.events],
                    controls=[c for b in new for c in b.controls],
                    refs=[b.ref for b in new],
                    rollback_to=ancestor,
                    orphaned=[b.ref for b in gone],
                )
            )
            want = {
                "transfers": sum(len(b.events) for b in gone),
                "controls": sum(len(b.controls) for b in gone),
            }
            assert {f.value: n for f, n in result.orphaned.items()} == want
            assert result.controls_changed == bool(want["controls"] or any(b.controls for b in new))
            m.last_orphaned = want
            m.blocks = keep + new
        case ("finalize", k):
            if tip is None:
                return
            m.finalized = min(tip.number, m.finalized + k)
            await store.commit(Batch(m.chain, expected=tip, cursor=tip, finalized=m.finalized))


async def _check(store: Store, m: Model) -> None:
    pool = store.pool
    rows = await pool.fetch(
        "SELECT chain, block_number, block_hash, tx_hash, log_index, kind, from_addr, to_addr, amount, block_unix"
        " FROM events WHERE chain = $1",
        m.chain,
    )
    got = {(r[0], r[1], r[2], r[3], r[4], EventKind(r[5]), r[6], r[7], int(r[8]), r[9]) for r in rows}
    assert got == m.events()
    rows = await pool.fetch(
        "SELECT block_number, block_hash, tx_hash, log_index, kind, address, subject, amount FROM control_events"
        " WHERE chain = $1",
        m.chain,
    )
    assert {tuple(r) for r in rows} == m.controls()
    assert (await store.supply_at(m.chain)).supply == m.supply()
    for a, v in m.balances().items():
        if a != ZERO:
            assert await store.balance(m.chain, a) == v, a
    if m.last_orphaned is not None:
        last = (await store.reorgs(m.chain, 1))[0]
        assert last["orphaned_events"] == m.last_orphaned["transfers"]


def test_commit_and_rollback_match_a_reference_model(pg_dsn: str) -> None:
    """Random mixes of transfers and control events over advances, reorgs (above finality) and
    finality steps, with and without folding balances: after every step the store holds exactly
    the canonical chain's rows of both families, the supply and the balances of the model."""
    db = f"t_{uuid.uuid4().hex[:12]}"

    async def setup() -> None:
        admin = await asyncpg.connect(pg_dsn)
        try:
            await admin.execute(f'CREATE DATABASE "{db}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(_with_db(pg_dsn, db))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(setup())
    dsn = _with_db(pg_dsn, db)

    @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(op, min_size=1, max_size=12))
    def scenario(ops: list[Any]) -> None:
        async def run() -> None:
            pool = await create_pool(dsn, min_size=1, max_size=2)
            try:
                store = Store(pool)
                m = Model(f"p{uuid.uuid4().hex[:10]}")
                await store.register_chain(
                    m.chain, "evm", "0xtoken", 18, families={Family.TRANSFERS: TRANSFERS}
                )
                for step in ops:
                    await _apply(store, m, step)
                    await _check(store, m)
            finally:
                await pool.close()

        asyncio.run(run())

    scenario()


# ---- coverage per family ----------------------------------------------------------------------
def ref(n: int) -> BlockRef:
    return BlockRef(n, f"0x{n:064x}", f"0x{n - 1:064x}" if n else "0x" + "0" * 64, 1_700_000_000 + n)


def ctl(n: int, i: int = 0, kind: ControlKind = ControlKind.FROZEN) -> ControlEvent:
    return ControlEvent(
        "c1", n, ref(n).hash, f"0x{n:032x}{i:032x}", i, kind, "Freeze", "0xtoken", subject=ADDRS[0]
    )


async def test_coverage_is_recorded_per_family_and_a_family_is_filled_below_the_cursor(
    pool: asyncpg.Pool,
) -> None:
    store = Store(pool)
    cov = await store.register_chain(
        "c1", "evm", "0xtoken", 18, start=5, families={Family.TRANSFERS: TRANSFERS}
    )
    assert {f: c.from_block for f, c in cov.items()} == {Family.TRANSFERS: 5}
    # Index blocks 5..20 (transfers only), finalized 16; block 20's ref stays in the window.
    await store.commit(Batch("c1", None, ref(10), 16, refs=[ref(10)]))
    await store.commit(Batch("c1", ref(10), ref(20), 16, refs=[ref(18), ref(19), ref(20)]))
    # Enabling the controls family on the indexed chain: covered from the cursor + 1 only.
    fams = {Family.TRANSFERS: TRANSFERS, Family.CONTROLS: CONTROLS}
    cov = await store.register_chain("c1", "evm", "0xtoken", 18, start=5, families=fams)
    assert cov[Family.CONTROLS].from_block == 21 and cov[Family.TRANSFERS].from_block == 5
    # Registering again changes nothing.
    assert (await store.register_chain("c1", "evm", "0xtoken", 18, start=5, families=fams))[
        Family.CONTROLS
    ].from_block == 21
    # A fill must end right below the coverage, and above the stored finalized height only at a
    # block the index holds.
    with pytest.raises(DataConsistencyError, match="does not end below"):
        await store.fill_family("c1", Family.CONTROLS, "fp-c", 15, 19, [], ref(19))
    bad_top = BlockRef(20, "0x" + "e" * 64, ref(19).hash)
    with pytest.raises(DataConsistencyError, match="above the stored finalized height"):
        await store.fill_family("c1", Family.CONTROLS, "fp-c", 17, 20, [ctl(18)], bad_top)
    with pytest.raises(DataConsistencyError, match="coverage changed"):
        await store.fill_family("c1", Family.CONTROLS, "other-fp", 17, 20, [ctl(18)], ref(20))
    with pytest.raises(DataConsistencyError, match="outside its range"):
        await store.fill_family("c1", Family.CONTROLS, "fp-c", 17, 20, [ctl(12)], ref(20))
    got = await store.fill_family("c1", Family.CONTROLS, "fp-c", 17, 20, [ctl(18), ctl(20, 1)], ref(20))
    assert got.from_block == 17
    # Downward, in its own transactions; re-reading stored rows leaves them alone.
    got = await store.fill_family("c1", Family.CONTROLS, "fp-c", 5, 16, [ctl(6), ctl(16, 2)], ref(16))
    assert got.from_block == 5
    n = await pool.fetchval("SELECT count(*) FROM control_events WHERE chain = 'c1'")
    assert n == 4
    # Transfers were not touched, and the cursor did not move.
    assert await pool.fetchval("SELECT count(*) FROM events WHERE chain = 'c1'") == 0
    assert (await store.load_checkpoint("c1")).cursor == ref(20)
    # A changed transfers family (e.g. tether supply events) on an indexed chain is refused.
    changed = {Family.TRANSFERS: FamilyConfig("fp-t2", {"0xtoken": ["Issue(uint256)"]}, fillable=False)}
    with pytest.raises(DataConsistencyError, match="cannot be filled in below the cursor"):
        await store.register_chain("c1", "evm", "0xtoken", 18, start=5, families=changed)
    # A family no longer configured loses its coverage (its rows stay).
    cov = await store.register_chain(
        "c1", "evm", "0xtoken", 18, start=5, families={Family.TRANSFERS: TRANSFERS}
    )
    assert set(cov) == {Family.TRANSFERS}
    assert await pool.fetchval("SELECT count(*) FROM control_events WHERE chain = 'c1'") == 4
    # A rollback takes the control events above the ancestor with it, counted per family.
    r = await store.commit(
        Batch("c1", ref(20), ref(17), 16, rollback_to=ref(17), orphaned=[ref(18), ref(19), ref(20)])
    )
    assert r.orphaned == {Family.TRANSFERS: 0, Family.CONTROLS: 2} and r.controls_changed
    assert orjson.loads((await store.reorgs("c1", 1))[0]["orphaned"]) == {"transfers": 0, "controls": 2}
