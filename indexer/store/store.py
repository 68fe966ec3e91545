"""The indexer's PostgreSQL store: one transaction per batch, exact integer amounts.

Write path (`commit`): roll back orphaned blocks (every block-scoped table of the registry in
`blocktables`), insert each family's records (transfers by COPY, control events), update
balances and cumulative supply, store the window's block refs and move the cursor — all or
nothing. Coverage per family (`register_chain`, `fill_family`) says from which height each
family is complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import operator
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar, assert_never

import asyncpg
import orjson
import structlog

from indexer.errors import DataConsistencyError, FinalityViolation
from indexer.model import BlockRef, Checkpoint, ControlEvent, EventKind, Family, FamilyConfig, TokenEvent
from indexer.store import queries
from indexer.store.blocktables import FAMILY_TABLES, Undo, insert_controls, rollback_above
from indexer.store.copy_binary import COPY_HEADER, COPY_TRAILER
from indexer.store.db import Conn, unavailable_on_disconnect
from indexer.store.queries import Coverage, Totals

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
    controls: Sequence[ControlEvent] = ()  # the controls family's records


class NotFinalYet(DataConsistencyError):
    """A fill's range is above the index's finalized height and is not a block the index holds:
    wait for the index's finality (not an inconsistency of stored data)."""


@dataclass(frozen=True, slots=True)
class CommitResult:
    head: Totals  # cumulative totals at the new cursor
    orphaned: Mapping[Family, int]  # rows rolled back per family (empty without a rollback)
    added_controls: int = 0

    @property
    def controls_changed(self) -> bool:
        return bool(self.added_controls or self.orphaned.get(Family.CONTROLS))


