"""The one registry of block-scoped tables: every table whose rows belong to one block of one
chain. A reorg's rollback (`rollback_above`, run by `Store._commit` in the batch's transaction)
walks this list, so a new family's table cannot be forgotten: add it here. A test compares the
list with the schema (every table with a `chain` column is either here or in `CHAIN_TABLES`).

Each family's records live in one table (`FAMILY_TABLES`); the rollback counts orphaned rows per
family for the reorg record. Rows folded into other tables are undone exactly: the transfers
family's deleted rows give back what `balances` holds of them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from indexer.model import ControlEvent, EventKind, Family
from indexer.store.db import Conn


@dataclass
class Undo:
    """What a rollback has to take back out of the tables its rows were folded into."""

    balances_as_of: int  # rows at or below this height are in `balances`
    deltas: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass(frozen=True, slots=True)
class BlockTable:
    table: str
    block_column: str
    family: Family | None = None  # the event family whose records it holds
    returning: str = ""  # columns the undo needs of each deleted row
    undo: Callable[[Sequence[Any], Undo], None] | None = None


def apply_delta(
    deltas: dict[str, int], kind: str, from_addr: str | None, to_addr: str | None, amount: int
) -> None:
    """Balance effect of one transfers-family row (negative `amount` undoes it). The zero address /
    missing side of a mint or burn holds no balance."""
    if kind != EventKind.MINT and from_addr is not None:
        deltas[from_addr] -= amount
    if kind != EventKind.BURN and to_addr is not None:
        deltas[to_addr] += amount


def _undo_balances(rows: Sequence[Any], undo: Undo) -> None:
    for r in rows:  # only rows already folded into `balances` are taken out of it
        if r["block_number"] <= undo.balances_as_of:
            apply_delta(undo.deltas, r["kind"], r["from_addr"], r["to_addr"], -int(r["amount"]))


EVENTS = BlockTable(
    "events",
    "block_number",
    Family.TRANSFERS,
    returning="block_number, kind, from_addr, to_addr, amount",
    undo=_undo_balances,
)
CONTROL_EVENTS = BlockTable("control_events", "block_number", Family.CONTROLS)
SUPPLY = BlockTable("supply", "block_number")  # cumulative transfers totals, a row per block
BLOCKS = BlockTable("blocks", "number")  # the reorg window's block refs

BLOCK_TABLES: tuple[BlockTable, ...] = (EVENTS, CONTROL_EVENTS, SUPPLY, BLOCKS)
FAMILY_TABLES: dict[Family, BlockTable] = {t.family: t for t in BLOCK_TABLES if t.family is not None}
# Tables with a `chain` column that are not block-scoped (nothing in them belongs to one block).
CHAIN_TABLES = ("chains", "cursors", "balances", "reorgs", "coverage")
assert set(FAMILY_TABLES) == set(Family), "every family needs its table"


async def rollback_above(conn: Conn, chain: str, number: int, undo: Undo) -> dict[Family, int]:
    """Delete every block-scoped row of `chain` above `number`; returns orphaned rows per family
    and leaves in `undo` what must be taken out of the folded tables."""
    orphaned: dict[Family, int] = {}
    for t in BLOCK_TABLES:
        sql = f"DELETE FROM {t.table} WHERE chain = $1 AND {t.block_column} > $2"
        if t.returning:
            rows = await conn.fetch(f"{sql} RETURNING {t.returning}", chain, number)
            count = len(rows)
            if t.undo is not None:
                t.undo(rows, undo)
        else:
            status = await conn.execute(sql, chain, number)
            count = int(status.rsplit(" ", 1)[-1])
        if t.family is not None:
            orphaned[t.family] = count
    undo.balances_as_of = min(undo.balances_as_of, number)
    return orphaned


# ---- the controls family's rows ---------------------------------------------------------------
CONTROL_COLUMNS = (
    "chain",
    "block_number",
    "block_hash",
    "tx_hash",
    "log_index",
    "kind",
    "event",
    "address",
    "subject",
    "previous",
    "actor",
    "role",
    "amount",
    "block_unix",
)
_CONTROL_TYPES = (
    "text",
    "bigint",
    "text",
    "text",
    "bigint",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "numeric",
    "bigint",
)


def control_row(c: ControlEvent) -> tuple[Any, ...]:
    return (
        c.chain,
        c.block_number,
        c.block_hash,
        c.tx_hash,
        c.log_index,
        c.kind.value,
        c.event,
        c.address,
        c.subject,
        c.previous,
        c.actor,
        c.role,
        c.amount,
        c.timestamp,
    )


async def insert_controls(
    conn: Conn, controls: Sequence[ControlEvent], *, skip_existing: bool = False
) -> int:
    """Insert control events (one statement; they are few); with `skip_existing`, rows whose
    identity is already stored are left alone (a fill re-reading heights). Returns rows added."""
    if not controls:
        return 0
    columns = list(zip(*map(control_row, controls), strict=True))
    args = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_CONTROL_TYPES))
    status = await conn.execute(
        f"INSERT INTO control_events ({', '.join(CONTROL_COLUMNS)}) SELECT * FROM unnest({args})"
        + (" ON CONFLICT DO NOTHING" if skip_existing else ""),
        *map(list, columns),
    )
    return int(status.rsplit(" ", 1)[-1])
