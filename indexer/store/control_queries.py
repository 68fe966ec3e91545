"""Read-only queries of the controls family, shared by the HTTP API, the `query` CLI, the page and
the daemon's control metrics. Like `queries`, every read runs in the caller's snapshot; pagination
uses the same keyset and cursor codec as transfers (`queries.keyset`, `encode_cursor`), with a
fingerprint of its own so a transfers cursor is refused here and the other way round.

Contract state is folded from the stored events (`indexer.controls.fold`) at the head and at the
finalized block, and says from which block its family's coverage starts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from indexer.controls import ContractState, ControlState, fold
from indexer.model import ControlEvent, ControlKind, Family
from indexer.store import queries as q
from indexer.store.db import Conn
from indexer.store.pagination import CursorCodec, IntField, Layout, TextField
from indexer.supply_classes import SupplyClasses, classify, resolve
from indexer.units import amount_json

MAX_FROZEN_LISTED = 100  # frozen accounts listed per state (largest balances first); count and sum cover all
_COLS = (
    "block_number, block_hash, tx_hash, log_index, kind, event, address, subject, previous, actor, role,"
    " amount, block_unix, block_time"
)


def _control(chain: str, r: Any) -> ControlEvent:
    return ControlEvent(
        chain,
        r["block_number"],
        r["block_hash"],
        r["tx_hash"],
        r["log_index"],
        ControlKind(r["kind"]),
        r["event"],
        r["address"],
        r["subject"],
        r["previous"],
        r["actor"],
        r["role"],
        None if r["amount"] is None else int(r["amount"]),
        r["block_unix"],
    )


def event_json(
    e: ControlEvent, at: q.AsOf, show: q.Show, label: str | None = None, decimals: int | None = None
) -> dict[str, Any]:
    """A control event as the API gives it; `amount` as base units (and tokens when the event's
    amount is in the token's units: destroyed frozen funds)."""
    amount: dict[str, Any] | None = None
    if e.amount is not None:
        tokens = decimals is not None and e.kind is ControlKind.FROZEN_FUNDS_DESTROYED
        amount = (
            amount_json(e.amount, decimals) if tokens and decimals is not None else {"raw": str(e.amount)}
        )
    return {
        "chain": e.chain,
        "block_number": e.block_number,
        "block_hash": e.block_hash,
        "block_time": q.iso(block_time(e.timestamp)),
        "tx_hash": e.tx_hash,
        "log_index": e.log_index,
        "kind": e.kind.value,
        "event": e.event,
        "address": show(e.address),
        "contract": label,
        "subject": _opt(show, e.subject),
        "previous": _opt(show, e.previous),
        "actor": _opt(show, e.actor),
        "role": e.role,
        "amount": amount,
        "finalized": at.is_final(e.block_number),
    }


def _opt(show: q.Show, value: str | None) -> str | None:
    return None if value is None else show(value)


def block_time(unix: int) -> datetime | None:
    return datetime.fromtimestamp(unix, UTC) if unix else None


async def events_upto(conn: Conn, chain: str, block: int) -> list[ControlEvent]:
    """Every stored control event of `chain` at or below `block`, in chain order."""
    rows = await conn.fetch(
        f"SELECT {_COLS} FROM control_events WHERE chain = $1 AND block_number <= $2"
        " ORDER BY block_number, log_index, tx_hash",
        chain,
        block,
    )
    return [_control(chain, r) for r in rows]


async def kind_stats(conn: Conn, chain: str, block: int) -> dict[ControlKind, tuple[int, int]]:
    """(count, newest block time) per kind at or below `block`."""
    rows = await conn.fetch(
        "SELECT kind, count(*) AS n, max(block_unix) AS t FROM control_events"
        " WHERE chain = $1 AND block_number <= $2 GROUP BY kind",
        chain,
        block,
    )
    return {ControlKind(r["kind"]): (int(r["n"]), int(r["t"] or 0)) for r in rows}


# ---- contract state -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StateAt:
    """The folded state at `block` with the frozen accounts' balances there."""

    block: int
    state: ControlState
    frozen_balances: dict[str, int]

    @property
    def frozen_raw(self) -> int:
        return sum(self.frozen_balances.values())

    def to_json(self, decimals: int, show: q.Show) -> dict[str, Any]:
        t = self.state.token
        listed = sorted(self.frozen_balances.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_FROZEN_LISTED]
        last = self.state.last
        return {
            "block": self.block,
            **_contract_json(t, show),
            "frozen": {
                "count": len(t.frozen),
                **amount_json(self.frozen_raw, decimals),
                "accounts": [{"address": show(a), **amount_json(v, decimals)} for a, v in listed],
            },
            "minters": [{"minter": show(m), "allowance": str(a)} for m, a in sorted(t.minters.items())],
            "roles": [{"role": r, "account": show(a)} for r, a in sorted(t.roles)],
            "watched": [
                {"address": show(c.address), "label": c.label, **_contract_json(c, show)}
                for c in self.state.contracts[1:]
            ],
            "last_change": None
            if last is None
            else {
                "block": last.block_number,
                "block_time": q.iso(block_time(last.timestamp)),
                "tx_hash": last.tx_hash,
                "kind": last.kind.value,
                "event": last.event,
                "address": show(last.address),
            },
            "events": sum(c.events for c in self.state.contracts),
        }


# The holder fields of a contract's state, as the API gives them (an address, or null: never set).
HOLDER_FIELDS = (
    "owner",
    "pending_owner",
    "implementation",
    "admin",
    "beacon",
    "master_minter",
    "pauser",
    "blacklister",
    "mint_authority",
    "freeze_authority",
)


def _contract_json(c: ContractState, show: q.Show) -> dict[str, Any]:
    return {**{f: _opt(show, getattr(c, f)) for f in HOLDER_FIELDS}, "paused": c.paused}


async def state_at(
    conn: Conn, chain: str, contracts: Sequence[tuple[str, str]], block: int, head: bool
) -> StateAt:
    """The state at `block` (`head`: the indexed head, whose balances come from `balances`)."""
    state = fold(await events_upto(conn, chain, block), contracts)
    frozen = sorted(state.token.frozen)
    balances = await q.balances_of(conn, chain, frozen, None if head else block)
    return StateAt(block, state, balances)


# ---- supply classes -----------------------------------------------------------------------------
async def classes_at(
    conn: Conn,
    chain: str,
    contracts: Sequence[tuple[str, str]],
    entries: Sequence[tuple[str, str]],
    total: int,
    block: int,
    head: bool,
) -> SupplyClasses:
    """The supply classes at `block` (`head`: the indexed head, balances from `balances`): the
    owner and the frozen accounts from the control state folded there (none when the chain
    decodes no controls), the balances of those and of the configured `entries` (address or
    `owner`, label) read in the same snapshot."""
    owner: str | None = None
    frozen: list[str] = []
    if contracts:
        state = fold(await events_upto(conn, chain, block), contracts)
        owner, frozen = state.token.owner, sorted(state.token.frozen)
    labelled = resolve(entries, owner)
    addresses = sorted({a for a, _ in labelled} | set(frozen))
    balances = await q.balances_of(conn, chain, addresses, None if head else block)
    labels = [label for _, label in entries]
    return classify(total, labelled, balances, {a: balances[a] for a in frozen}, labels)


async def with_classes(
    conn: Conn,
    supply: q.ChainSupply,
    contracts: Sequence[tuple[str, str, Sequence[str]]],
    entries: Sequence[tuple[str, str]],
) -> q.ChainSupply:
    """`supply` with its classes at head and at the finalized block (unchanged while the chain
    is not indexed). `contracts`: the chain's control contracts (`control_contracts()`)."""
    at = supply.as_of
    if at.block is None or at.finalized_block is None:
        return supply
    pairs = [(a, label) for a, label, _ in contracts]
    head = await classes_at(conn, supply.chain, pairs, entries, supply.head.supply, at.block, head=True)
    fin = await classes_at(
        conn, supply.chain, pairs, entries, supply.finalized.supply, at.finalized_block, head=False
    )
    return replace(supply, head_classes=head, finalized_classes=fin)


@dataclass(frozen=True, slots=True)
class ChainControls:
    """/api/v1/controls for one chain: the state at head and at the finalized block, and from
    which block the controls family's coverage starts (`complete`: from the chain's start)."""

    chain: str
    decimals: int
    as_of: q.AsOf
    contracts: Sequence[tuple[str, str, Sequence[str]]]  # (address, label, families)
    coverage: q.Coverage | None
    start: int
    head: StateAt | None
    finalized: StateAt | None

    @property
    def enabled(self) -> bool:
        """Controls configured and recording (coverage started): what the API and page show."""
        return bool(self.contracts) and self.coverage is not None

    @property
    def complete(self) -> bool:
        return self.coverage is not None and self.coverage.from_block <= self.start

    def to_json(self, check: dict[str, Any] | None = None, *, show: q.Show) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "enabled": self.enabled,
            "contracts": [
                {"address": show(a), "label": lb, "families": list(f)} for a, lb, f in self.contracts
            ],
            "coverage": None
            if self.coverage is None
            else {"from_block": self.coverage.from_block, "complete": self.complete},
            "as_of": self.as_of.to_json(),
            "head": None if self.head is None else self.head.to_json(self.decimals, show),
            "finalized": None if self.finalized is None else self.finalized.to_json(self.decimals, show),
            "check": check,
        }


