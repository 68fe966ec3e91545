"""Read-only queries over the indexed history, shared by the HTTP API and the `query` CLI.

Every query runs inside `snapshot(pool)`: one READ ONLY, REPEATABLE READ transaction, so the
`as_of` cursor a result reports and the rows it returns come from the same instant even while the
indexer commits. Nothing here writes; a role with only SELECT on the tables is enough.

Orders and pagination:
- Transfers are ordered by (block_number, log_index, tx_hash), descending by default. That key is
  unique per chain on the canonical chain (one block hash per height), so keyset pagination over
  it is stable: a page never repeats or skips a row of the snapshot it continues.
- Cursors are opaque and authenticated (`indexer.store.pagination`): a position (block,
  log_index, tx_hash) with the filter fingerprint, which binds a cursor to the filters it was
  issued for; a forged, altered or out-of-range cursor, or one reused with other filters, is
  refused (`CursorError`).

Time filters (`since` inclusive, `until` exclusive) apply to `block_time` and are also turned into
block bounds through the `supply` table (one row per block with events, indexed by time), so a
time-only query walks the (chain, block_number) index. That translation assumes block times do
not decrease with height (EVM consensus rule; Solana block times in practice).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol

import asyncpg
import orjson

from indexer import bridges
from indexer.model import Family
from indexer.store.db import Conn, unavailable_on_disconnect
from indexer.store.pagination import INT32_MAX, CursorCodec, IntField, Layout, TextField
from indexer.supply_classes import SupplyClasses
from indexer.units import amount_json

MAX_PAGE = 1000
DEFAULT_PAGE = 100
MAX_BUCKETS = 1000
EVENT_KINDS = ("mint", "burn", "transfer")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Order = Literal["desc", "asc"]


class ChainInfo(Protocol):
    """What the queries need to know about a configured chain (ChainConfig satisfies it)."""

    @property
    def name(self) -> str: ...

    @property
    def decimals(self) -> int: ...


# How a chain shows a stored address to people (`ChainConfig.show_address`: base58 on Tron). Every
# view that gives addresses out takes one, so no route or command can forget it.
Show = Callable[[str], str]


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _int(value: Decimal | int | None) -> int:
    return 0 if value is None else int(value)


@contextlib.asynccontextmanager
async def snapshot(pool: asyncpg.Pool, *, timeout_ms: int | None = None) -> AsyncIterator[Conn]:
    """One consistent, read-only view of the database; `timeout_ms` bounds each statement
    (asyncpg.QueryCanceledError when exceeded). Losing the server is `DatabaseUnavailable`."""
    with unavailable_on_disconnect():
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            if timeout_ms is not None:
                await conn.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
            yield conn


# ---- where each chain stands ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AsOf:
    """The indexed head and the finalized height a result reflects (None: not indexed yet)."""

    chain: str
    block: int | None = None
    block_hash: str | None = None
    block_time: datetime | None = None
    finalized_block: int | None = None
    updated_at: datetime | None = None

    def is_final(self, block_number: int) -> bool:
        return self.finalized_block is not None and block_number <= self.finalized_block

    def to_json(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "block": self.block,
            "block_hash": self.block_hash,
            "block_time": iso(self.block_time),
            "finalized_block": self.finalized_block,
            "updated_at": iso(self.updated_at),
        }


def _as_of(chain: str, row: Any) -> AsOf:
    if row is None:
        return AsOf(chain)
    return AsOf(
        chain,
        row["indexed_number"],
        row["indexed_hash"],
        row["indexed_time"],
        row["finalized_number"],
        row["updated_at"],
    )


async def as_of(conn: Conn, chain: str) -> AsOf:
    row = await conn.fetchrow(
        "SELECT indexed_number, indexed_hash, indexed_time, finalized_number, updated_at"
        " FROM cursors WHERE chain = $1",
        chain,
    )
    return _as_of(chain, row)


async def as_of_all(conn: Conn) -> dict[str, AsOf]:
    rows = await conn.fetch(
        "SELECT chain, indexed_number, indexed_hash, indexed_time, finalized_number, updated_at FROM cursors"
    )
    return {r["chain"]: _as_of(r["chain"], r) for r in rows}


# ---- coverage per event family -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Coverage:
    """A family of a chain is complete from `from_block` up to the chain's cursor, for the
    configuration `fingerprint` (`config`: {address: [event signatures]})."""

    family: Family
    from_block: int
    fingerprint: str
    config: dict[str, list[str]]
    updated_at: datetime | None = None

    def to_json(self, start: int | None = None) -> dict[str, Any]:
        return {
            "from_block": self.from_block,
            "complete": None if start is None else self.from_block <= start,
            "config": self.config,
        }


async def coverage(conn: Conn, chain: str) -> dict[Family, Coverage]:
    rows = await conn.fetch(
        "SELECT family, from_block, fingerprint, config, updated_at FROM coverage WHERE chain = $1", chain
    )
    out = {}
    for r in rows:
        cfg = r["config"]
        fam = Family(r["family"])
        out[fam] = Coverage(
            fam,
            r["from_block"],
            r["fingerprint"],
            orjson.loads(cfg) if isinstance(cfg, str) else cfg,
            r["updated_at"],
        )
    return out


# ---- events ----------------------------------------------------------------------------------------
_EVENT_COLS = "block_number, block_hash, tx_hash, log_index, kind, from_addr, to_addr, amount, block_time"


@dataclass(frozen=True, slots=True)
class Event:
    chain: str
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    kind: str
    from_addr: str | None
    to_addr: str | None
    amount: int
    block_time: datetime | None

    def to_json(self, decimals: int, at: AsOf, show: Show) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "block_number": self.block_number,
            "block_hash": self.block_hash,
            "block_time": iso(self.block_time),
            "tx_hash": self.tx_hash,
            "log_index": self.log_index,
            "kind": self.kind,
            "from": None if self.from_addr is None else show(self.from_addr),
            "to": None if self.to_addr is None else show(self.to_addr),
            **amount_json(self.amount, decimals),
            "finalized": at.is_final(self.block_number),
        }


def _event(chain: str, r: Any) -> Event:
    return Event(
        chain,
        r["block_number"],
        r["block_hash"],
        r["tx_hash"],
        r["log_index"],
        r["kind"],
        r["from_addr"],
        r["to_addr"],
        int(r["amount"]),
        r["block_time"],
    )


@dataclass(frozen=True, slots=True)
class TransferFilter:
    chain: str
    address: str | None = None
    kinds: tuple[str, ...] = ()  # empty: every kind
    from_block: int | None = None
    to_block: int | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    min_raw: int | None = None
    order: Order = "desc"
    # Watchlists (issue #17 item 5): True only rows from or to a `listed` address, False only the
    # others; `listed` is the addresses in force when the filter was parsed (not in the fingerprint).
    flagged: bool | None = None
    listed: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def fingerprint(self) -> str:
        key: list[Any] = [
            self.chain,
            self.address,
            sorted(self.kinds),
            self.from_block,
            self.to_block,
            iso(self.since),
            iso(self.until),
            None if self.min_raw is None else str(self.min_raw),
            self.order,
        ]
        if self.flagged is not None:  # appended only when given: earlier cursors stay valid
            key.append(self.flagged)
        return hashlib.sha256(orjson.dumps(key)).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Position:
    """A row's place in the transfer order: (block_number, log_index, tx_hash)."""

    block_number: int
    log_index: int
    tx_hash: str


