"""The indexer's PostgreSQL store: one transaction per batch, exact integer amounts.

Write path (`commit`): roll back orphaned blocks, insert events (COPY), update balances and
cumulative supply, store the window's block refs and move the cursor — all or nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import operator
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg
import orjson
import structlog

from indexer.errors import DataConsistencyError, FinalityViolation
from indexer.model import BlockRef, Checkpoint, EventKind, TokenEvent
from indexer.store import queries
from indexer.store.copy_binary import COPY_HEADER, COPY_TRAILER
from indexer.store.db import Conn, unavailable_on_disconnect
from indexer.store.queries import Totals

log = structlog.get_logger(__name__)
T = TypeVar("T")

SUPPLY_COLUMNS = (
    "chain",
    "block_number",
    "block_hash",
    "block_time",
    "minted",
    "burned",
    "mints",
    "burns",
    "transfers",
)
LATEST = 2**62  # "the highest block there is", for reads at the indexed head

# COPY takes `TokenEvent` tuples as they are: the columns follow its fields (migration 007).
EVENT_COLUMNS = tuple("block_unix" if f == "timestamp" else f for f in TokenEvent._fields)


REGISTRY_LOCK = 0x55534432  # advisory lock key serialising chain registration
INDEX_BUILD_MEMORY = "256MB"  # maintenance_work_mem for building a chain's event indexes
INDEX_BUILD_TIMEOUT = 24 * 3600.0  # an index build over a long history may take minutes
INDEX_BUILD_CONCURRENCY = 2  # index builds at once (each may take INDEX_BUILD_MEMORY)


@functools.lru_cache(maxsize=4096)  # one datetime per block, not per event
def _ts(seconds: int) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds else None


_EVENT_ORDER = operator.attrgetter("block_number", "log_index")


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _supply_row(
    chain: str, e: TokenEvent, minted: int, burned: int, mints: int, burns: int, transfers: int
) -> tuple[Any, ...]:
    return (chain, e.block_number, e.block_hash, _ts(e.timestamp), minted, burned, mints, burns, transfers)


def _unix(value: datetime | None) -> int:
    return int(value.timestamp()) if value is not None else 0


def _int(value: Decimal | int | None) -> int:
    return 0 if value is None else int(value)


@dataclass(frozen=True, slots=True)
class Batch:
    """One atomic step of a chain's index.

    `expected` is the cursor the batch was planned on (None for the first batch); the commit fails
    with DataConsistencyError if the stored cursor differs (a second writer, or a lost update).
    With `rollback_to`, every block above it is removed first (a reorg), then `events` are added.
    Without `fold_balances` (backfill), balances may trail the cursor (see migration 004).
    `refs` are block refs to keep for reorg detection; refs at or below `finalized` except the
    highest one (the anchor) are pruned.
    """

    chain: str
    expected: BlockRef | None
    cursor: BlockRef
    finalized: int
    events: Sequence[TokenEvent] = ()
    refs: Sequence[BlockRef] = ()
    rollback_to: BlockRef | None = None
    orphaned: Sequence[BlockRef] = ()
    fold_balances: bool = True  # fold every event up to the cursor into `balances`
    # `events` already encoded for binary COPY (`copy_binary.encode_event_rows`); the commit
    # checks that PostgreSQL counted as many rows as there are events.
    copy_rows: bytes | None = None


@dataclass(frozen=True, slots=True)
class CommitResult:
    head: Totals  # cumulative totals at the new cursor


class Store:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @contextlib.asynccontextmanager
    async def _acquire(self) -> AsyncIterator[Conn]:
        """A pooled connection; connection-level failures become `DatabaseUnavailable`."""
        with unavailable_on_disconnect():
            async with self.pool.acquire() as conn:
                yield conn

    # ---- setup -------------------------------------------------------------------------------
    async def register_chain(self, chain: str, kind: str, token: str, decimals: int) -> None:
        """Record which token a chain's rows belong to (refusing to mix tokens under one name) and
        make sure the chain has its events partition. Serialised across processes: two daemons
        starting together must not race to create the same partition."""
        async with self._acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", REGISTRY_LOCK)
            row = await conn.fetchrow("SELECT kind, token, decimals FROM chains WHERE chain = $1", chain)
            if row is None:
                await conn.execute(
                    "INSERT INTO chains (chain, kind, token, decimals) VALUES ($1, $2, $3, $4)",
                    chain,
                    kind,
                    token,
                    decimals,
                )
            elif (row["kind"], row["token"], row["decimals"]) != (kind, token, decimals):
                raise DataConsistencyError(
                    f"chain {chain!r} was indexed as {row['kind']} token {row['token']} "
                    f"({row['decimals']} dp) but is now configured as {kind} token {token} ({decimals} dp); "
                    "use a new chain name or a new database"
                )
            await conn.execute("SELECT usd1_ensure_partition($1)", chain)

    async def load_checkpoint(self, chain: str) -> Checkpoint:
        async with self._acquire() as conn:
            cur = await conn.fetchrow("SELECT * FROM cursors WHERE chain = $1", chain)
            rows = await conn.fetch(
                "SELECT number, hash, parent_hash, block_time FROM blocks WHERE chain = $1 ORDER BY number",
                chain,
            )
        window = tuple(
            BlockRef(r["number"], r["hash"], r["parent_hash"], _unix(r["block_time"])) for r in rows
        )
        if cur is None:
            return Checkpoint(None, -1, ())
        cursor = BlockRef(
            cur["indexed_number"], cur["indexed_hash"], cur["indexed_parent"], _unix(cur["indexed_time"])
        )
        if not window or window[-1] != cursor:
            raise DataConsistencyError(
                f"{chain}: stored window tip {window[-1] if window else None} != cursor {cursor}"
            )
        return Checkpoint(cursor, cur["finalized_number"], window)

    # ---- secondary event indexes (migration 005) ---------------------------------------------
    async def missing_event_indexes(self, chain: str) -> int:
        """How many of the chain's secondary event indexes (tx, sender, receiver, amount) are missing."""
        async with self._acquire() as conn:
            return int(await conn.fetchval("SELECT usd1_missing_event_indexes($1)", chain))

    async def drop_event_indexes(self, chain: str) -> int:
        """Drop the chain's secondary event indexes for a long backfill; returns how many."""
        async with self._acquire() as conn, conn.transaction():
            return int(await conn.fetchval("SELECT usd1_drop_event_indexes($1)", chain))

    async def build_event_indexes(self, chain: str) -> int:
        """Build the chain's missing secondary event indexes (one sort each, up to
        `INDEX_BUILD_CONCURRENCY` at once on their own connections); returns how many."""
        async with self._acquire() as conn:
            ddls = [
                r["ddl"]
                for r in await conn.fetch(
                    "SELECT ddl FROM usd1_event_index_ddl($1) WHERE to_regclass(quote_ident(name)) IS NULL",
                    chain,
                )
            ]
        gate = asyncio.Semaphore(INDEX_BUILD_CONCURRENCY)

        async def build(ddl: str) -> None:
            async with gate, self._acquire() as conn, conn.transaction():
                await conn.execute(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
                await conn.execute("SET LOCAL statement_timeout = 0")
                await conn.execute(ddl, timeout=INDEX_BUILD_TIMEOUT)

        await asyncio.gather(*(build(d) for d in ddls))
        return len(ddls)

    async def fold_balances(self, chain: str) -> int:
        """Fold every event up to the cursor into `balances` in a transaction of its own (a
        deferred backfill's end, alongside `build_event_indexes`); returns how many heights."""
        async with self._acquire() as conn, conn.transaction():
            cur = await conn.fetchrow(
                "SELECT indexed_number, balances_as_of FROM cursors WHERE chain = $1 FOR UPDATE", chain
            )
            if cur is None or cur["balances_as_of"] >= cur["indexed_number"]:
                return 0
            await _fold_balances(conn, chain, cur["balances_as_of"], cur["indexed_number"])
            await conn.execute(
                "UPDATE cursors SET balances_as_of = $2 WHERE chain = $1", chain, cur["indexed_number"]
            )
            return int(cur["indexed_number"] - cur["balances_as_of"])

    # ---- write path --------------------------------------------------------------------------
    async def commit(self, batch: Batch) -> CommitResult:
        async with self._acquire() as conn, conn.transaction():
            return await self._commit(conn, batch)

    async def _commit(self, conn: Conn, b: Batch) -> CommitResult:
        chain = b.chain
        cur = await conn.fetchrow(
            "SELECT indexed_number, indexed_hash, finalized_number, balances_as_of FROM cursors"
            " WHERE chain = $1 FOR UPDATE",
            chain,
        )
        stored = None if cur is None else (cur["indexed_number"], cur["indexed_hash"])
        expected = None if b.expected is None else (b.expected.number, b.expected.hash)
        if stored != expected:
            raise DataConsistencyError(f"{chain}: cursor is {stored}, batch was planned on {expected}")
        stored_final = -1 if cur is None else cur["finalized_number"]
        balances_as_of = -1 if cur is None else cur["balances_as_of"]

        deltas: dict[str, int] = defaultdict(int)
        rolled_back = 0
        if b.rollback_to is not None:
            if b.rollback_to.number < stored_final:
                raise FinalityViolation(
                    chain, stored_final, b.rollback_to.number + 1, "rollback below finalized"
                )
            rows = await conn.fetch(
                "DELETE FROM events WHERE chain = $1 AND block_number > $2"
                " RETURNING block_number, kind, from_addr, to_addr, amount",
                chain,
                b.rollback_to.number,
            )
            rolled_back = len(rows)
            # Only rows already folded into `balances` are taken out of it.
            for r in rows:
                if r["block_number"] <= balances_as_of:
                    _apply_delta(deltas, r["kind"], r["from_addr"], r["to_addr"], -int(r["amount"]))
            balances_as_of = min(balances_as_of, b.rollback_to.number)
            await conn.execute(
                "DELETE FROM supply WHERE chain = $1 AND block_number > $2", chain, b.rollback_to.number
            )
            await conn.execute(
                "DELETE FROM blocks WHERE chain = $1 AND number > $2", chain, b.rollback_to.number
            )
            old_tip = b.expected
            assert old_tip is not None
            new_tip = b.cursor
            await conn.execute(
                "INSERT INTO reorgs (chain, depth, ancestor_number, ancestor_hash, old_tip_number,"
                " old_tip_hash, new_tip_number, new_tip_hash, orphaned_events, orphaned_blocks)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                chain,
                len(b.orphaned),
                b.rollback_to.number,
                b.rollback_to.hash,
                old_tip.number,
                old_tip.hash,
                new_tip.number,
                new_tip.hash,
                rolled_back,
                orjson.dumps([{"number": o.number, "hash": o.hash} for o in b.orphaned]).decode(),
            )

        events = sorted(b.events, key=_EVENT_ORDER)
        base = b.rollback_to.number if b.rollback_to is not None else (stored[0] if stored else -1)
        if events and events[0].block_number <= base:
            raise DataConsistencyError(
                f"{chain}: event at block {events[0].block_number} is not above the cursor {base}"
            )
        if events and b.copy_rows is not None:
            status = await conn.copy_to_table(
                "events",
                source=_chunks(COPY_HEADER, b.copy_rows, COPY_TRAILER),
                columns=EVENT_COLUMNS,
                format="binary",
            )
            if status != f"COPY {len(events)}":
                raise DataConsistencyError(
                    f"{chain}: the encoded batch holds {status.removeprefix('COPY ')} rows, not {len(events)}"
                )
        elif events:
            await conn.copy_records_to_table("events", records=events, columns=EVENT_COLUMNS)

        if deltas:
            addrs = [a for a, d in deltas.items() if d != 0]
            if addrs:
                await conn.execute(
                    "INSERT INTO balances (chain, address, raw)"
                    " SELECT $1, a, d FROM unnest($2::text[], $3::numeric[]) AS t(a, d)"
                    " ON CONFLICT (chain, address) DO UPDATE SET raw = balances.raw + excluded.raw",
                    chain,
                    addrs,
                    [deltas[a] for a in addrs],
                )

        if b.fold_balances and balances_as_of < b.cursor.number:
            await _fold_balances(conn, chain, balances_as_of, b.cursor.number)
            balances_as_of = b.cursor.number

        head = await queries.totals_at(conn, chain, LATEST)
        if events:
            head = await self._insert_supply(conn, chain, head, events)

        if b.refs:
            await conn.executemany(
                "INSERT INTO blocks (chain, number, hash, parent_hash, block_time) VALUES ($1, $2, $3, $4, $5)"
                " ON CONFLICT (chain, number) DO UPDATE SET hash = excluded.hash,"
                " parent_hash = excluded.parent_hash, block_time = excluded.block_time",
                [(chain, r.number, r.hash, r.parent_hash, _ts(r.timestamp)) for r in b.refs],
            )
        finalized = max(stored_final, min(b.finalized, b.cursor.number))
        # Keep the highest ref at or below the finalized height as the window's anchor.
        await conn.execute(
            "DELETE FROM blocks WHERE chain = $1 AND number < ("
            " SELECT coalesce(max(number), -1) FROM blocks WHERE chain = $1 AND number <= $2)",
            chain,
            finalized,
        )
        await conn.execute(
            "INSERT INTO cursors (chain, indexed_number, indexed_hash, indexed_parent, indexed_time,"
            " finalized_number, balances_as_of, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now())"
            " ON CONFLICT (chain) DO UPDATE SET indexed_number = excluded.indexed_number,"
            " indexed_hash = excluded.indexed_hash, indexed_parent = excluded.indexed_parent,"
            " indexed_time = excluded.indexed_time, finalized_number = excluded.finalized_number,"
            " balances_as_of = excluded.balances_as_of, updated_at = now()",
            chain,
            b.cursor.number,
            b.cursor.hash,
            b.cursor.parent_hash,
            _ts(b.cursor.timestamp),
            finalized,
            balances_as_of,
        )
        return CommitResult(head=head)

    async def _insert_supply(
        self, conn: Conn, chain: str, prev: Totals, events: Sequence[TokenEvent]
    ) -> Totals:
        rows: list[tuple[Any, ...]] = []
        minted, burned, mints, burns, transfers = (
            prev.minted,
            prev.burned,
            prev.mints,
            prev.burns,
            prev.transfers,
        )
        last: TokenEvent | None = None
        for e in events:  # sorted by block: a row per block, with the totals after its last event
            if last is not None and e.block_number != last.block_number:
                rows.append(_supply_row(chain, last, minted, burned, mints, burns, transfers))
            kind = e.kind
            if kind == "mint":
                minted += e.amount
                mints += 1
            elif kind == "burn":
                burned += e.amount
                burns += 1
            else:
                transfers += 1
            last = e
        if last is None:
            return prev
        rows.append(_supply_row(chain, last, minted, burned, mints, burns, transfers))
        point = Totals(last.block_number, _ts(last.timestamp), minted, burned, mints, burns, transfers)
        await conn.copy_records_to_table("supply", records=rows, columns=SUPPLY_COLUMNS)
        return point

    # ---- read path ---------------------------------------------------------------------------
    async def supply_at(self, chain: str, block: int | None = None) -> Totals:
        """Cumulative totals at `block` (None: the indexed head); all zero before any event."""
        async with self._acquire() as conn:
            return await queries.totals_at(conn, chain, LATEST if block is None else block)

    async def cursors(self) -> dict[str, dict[str, Any]]:
        async with self._acquire() as conn:
            rows = await conn.fetch("SELECT * FROM cursors ORDER BY chain")
        return {r["chain"]: dict(r) for r in rows}

    async def balance(self, chain: str, address: str, block: int | None = None) -> int:
        """Balance of `address` at the indexed head (block None) or as of `block`."""
        async with self._acquire() as conn:
            if block is None:
                return await queries.head_balance(conn, chain, address)
            return await queries.balance_at(conn, chain, address, block)

    async def reorgs(self, chain: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        async with self._acquire() as conn:
            rows = await conn.fetch(
                "SELECT * FROM reorgs WHERE ($1::text IS NULL OR chain = $1) ORDER BY id DESC LIMIT $2",
                chain,
                limit,
            )
        return [dict(r) for r in rows]

    async def read(self, query: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run one read-only query function (`query(conn, *args)`, e.g. from
        `indexer.store.audit_queries`) on a pooled connection."""
        async with self._acquire() as conn:
            return await query(conn, *args)


async def _fold_balances(conn: Conn, chain: str, after: int, upto: int) -> None:
    """Add every event in blocks (after, upto] to `balances`, one statement: aggregate per
    address, update the holders that have a row, insert the others in address order (measured
    on a 200k-event first fold: 0.76 s as one INSERT .. ON CONFLICT, 0.46 s this way). The
    caller holds the chain's cursor row, so no other writer adds rows for this chain meanwhile."""
    await conn.execute(
        "WITH agg AS MATERIALIZED ("
        " SELECT a, sum(d) AS d FROM ("
        "   SELECT to_addr AS a, amount AS d FROM events WHERE chain = $1 AND block_number > $2"
        "     AND block_number <= $3 AND kind <> 'burn' AND to_addr IS NOT NULL"
        "   UNION ALL"
        "   SELECT from_addr, -amount FROM events WHERE chain = $1 AND block_number > $2"
        "     AND block_number <= $3 AND kind <> 'mint' AND from_addr IS NOT NULL"
        " ) AS t GROUP BY a HAVING sum(d) <> 0),"
        " updated AS (UPDATE balances b SET raw = b.raw + agg.d FROM agg"
        "   WHERE b.chain = $1 AND b.address = agg.a RETURNING b.address)"
        " INSERT INTO balances (chain, address, raw)"
        " SELECT $1, a, d FROM agg WHERE NOT EXISTS (SELECT 1 FROM updated u WHERE u.address = agg.a)"
        " ORDER BY a",
        chain,
        after,
        upto,
    )


def _apply_delta(
    deltas: dict[str, int], kind: str, from_addr: str | None, to_addr: str | None, amount: int
) -> None:
    """Balance effect of one event (negative `amount` undoes it). The zero address / missing side
    of a mint or burn holds no balance."""
    if kind != EventKind.MINT and from_addr is not None:
        deltas[from_addr] -= amount
    if kind != EventKind.BURN and to_addr is not None:
        deltas[to_addr] += amount
