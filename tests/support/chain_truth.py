"""Ground truth read straight from a chain, decoded here independently of the indexer's code."""

from __future__ import annotations

from typing import Any

import asyncpg

TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
ZERO = "0x" + "0" * 40

EventKey = tuple[str, str, int, str, str, str, int]  # block_hash, tx, log_index, kind, from, to, amount


async def chain_transfer_events(rpc: Any, token: str, to_block: int) -> set[EventKey]:
    """Every Transfer log of `token` in blocks 0..to_block as the chain itself reports them."""
    logs = await rpc.rpc(
        "eth_getLogs",
        [{"fromBlock": "0x0", "toBlock": hex(to_block), "address": token, "topics": [TRANSFER]}],
    )
    out: set[EventKey] = set()
    for lg in logs:
        frm = "0x" + lg["topics"][1][-40:]
        to = "0x" + lg["topics"][2][-40:]
        kind = "mint" if frm == ZERO else "burn" if to == ZERO else "transfer"
        out.add(
            (
                lg["blockHash"],
                lg["transactionHash"],
                int(lg["logIndex"], 16),
                kind,
                frm,
                to,
                int(lg["data"], 16),
            )
        )
    return out


async def indexed_events(pool: asyncpg.Pool, chain: str, to_block: int | None = None) -> list[EventKey]:
    rows = await pool.fetch(
        "SELECT block_hash, tx_hash, log_index, kind, from_addr, to_addr, amount FROM events"
        " WHERE chain = $1 AND ($2::bigint IS NULL OR block_number <= $2)",
        chain,
        to_block,
    )
    return [
        (
            r["block_hash"],
            r["tx_hash"],
            r["log_index"],
            r["kind"],
            r["from_addr"],
            r["to_addr"],
            int(r["amount"]),
        )
        for r in rows
    ]


async def assert_index_exact(
    pool: asyncpg.Pool, chain: str, token: Any, holders: list[str], upto: int
) -> None:
    """The index up to `upto` is exactly the chain's: every Transfer log once, the supply equal to
    totalSupply(), each holder's indexed balance equal to balanceOf() — all at block `upto`."""
    from indexer.store.store import Store

    got = await indexed_events(pool, chain, upto)
    assert len(got) == len(set(got)), "an event was stored twice"
    assert set(got) == await chain_transfer_events(token.rpc, token.address, upto)
    store = Store(pool)
    assert (await store.supply_at(chain, upto)).supply == await token.total_supply(upto)
    for h in holders:
        assert await store.balance(chain, h.lower(), upto) == await token.balance_of(h, upto), h