# The transfers cursor: each field within what its column holds (bigint, integer, hash text).
POSITION = Layout(
    "transfers",
    Position,
    (IntField("block_number"), IntField("log_index", high=INT32_MAX), TextField("tx_hash", 128)),
)


@dataclass(frozen=True, slots=True)
class TransferPage:
    filter: TransferFilter
    as_of: AsOf
    events: list[Event]
    limit: int
    next: Position | None  # the last row's position when there are more rows

    def to_json(
        self,
        decimals: int,
        cursors: CursorCodec,
        lists_of: Callable[[Event], list[str]] | None = None,
        *,
        show: Show,
    ) -> dict[str, Any]:
        """`lists_of`: the watchlists a row's sender or receiver is on; given, every row says
        `flagged` (and `lists` when flagged). `show`: the chain's shown address form."""
        next_cursor = (
            None if self.next is None else cursors.encode(POSITION, self.filter.fingerprint(), self.next)
        )
        rows = [e.to_json(decimals, self.as_of, show) for e in self.events]
        if lists_of is not None:
            for e, row in zip(self.events, rows, strict=True):
                names = lists_of(e)
                row["flagged"] = bool(names)
                if names:
                    row["lists"] = names
        return {
            "chain": self.filter.chain,
            "order": self.filter.order,
            "limit": self.limit,
            "as_of": self.as_of.to_json(),
            "transfers": rows,
            "next_cursor": next_cursor,
        }