async def chain_controls(
    conn: Conn,
    chain: str,
    decimals: int,
    start: int,
    contracts: Sequence[tuple[str, str, Sequence[str]]],
    at: q.AsOf | None = None,
) -> ChainControls:
    at = at if at is not None else await q.as_of(conn, chain)
    cov = (await q.coverage(conn, chain)).get(Family.CONTROLS)
    if not contracts or cov is None or at.block is None or at.finalized_block is None:
        return ChainControls(chain, decimals, at, contracts, cov, start, None, None)
    pairs = [(a, label) for a, label, _ in contracts]
    head = await state_at(conn, chain, pairs, at.block, head=True)
    fin = await state_at(conn, chain, pairs, at.finalized_block, head=False)
    return ChainControls(chain, decimals, at, contracts, cov, start, head, fin)


# ---- the event list -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ControlFilter:
    chain: str
    kinds: tuple[str, ...] = ()  # empty: every kind
    address: str | None = None  # the emitting contract or the account named (subject, previous, actor)
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    order: q.Order = "desc"

    def fingerprint(self) -> str:
        key = [
            "control-events",
            self.chain,
            sorted(self.kinds),
            self.address,
            q.iso(self.since),
            q.iso(self.until),
        ]
        return hashlib.sha256(orjson.dumps([*key, self.order])).hexdigest()[:16]


