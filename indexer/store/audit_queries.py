"""Read queries of the background audits (`indexer.sync.audit`): which accounts to check, what the
index says they hold at a finalized block (two ways), and the stored events of a range."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from indexer.audit import EventKey, event_key
from indexer.model import BlockRef
from indexer.store.db import Conn


@dataclass(frozen=True, slots=True)
class IndexedBalance:
    """An account's balance at a block as the index holds it: summed from its events (what the
    API serves) and from the folded `balances` row adjusted to that block (what head reads use)."""

    from_events: int
    from_balances: int


async def final_anchor(conn: Conn, chain: str) -> BlockRef | None:
    """The highest kept block at or below the index's finalized height (None before any)."""
    row = await conn.fetchrow(
        "SELECT b.number, b.hash, b.parent_hash FROM blocks b JOIN cursors c ON c.chain = b.chain"
        " WHERE b.chain = $1 AND b.number <= c.finalized_number ORDER BY b.number DESC LIMIT 1",
        chain,
    )
    return None if row is None else BlockRef(row["number"], row["hash"], row["parent_hash"])


async def finalized_height(conn: Conn, chain: str) -> int:
    got = await conn.fetchval("SELECT finalized_number FROM cursors WHERE chain = $1", chain)
    return -1 if got is None else int(got)


async def largest_holders(conn: Conn, chain: str, limit: int, offset: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT address FROM balances WHERE chain = $1 ORDER BY raw DESC, address LIMIT $2 OFFSET $3",
        chain,
        limit,
        offset,
    )
    return [r["address"] for r in rows]


async def holders_from(conn: Conn, chain: str, key: str, limit: int) -> list[str]:
    """Up to `limit` holders from `key` on in address order, wrapping to the first ones."""
    rows = await conn.fetch(
        "(SELECT address FROM balances WHERE chain = $1 AND address >= $2 ORDER BY address LIMIT $3)"
        " UNION ALL (SELECT address FROM balances WHERE chain = $1 AND address < $2 ORDER BY address LIMIT $3)",
        chain,
        key,
        limit,
    )
    return [r["address"] for r in rows][:limit]


async def holder_count(conn: Conn, chain: str) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM balances WHERE chain = $1", chain))


async def indexed_balances(
    conn: Conn, chain: str, addresses: Sequence[str], block: int
) -> dict[str, IndexedBalance]:
    rows = await conn.fetch(
        "WITH a AS (SELECT DISTINCT unnest($2::text[]) AS address),"
        " c AS (SELECT coalesce((SELECT balances_as_of FROM cursors WHERE chain = $1), -1) AS upto)"
        " SELECT a.address,"
        " (SELECT coalesce(sum(amount), 0) FROM events WHERE chain = $1 AND to_addr = a.address"
        "   AND block_number <= $3 AND kind <> 'burn')"
        " - (SELECT coalesce(sum(amount), 0) FROM events WHERE chain = $1 AND from_addr = a.address"
        "   AND block_number <= $3 AND kind <> 'mint') AS from_events,"
        " coalesce((SELECT raw FROM balances WHERE chain = $1 AND address = a.address), 0)"
        " + CASE WHEN c.upto < $3 THEN 1 ELSE -1 END * ("
        "   (SELECT coalesce(sum(amount), 0) FROM events WHERE chain = $1 AND to_addr = a.address"
        "     AND block_number > least(c.upto, $3) AND block_number <= greatest(c.upto, $3) AND kind <> 'burn')"
        "   - (SELECT coalesce(sum(amount), 0) FROM events WHERE chain = $1 AND from_addr = a.address"
        "     AND block_number > least(c.upto, $3) AND block_number <= greatest(c.upto, $3) AND kind <> 'mint')"
        " ) AS from_balances"
        " FROM a, c",
        chain,
        list(addresses),
        block,
    )
    return {r["address"]: IndexedBalance(int(r["from_events"]), int(r["from_balances"])) for r in rows}


async def range_event_keys(conn: Conn, chain: str, start: int, end: int) -> list[EventKey]:
    rows = await conn.fetch(
        "SELECT block_number, block_hash, tx_hash, log_index, kind, from_addr, to_addr, amount FROM events"
        " WHERE chain = $1 AND block_number >= $2 AND block_number <= $3",
        chain,
        start,
        end,
    )
    return [event_key(*r) for r in rows]