class SqlArgs:
    def __init__(self, *initial: Any) -> None:
        self.values: list[Any] = list(initial)

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def keyset(p: SqlArgs, conds: list[str], after: Position | None, order: Order) -> str:
    """Keyset pagination over (block_number, log_index, tx_hash), the order of every
    block-scoped family's rows: adds the conditions for the rows after `after` and returns the
    ORDER BY clause."""
    desc = order == "desc"
    if after is not None:
        b, li, tx = p(after.block_number), p(after.log_index), p(after.tx_hash)
        cmp = "<" if desc else ">"
        conds.append(f"block_number {cmp}= {b}")
        conds.append(f"(block_number, log_index, tx_hash) {cmp} ({b}, {li}, {tx})")
    direction = "DESC" if desc else "ASC"
    return f"ORDER BY block_number {direction}, log_index {direction}, tx_hash {direction}"


def next_position(rows: Sequence[Any], limit: int) -> Position | None:
    """The position to continue after `rows` (fetched with LIMIT limit + 1), None on the last page."""
    if len(rows) <= limit:
        return None
    last = rows[limit - 1]
    return Position(last["block_number"], last["log_index"], last["tx_hash"])


async def transfers(
    conn: Conn, f: TransferFilter, *, limit: int = DEFAULT_PAGE, after: Position | None = None
) -> TransferPage:
    """One page of `f`'s events in (block_number, log_index, tx_hash) order, after `after`."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 1..{MAX_PAGE}")
    at = await as_of(conn, f.chain)
    if at.block is None:
        return TransferPage(f, at, [], limit, None)
    p = SqlArgs(f.chain)
    conds = ["chain = $1", f"block_number <= {p(at.block)}"]
    if f.kinds and set(f.kinds) != set(EVENT_KINDS):
        conds.append(f"kind = ANY({p(sorted(f.kinds))}::text[])")
    if f.from_block is not None:
        conds.append(f"block_number >= {p(f.from_block)}")
    if f.to_block is not None:
        conds.append(f"block_number <= {p(f.to_block)}")
    if f.since is not None:
        s = p(f.since)
        conds.append(f"block_time >= {s}")
        conds.append(
            "block_number >= coalesce((SELECT block_number FROM supply WHERE chain = $1"
            f" AND block_time >= {s} ORDER BY block_time, block_number LIMIT 1), {2**62})"
        )
    if f.until is not None:
        u = p(f.until)
        conds.append(f"block_time < {u}")
        conds.append(
            "block_number <= coalesce((SELECT block_number FROM supply WHERE chain = $1"
            f" AND block_time < {u} ORDER BY block_time DESC, block_number DESC LIMIT 1), -1)"
        )
    if f.min_raw is not None and f.min_raw > 0:
        conds.append(f"amount >= {p(Decimal(f.min_raw))}::numeric")
    listed = p(sorted(set(f.listed))) if f.flagged is not None else None
    from_listed = f"coalesce(from_addr = ANY({listed}::text[]), false)"  # NULL (Solana mint): no
    to_listed = f"coalesce(to_addr = ANY({listed}::text[]), false)"
    if f.flagged is False:  # most rows: the ordered scan finds a page quickly
        conds.append(f"NOT ({from_listed} OR {to_listed})")
    elif f.flagged and f.address is not None:  # the address branches below bound the rows
        conds.append(f"({from_listed} OR {to_listed})")
    order_by = keyset(p, conds, after, f.order)
    n = p(limit + 1)
    where = " AND ".join(conds)
    if f.flagged and f.address is None:
        # Per listed address, an index-ordered branch as sender and one as receiver, each reading
        # at most a page (a filter on the ordered scan reads the whole history for a rare hit:
        # measured 0.8-3 s on 1M rows with the 152-address OFAC ETH list, vs a few ms here).
        sql = (
            f"SELECT {_EVENT_COLS} FROM ("
            f"(SELECT e.* FROM unnest({listed}::text[]) AS l(addr) CROSS JOIN LATERAL"
            f" (SELECT {_EVENT_COLS} FROM events WHERE {where} AND from_addr = l.addr {order_by} LIMIT {n}) AS e)"
            " UNION ALL "
            f"(SELECT e.* FROM unnest({listed}::text[]) AS l(addr) CROSS JOIN LATERAL"
            f" (SELECT {_EVENT_COLS} FROM events WHERE {where} AND to_addr = l.addr AND NOT {from_listed}"
            f" {order_by} LIMIT {n}) AS e)"
            f") AS e {order_by} LIMIT {n}"
        )
    elif f.address is None:
        sql = f"SELECT {_EVENT_COLS} FROM events WHERE {where} {order_by} LIMIT {n}"
    else:
        # Two index-ordered branches (as sender, as receiver) merged: each reads at most a page.
        a = p(f.address)
        sql = (
            f"SELECT {_EVENT_COLS} FROM ("
            f"(SELECT {_EVENT_COLS} FROM events WHERE {where} AND from_addr = {a} {order_by} LIMIT {n})"
            " UNION ALL "
            f"(SELECT {_EVENT_COLS} FROM events WHERE {where} AND to_addr = {a}"
            f" AND from_addr IS DISTINCT FROM {a} {order_by} LIMIT {n})"
            f") AS e {order_by} LIMIT {n}"
        )
    rows = await conn.fetch(sql, *p.values)
    events = [_event(f.chain, r) for r in rows[:limit]]
    return TransferPage(f, at, events, limit, next_position(rows, limit))


@dataclass(frozen=True, slots=True)
class TxView:
    chain: str
    tx_hash: str
    as_of: AsOf
    events: list[Event]

    def to_json(self, decimals: int, *, show: Show) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "tx_hash": self.tx_hash,
            "as_of": self.as_of.to_json(),
            "events": [e.to_json(decimals, self.as_of, show) for e in self.events],
        }


async def tx(conn: Conn, chain: str, tx_hash: str) -> TxView:
    at = await as_of(conn, chain)
    rows = await conn.fetch(
        f"SELECT {_EVENT_COLS} FROM events WHERE chain = $1 AND tx_hash = $2 ORDER BY block_number, log_index",
        chain,
        tx_hash,
    )
    return TxView(chain, tx_hash, at, [_event(chain, r) for r in rows])


# ---- supply ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Totals:
    """Cumulative totals as of a block (all zero before the chain's first event)."""

    block_number: int | None = None  # the last block with events at or below the asked height
    block_time: datetime | None = None
    minted: int = 0
    burned: int = 0
    mints: int = 0
    burns: int = 0
    transfers: int = 0

    @property
    def supply(self) -> int:
        return self.minted - self.burned


def _totals(r: Any) -> Totals:
    if r is None or r["block_number"] is None:
        return Totals()
    return Totals(
        r["block_number"],
        r["block_time"],
        _int(r["minted"]),
        _int(r["burned"]),
        r["mints"],
        r["burns"],
        r["transfers"],
    )


_SUPPLY_COLS = "block_number, block_time, minted, burned, mints, burns, transfers"


async def totals_at(conn: Conn, chain: str, block: int) -> Totals:
    row = await conn.fetchrow(
        f"SELECT {_SUPPLY_COLS} FROM supply WHERE chain = $1 AND block_number <= $2"
        " ORDER BY block_number DESC LIMIT 1",
        chain,
        block,
    )
    return _totals(row)


async def totals_before(conn: Conn, chain: str, when: datetime) -> Totals:
    """Totals after the last block with events whose time is before `when`."""
    row = await conn.fetchrow(
        f"SELECT {_SUPPLY_COLS} FROM supply WHERE chain = $1 AND block_time < $2"
        " ORDER BY block_time DESC, block_number DESC LIMIT 1",
        chain,
        when,
    )
    return _totals(row)


def classes_json(c: SupplyClasses, block: int | None, decimals: int) -> dict[str, Any]:
    """A chain's supply classes at one block (README "Supply classes")."""
    return {
        "block": block,
        "total": amount_json(c.total, decimals),
        "non_circulating": {
            **amount_json(c.non_circulating_total, decimals),
            "by_label": {label: amount_json(raw, decimals) for label, raw in c.non_circulating.items()},
        },
        "frozen": amount_json(c.frozen, decimals),
        "circulating": amount_json(c.circulating, decimals),
    }


@dataclass(frozen=True, slots=True)
class ChainSupply:
    chain: str
    decimals: int
    as_of: AsOf
    head: Totals
    finalized: Totals
    # Supply classes at head and at the finalized block (control_queries.with_classes); None
    # while the chain is not indexed or the classes were not asked for.
    head_classes: SupplyClasses | None = None
    finalized_classes: SupplyClasses | None = None

    def to_json(self) -> dict[str, Any]:
        at = self.as_of
        classes = None
        if self.head_classes is not None and self.finalized_classes is not None:
            classes = {
                "finalized": classes_json(self.finalized_classes, at.finalized_block, self.decimals),
                "head": classes_json(self.head_classes, at.block, self.decimals),
            }
        return {
            "chain": self.chain,
            "decimals": self.decimals,
            "finalized": {"block": at.finalized_block, **amount_json(self.finalized.supply, self.decimals)},
            "head": {
                "block": at.block,
                "block_hash": at.block_hash,
                **amount_json(self.head.supply, self.decimals),
            },
            "classes": classes,
            "as_of": at.to_json(),
        }


async def chain_supply(conn: Conn, chain: ChainInfo, at: AsOf | None = None) -> ChainSupply:
    at = at if at is not None else await as_of(conn, chain.name)
    if at.block is None or at.finalized_block is None:
        return ChainSupply(chain.name, chain.decimals, at, Totals(), Totals())
    head = await totals_at(conn, chain.name, at.block)
    fin = await totals_at(conn, chain.name, at.finalized_block)
    return ChainSupply(chain.name, chain.decimals, at, head, fin)


def scale(raw: int, decimals: int, to: int) -> int:
    return raw * 10 ** (to - decimals)


def positions(chains: Sequence[ChainSupply]) -> dict[str, list[bridges.Position]]:
    """finality (`finalized`, `head`) -> each chain's classes, for indexer.bridges."""
    return {
        "finalized": [bridges.Position(c.chain, c.decimals, c.finalized_classes) for c in chains],
        "head": [bridges.Position(c.chain, c.decimals, c.head_classes) for c in chains],
    }


def _maybe_amount(raw: int | None, decimals: int) -> dict[str, str] | None:
    return None if raw is None else amount_json(raw, decimals)


def bridges_json(topology: bridges.Topology, chains: Sequence[ChainSupply]) -> dict[str, Any]:
    """/api/v1/supply `bridges`: per configured bridge, its chains, allowance and, at the finalized
    block and at head, minted (bridged chains), locked (native chains' bridge_lock) and the gap
    (null while one of its chains is not indexed). README "Bridges"."""
    at = positions(chains)
    by_finality = {f: bridges.backing(topology, ps) for f, ps in at.items()}
    out: dict[str, Any] = {}
    for i, b in enumerate(by_finality["finalized"]):
        dp = b.decimals
        out[b.bridge] = {
            "decimals": dp,
            "native_chains": list(b.native),
            "bridged_chains": list(b.bridged),
            "in_flight_allowance": amount_json(b.allowance, dp),
            **{
                f: {
                    "minted": _maybe_amount(x.minted, dp),
                    "locked": _maybe_amount(x.locked, dp),
                    "gap": _maybe_amount(x.gap, dp),
                }
                for f, x in (("finalized", b), ("head", by_finality["head"][i]))
            },
        }
    return out


def supply_json(
    token: str, chains: Sequence[ChainSupply], topology: bridges.Topology | None = None
) -> dict[str, Any]:
    """The /api/v1/supply body; totals are in the largest precision among the chains. `total`
    gains `circulating` (the global figure, each token once: indexer.bridges) and the body gains
    `bridges` (every configured bridge's backing)."""
    dp = max((c.decimals for c in chains), default=0)
    fin = sum(scale(c.finalized.supply, c.decimals, dp) for c in chains)
    head = sum(scale(c.head.supply, c.decimals, dp) for c in chains)
    circulating = {
        f: _maybe_amount(bridges.global_circulating(ps), dp) for f, ps in positions(chains).items()
    }
    return {
        "token": token,
        "chains": [c.to_json() for c in chains],
        "total": {
            "decimals": dp,
            "finalized": amount_json(fin, dp),
            "head": amount_json(head, dp),
            "circulating": circulating,
        },
        "bridges": bridges_json(topology if topology is not None else bridges.Topology(), chains),
    }


def buckets(since: datetime, until: datetime, interval: timedelta) -> list[datetime]:
    """Bucket starts: multiples of `interval` since the Unix epoch (UTC) covering [since, until)."""
    step = interval // timedelta(microseconds=1)
    first = since - timedelta(microseconds=((since - _EPOCH) // timedelta(microseconds=1)) % step)
    out = []
    t = first
    while t < until:
        out.append(t)
        if len(out) > MAX_BUCKETS:
            break
        t += interval
    return out


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """The chain's state at the end of the bucket starting at `t` (carried forward from the last
    block with events)."""

    t: datetime
    end: datetime
    totals: Totals


@dataclass(frozen=True, slots=True)
class SupplySeries:
    chain: str
    decimals: int
    as_of: AsOf
    points: list[HistoryPoint]

    def to_json(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "decimals": self.decimals,
            "as_of": self.as_of.to_json(),
            "points": [
                {
                    "t": iso(pt.t),
                    "end": iso(pt.end),
                    "block": pt.totals.block_number,
                    "block_time": iso(pt.totals.block_time),
                    **amount_json(pt.totals.supply, self.decimals),
                    "minted": str(pt.totals.minted),
                    "burned": str(pt.totals.burned),
                    "mints": pt.totals.mints,
                    "burns": pt.totals.burns,
                    "transfers": pt.totals.transfers,
                    "finalized": pt.totals.block_number is None
                    or self.as_of.is_final(pt.totals.block_number),
                }
                for pt in self.points
            ],
        }


async def supply_history(
    conn: Conn, chain: ChainInfo, since: datetime, until: datetime, interval: timedelta
) -> SupplySeries:
    """Cumulative supply at the end of each bucket (clipped to `until`), one index probe per bucket."""
    starts = buckets(since, until, interval)
    if len(starts) > MAX_BUCKETS:
        raise ValueError(f"more than {MAX_BUCKETS} buckets")
    ends = [min(t + interval, until) for t in starts]
    at = await as_of(conn, chain.name)
    rows = await conn.fetch(
        f"SELECT b.t, b.e, s.* FROM unnest($2::timestamptz[], $3::timestamptz[]) AS b(t, e)"
        f" LEFT JOIN LATERAL (SELECT {_SUPPLY_COLS} FROM supply WHERE chain = $1 AND block_time < b.e"
        " ORDER BY block_time DESC, block_number DESC LIMIT 1) AS s ON true ORDER BY b.t",
        chain.name,
        starts,
        ends,
    )
    points = [HistoryPoint(r["t"], r["e"], _totals(r)) for r in rows]
    return SupplySeries(chain.name, chain.decimals, at, points)


def history_total(series: list[SupplySeries]) -> dict[str, Any]:
    """Sum of the chains' series, in the largest precision among them."""
    dp = max((s.decimals for s in series), default=0)
    points = []
    for i, pt in enumerate(series[0].points if series else []):
        raw = sum(scale(s.points[i].totals.supply, s.decimals, dp) for s in series)
        final = all(
            s.points[i].totals.block_number is None or s.as_of.is_final(s.points[i].totals.block_number or 0)
            for s in series
        )
        points.append({"t": iso(pt.t), **amount_json(raw, dp), "finalized": final})
    return {"decimals": dp, "points": points}


async def first_block_time(conn: Conn, chains: Sequence[str]) -> datetime | None:
    value: datetime | None = await conn.fetchval(
        "SELECT min(block_time) FROM supply WHERE chain = ANY($1::text[])", list(chains)
    )
    return value


@dataclass(frozen=True, slots=True)
class Flow:
    """Mints and burns between `since` and the indexed head."""

    chain: str
    since: datetime
    minted: int
    burned: int
    mints: int
    burns: int


async def flows(conn: Conn, heads: Mapping[str, int], sinces: Sequence[datetime]) -> list[Flow]:
    """Mints and burns from each of `sinces` to each chain's indexed head (`heads`: chain -> head
    block), in one query: per (chain, since) the cumulative totals at the head less those after
    the last block before `since` (two index probes each). Chains x sinces, in that order."""
    if not heads or not sinces:
        return []
    rows = await conn.fetch(
        "SELECT c.chain, w.since, h.minted - coalesce(b.minted, 0) AS minted,"
        " h.burned - coalesce(b.burned, 0) AS burned, h.mints - coalesce(b.mints, 0) AS mints,"
        " h.burns - coalesce(b.burns, 0) AS burns"
        " FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS c(chain, head, i)"
        " CROSS JOIN unnest($3::timestamptz[]) WITH ORDINALITY AS w(since, j)"
        " LEFT JOIN LATERAL (SELECT minted, burned, mints, burns FROM supply s"
        "   WHERE s.chain = c.chain AND s.block_number <= c.head"
        "   ORDER BY s.block_number DESC LIMIT 1) h ON true"
        " LEFT JOIN LATERAL (SELECT minted, burned, mints, burns FROM supply s"
        "   WHERE s.chain = c.chain AND s.block_time < w.since"
        "   ORDER BY s.block_time DESC, s.block_number DESC LIMIT 1) b ON true"
        " ORDER BY c.i, w.j",
        list(heads),
        list(heads.values()),
        list(sinces),
    )
    return [
        Flow(
            r["chain"],
            r["since"],
            _int(r["minted"]),
            _int(r["burned"]),
            r["mints"] or 0,
            r["burns"] or 0,
        )
        for r in rows
    ]


# ---- the blocks the store knows ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class KnownBlock:
    """A canonical block the store holds with its time: one with token events (`supply`) or
    control events, a block of the unfinalized window (`blocks`) or the cursor's block. Between
    two of them no block has token events, so the supply is the same at every height between."""

    number: int
    hash: str
    time: datetime


# (table, number, hash, time) of every table that names canonical blocks with their times.
_KNOWN_SOURCES = (
    ("supply", "block_number", "block_hash", "block_time"),
    ("control_events", "block_number", "block_hash", "block_time"),
    ("blocks", "number", "hash", "block_time"),
    ("cursors", "indexed_number", "indexed_hash", "indexed_time"),
)


async def known_block(conn: Conn, chain: str, upto: int, when: datetime | None = None) -> KnownBlock | None:
    """The highest known block at or below height `upto` whose time is known and (with `when`) at
    or before `when`; None when there is none. Assumes block times do not decrease with height."""
    parts = []
    for table, n, h, t in _KNOWN_SOURCES:
        cond = f"{t} <= $3" if when is not None else f"{t} IS NOT NULL"
        # By time on `supply` (its (chain, block_time) index), by height elsewhere (small tables).
        order = f"{t} DESC, {n} DESC" if when is not None and table == "supply" else f"{n} DESC"
        parts.append(
            f"(SELECT {n} AS number, {h} AS hash, {t} AS t FROM {table}"
            f" WHERE chain = $1 AND {n} <= $2 AND {cond} ORDER BY {order} LIMIT 1)"
        )
    sql = f"SELECT number, hash, t FROM ({' UNION ALL '.join(parts)}) AS k ORDER BY number DESC LIMIT 1"
    args: tuple[Any, ...] = (chain, upto) if when is None else (chain, upto, when)
    row = await conn.fetchrow(sql, *args)
    return None if row is None else KnownBlock(row["number"], row["hash"], row["t"])


# ---- accounts and reorgs -----------------------------------------------------------------------------
async def balances_of(
    conn: Conn, chain: str, addresses: Sequence[str], block: int | None = None
) -> dict[str, int]:
    """Balances of `addresses` as of `block`, or (None) at the indexed head: the `balances` row
    (complete up to the cursor's balances_as_of) plus the events above that point, which
    backfill folds in later. Each address is one pair of index probes (sender, receiver)."""
    if not addresses:
        return {}
    if block is None:
        base = "coalesce((SELECT raw FROM balances WHERE chain = $1 AND address = a.address), 0)"
        scope = "block_number > (SELECT coalesce((SELECT balances_as_of FROM cursors WHERE chain = $1), -1))"
        args: tuple[Any, ...] = (chain, list(addresses))
    else:
        base, scope = "0", "block_number <= $3"
        args = (chain, list(addresses), block)
    rows = await conn.fetch(
        f"SELECT a.address, {base}"
        " + (SELECT coalesce(sum(amount), 0) FROM events WHERE chain = $1 AND to_addr = a.address"
        f"   AND {scope} AND kind <> 'burn')"
        " - (SELECT coalesce(sum(amount), 0) FROM events WHERE chain = $1 AND from_addr = a.address"
        f"   AND {scope} AND kind <> 'mint') AS raw"
        " FROM unnest($2::text[]) AS a(address)",
        *args,
    )
    return {r["address"]: int(r["raw"]) for r in rows}


async def balance_at(conn: Conn, chain: str, address: str, block: int) -> int:
    return (await balances_of(conn, chain, [address], block))[address]


async def head_balance(conn: Conn, chain: str, address: str) -> int:
    """Balance at the indexed head (see `balances_of`)."""
    return (await balances_of(conn, chain, [address]))[address]


@dataclass(frozen=True, slots=True)
class AccountView:
    chain: str
    decimals: int
    address: str
    as_of: AsOf
    head: int
    finalized: int
    at_block: int | None = None
    at: int | None = None

    def to_json(self, *, show: Show) -> dict[str, Any]:
        a = self.as_of
        body: dict[str, Any] = {
            "chain": self.chain,
            "address": show(self.address),
            "finalized": {"block": a.finalized_block, **amount_json(self.finalized, self.decimals)},
            "head": {"block": a.block, **amount_json(self.head, self.decimals)},
            "as_of": a.to_json(),
        }
        if self.at_block is not None and self.at is not None:
            body["at"] = {
                "block": self.at_block,
                "finality": "finalized" if a.is_final(self.at_block) else "head",
                **amount_json(self.at, self.decimals),
            }
        return body


class NotIndexed(ValueError):
    pass


async def account(conn: Conn, chain: ChainInfo, address: str, block: int | None = None) -> AccountView:
    at = await as_of(conn, chain.name)
    if at.block is None or at.finalized_block is None:
        raise NotIndexed(f"chain {chain.name} has not been indexed yet")
    if block is not None and block > at.block:
        raise NotIndexed(f"block {block} is above the indexed head {at.block}")
    head = await head_balance(conn, chain.name, address)
    fin = await balance_at(conn, chain.name, address, at.finalized_block)
    at_value = None if block is None else await balance_at(conn, chain.name, address, block)
    return AccountView(chain.name, chain.decimals, address, at, head, fin, block, at_value)


async def reorgs(conn: Conn, chain: str | None, limit: int = 100) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT * FROM reorgs WHERE ($1::text IS NULL OR chain = $1) ORDER BY id DESC LIMIT $2",
        chain,
        limit,
    )
    out = []
    for r in rows:
        orphaned, per_family = r["orphaned_blocks"], r["orphaned"]
        out.append(
            {
                "chain": r["chain"],
                "detected_at": iso(r["detected_at"]),
                "depth": r["depth"],
                "ancestor": {"block": r["ancestor_number"], "hash": r["ancestor_hash"]},
                "old_tip": {"block": r["old_tip_number"], "hash": r["old_tip_hash"]},
                "new_tip": {"block": r["new_tip_number"], "hash": r["new_tip_hash"]},
                "orphaned_events": r["orphaned_events"],
                "orphaned_blocks": orjson.loads(orphaned) if isinstance(orphaned, str) else orphaned,
                "orphaned": orjson.loads(per_family) if isinstance(per_family, str) else per_family,
            }
        )
    return out