class Store:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @contextlib.asynccontextmanager
    async def _acquire(self) -> AsyncIterator[Conn]:
        """A pooled connection; connection-level failures become `DatabaseUnavailable`."""
        with unavailable_on_disconnect():
            async with self.pool.acquire() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Conn]:
        """One consistent read-only view (as `queries.snapshot`), failures as `DatabaseUnavailable`."""
        async with self._acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            yield conn

    # ---- setup -------------------------------------------------------------------------------
    async def register_chain(
        self,
        chain: str,
        kind: str,
        token: str,
        decimals: int,
        *,
        start: int = 0,
        families: Mapping[Family, FamilyConfig] | None = None,
    ) -> dict[Family, Coverage]:
        """Record which token a chain's rows belong to (refusing to mix tokens under one name),
        make sure the chain has its events partition, and (with `families`) record each
        family's coverage (see `_register_families`). Serialised across processes: two daemons
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
            if families is None:
                return {}
            return await _register_families(conn, chain, start, families)

    async def coverage(self, chain: str) -> dict[Family, Coverage]:
        async with self._acquire() as conn:
            return await queries.coverage(conn, chain)

    async def fill_family(
        self,
        chain: str,
        family: Family,
        fingerprint: str,
        lo: int,
        hi: int,
        records: Sequence[ControlEvent],
        top: BlockRef,
    ) -> Coverage:
        """Add a family's records of heights [lo, hi] below its coverage, in a transaction of its
        own, and move the coverage down to `lo`. Refused unless the family still decodes what it
        did (`fingerprint`), its coverage starts at hi + 1, and [lo, hi] is final: at or below the
        stored finalized height, or `top` (the chain's header at `hi`, read as finalized) is the
        block the index holds at `hi`. Rows already stored are left alone."""
        table = FAMILY_TABLES[family]
        if table is not FAMILY_TABLES[Family.CONTROLS]:
            raise ValueError(
                f"family {family} cannot be filled in below the cursor (its totals are cumulative)"
            )
        async with self._acquire() as conn, conn.transaction():
            cur = await conn.fetchrow(
                "SELECT finalized_number FROM cursors WHERE chain = $1 FOR UPDATE", chain
            )
            row = await conn.fetchrow(
                "SELECT from_block, fingerprint FROM coverage WHERE chain = $1 AND family = $2 FOR UPDATE",
                chain,
                family.value,
            )
            if cur is None or row is None or row["fingerprint"] != fingerprint:
                raise DataConsistencyError(
                    f"{chain}: the {family} coverage changed while it was being filled"
                )
            if row["from_block"] != hi + 1 or top.number != hi or lo > hi:
                raise DataConsistencyError(
                    f"{chain}: fill [{lo}, {hi}] does not end below the {family} coverage (from {row['from_block']})"
                )
            if hi > cur["finalized_number"]:
                held = await conn.fetchval(
                    "SELECT hash FROM blocks WHERE chain = $1 AND number = $2", chain, hi
                )
                if held != top.hash:
                    raise NotFinalYet(
                        f"{chain}: block {hi} is above the stored finalized height {cur['finalized_number']}"
                        f" and the index holds {held}, not {top.hash}"
                    )
            if any(not lo <= r.block_number <= hi for r in records):
                raise DataConsistencyError(f"{chain}: fill [{lo}, {hi}] got a record outside its range")
            await insert_controls(conn, records, skip_existing=True)
            await conn.execute(
                "UPDATE coverage SET from_block = $3, updated_at = now() WHERE chain = $1 AND family = $2",
                chain,
                family.value,
                lo,
            )
            got = await queries.coverage(conn, chain)
        return got[family]

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

        undo = Undo(balances_as_of)
        orphaned: dict[Family, int] = {}
        if b.rollback_to is not None:
            if b.rollback_to.number < stored_final:
                raise FinalityViolation(
                    chain, stored_final, b.rollback_to.number + 1, "rollback below finalized"
                )
            orphaned = await rollback_above(conn, chain, b.rollback_to.number, undo)
            balances_as_of = undo.balances_as_of
            old_tip = b.expected
            assert old_tip is not None
            new_tip = b.cursor
            await conn.execute(
                "INSERT INTO reorgs (chain, depth, ancestor_number, ancestor_hash, old_tip_number,"
                " old_tip_hash, new_tip_number, new_tip_hash, orphaned_events, orphaned_blocks, orphaned)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                chain,
                len(b.orphaned),
                b.rollback_to.number,
                b.rollback_to.hash,
                old_tip.number,
                old_tip.hash,
                new_tip.number,
                new_tip.hash,
                orphaned[Family.TRANSFERS],
                orjson.dumps([{"number": o.number, "hash": o.hash} for o in b.orphaned]).decode(),
                orjson.dumps({f.value: n for f, n in orphaned.items()}).decode(),
            )
        deltas = undo.deltas

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
        added_controls = 0
        if b.controls:
            if min(c.block_number for c in b.controls) <= base:
                raise DataConsistencyError(f"{chain}: a control event is not above the cursor {base}")
            added_controls = await insert_controls(conn, b.controls)

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
        return CommitResult(head=head, orphaned=orphaned, added_controls=added_controls)

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
            match e.kind:  # closed: an unknown kind is never counted as a transfer
                case EventKind.TRANSFER:
                    transfers += 1
                case EventKind.MINT:
                    minted += e.amount
                    mints += 1
                case EventKind.BURN:
                    burned += e.amount
                    burns += 1
                case _:
                    assert_never(e.kind)
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


async def _register_families(
    conn: Conn, chain: str, start: int, families: Mapping[Family, FamilyConfig]
) -> dict[Family, Coverage]:
    """Coverage per family, decided with the chain's registration lock held:
    - unchanged (same fingerprint): kept;
    - new on a chain without a cursor: from `start` (the first backfill covers it);
    - new or changed on an indexed chain: a fillable family starts at cursor + 1 (to be filled
      below by `backfill --family`); a family that cannot be filled (transfers, whose supply
      totals are cumulative) is refused, except a database from before coverage was recorded,
      whose transfers family decoded the token's Transfer logs only;
    - no longer configured: its coverage row goes (its stored rows stay).
    """
    cursor = await conn.fetchval("SELECT indexed_number FROM cursors WHERE chain = $1", chain)
    known = await queries.coverage(conn, chain)
    for family, fc in families.items():
        have = known.get(family)
        if have is not None and have.fingerprint == fc.fingerprint:
            continue
        if cursor is None:
            from_block = start
        elif fc.fillable:
            from_block = cursor + 1
            log.warning(
                "family_coverage_starts_at_cursor",
                chain=chain,
                family=family.value,
                from_block=from_block,
                hint=f"usd1-indexer backfill --family {family.value} fills it in below",
            )
        elif have is None and fc.legacy:
            from_block = start
        else:
            raise DataConsistencyError(
                f"chain {chain!r} is indexed up to block {cursor} and its {family} family now decodes"
                f" {dict(fc.config)}, which cannot be filled in below the cursor; use a new chain name"
                " or a new database"
            )
        await conn.execute(
            "INSERT INTO coverage (chain, family, from_block, fingerprint, config) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (chain, family) DO UPDATE SET from_block = excluded.from_block,"
            " fingerprint = excluded.fingerprint, config = excluded.config, updated_at = now()",
            chain,
            family.value,
            from_block,
            fc.fingerprint,
            orjson.dumps(fc.config).decode(),
        )
    gone = [f.value for f in known if f not in families]
    if gone:
        await conn.execute("DELETE FROM coverage WHERE chain = $1 AND family = ANY($2::text[])", chain, gone)
    return await queries.coverage(conn, chain)