# The control-events cursor: the transfers position, in a scope of its own (a cursor of one route
# is refused by the other).
# Its log_index is a bigint (Solana: the transaction's place in the block times 100000 plus the
# instruction path, store migration 018).
POSITION = Layout(
    "control-events",
    q.Position,
    (IntField("block_number"), IntField("log_index"), TextField("tx_hash", 128)),
)


@dataclass(frozen=True, slots=True)
class ControlPage:
    filter: ControlFilter
    as_of: q.AsOf
    events: list[ControlEvent]
    limit: int
    next: q.Position | None  # the last row's position when there are more rows
    coverage: q.Coverage | None

    def to_json(
        self, labels: dict[str, str], decimals: int, cursors: CursorCodec, *, show: q.Show
    ) -> dict[str, Any]:
        next_cursor = (
            None if self.next is None else cursors.encode(POSITION, self.filter.fingerprint(), self.next)
        )
        return {
            "chain": self.filter.chain,
            "order": self.filter.order,
            "limit": self.limit,
            "as_of": self.as_of.to_json(),
            "coverage": None if self.coverage is None else {"from_block": self.coverage.from_block},
            "events": [event_json(e, self.as_of, show, labels.get(e.address), decimals) for e in self.events],
            "next_cursor": next_cursor,
        }


async def control_events(
    conn: Conn, f: ControlFilter, *, limit: int = q.DEFAULT_PAGE, after: q.Position | None = None
) -> ControlPage:
    """One page of `f`'s control events in (block_number, log_index, tx_hash) order, after `after`."""
    if not 1 <= limit <= q.MAX_PAGE:
        raise ValueError(f"limit must be 1..{q.MAX_PAGE}")
    at = await q.as_of(conn, f.chain)
    cov = (await q.coverage(conn, f.chain)).get(Family.CONTROLS)
    if at.block is None:
        return ControlPage(f, at, [], limit, None, cov)
    p = q.SqlArgs(f.chain)
    conds = ["chain = $1", f"block_number <= {p(at.block)}"]
    if f.kinds:
        conds.append(f"kind = ANY({p(sorted(f.kinds))}::text[])")
    if f.address is not None:
        a = p(f.address)
        conds.append(f"(address = {a} OR subject = {a} OR previous = {a} OR actor = {a})")
    if f.since is not None:
        conds.append(f"block_time >= {p(f.since)}")
    if f.until is not None:
        conds.append(f"block_time < {p(f.until)}")
    order_by = q.keyset(p, conds, after, f.order)
    rows = await conn.fetch(
        f"SELECT {_COLS} FROM control_events WHERE {' AND '.join(conds)} {order_by} LIMIT {p(limit + 1)}",
        *p.values,
    )
    events = [_control(f.chain, r) for r in rows[:limit]]
    return ControlPage(f, at, events, limit, q.next_position(rows, limit), cov)
