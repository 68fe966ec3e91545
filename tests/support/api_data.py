"""Synthetic token history written through the real write path (`Store.commit`), with the expected
answers computed independently here: for API, CLI and page tests that do not need a live chain."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from indexer.config import Config
from indexer.model import BlockRef, EventKind, TokenEvent
from indexer.store.store import Batch, Store

ZERO = "0x" + "0" * 40
TOKEN = "0x8d0D000Ee44948FC98c9B98A4FA4921476f08B0d"
SOL_MINT = "So11111111111111111111111111111111111111112"
# Midnight UTC two days ago: recent enough for the page's 7-day windows, whole days for buckets.
T0 = (int(time.time()) // 86400 - 2) * 86400
BLOCK_SECONDS = 600


def config(dsn: str, tmp: Any, chain: str = "devnet", *, with_solana: bool = True) -> Config:
    return Config.model_validate(config_dict(dsn, tmp, chain, with_solana=with_solana))


def config_dict(dsn: str, tmp: Any, chain: str = "devnet", *, with_solana: bool = True) -> dict[str, Any]:
    chains: list[dict[str, Any]] = [
        {"name": chain, "kind": "evm", "rpc": ["http://127.0.0.1:9"], "token": TOKEN, "decimals": 18}
    ]
    if with_solana:
        chains.append({"name": "sol", "kind": "solana", "rpc": ["http://127.0.0.1:9"], "mint": SOL_MINT})
    return {"database": {"dsn": dsn}, "data_dir": str(tmp), "chains": chains}


def _hash(tag: str, n: int) -> str:
    return "0x" + f"{tag}{n:x}".rjust(64, "0")


@dataclass
class Synthetic:
    chain: str
    events: list[TokenEvent] = field(default_factory=list)
    block_times: dict[int, int] = field(default_factory=dict)
    holders: list[str] = field(default_factory=list)
    head: int = 0
    finalized: int = 0

    def supply_at(self, block: int) -> int:
        s = 0
        for e in self.events:
            if e.block_number <= block:
                s += e.amount if e.kind == EventKind.MINT else -e.amount if e.kind == EventKind.BURN else 0
        return s

    def balance_at(self, addr: str, block: int) -> int:
        b: dict[str, int] = defaultdict(int)
        for e in self.events:
            if e.block_number > block:
                continue
            if e.kind != EventKind.MINT:
                b[e.from_addr or ""] -= e.amount
            if e.kind != EventKind.BURN:
                b[e.to_addr or ""] += e.amount
        return b[addr]

    def keys(self) -> set[tuple[int, int, str]]:
        return {(e.block_number, e.log_index, e.tx_hash) for e in self.events}


async def load(
    pool: asyncpg.Pool, chain: str = "devnet", *, blocks: int = 120, seed: int = 5, finalized_lag: int = 6
) -> Synthetic:
    """`blocks` blocks ten minutes apart, each with 0-4 events among 8 holders; committed in batches
    of 10 blocks; finalized = head - finalized_lag."""
    rng = random.Random(seed)
    store = Store(pool)
    await store.register_chain(chain, "evm", TOKEN.lower(), 18)
    holders = [("0x" + f"{i + 1:02x}" * 20) for i in range(8)]
    bal: dict[str, int] = defaultdict(int)
    syn = Synthetic(chain, holders=holders)
    prev: BlockRef | None = None
    parent = _hash("f", 0)
    refs: list[BlockRef] = []
    evs: list[TokenEvent] = []
    for n in range(1, blocks + 1):
        ts = T0 + n * BLOCK_SECONDS
        ref = BlockRef(n, _hash("b", n), parent, ts)
        parent = ref.hash
        syn.block_times[n] = ts
        for li in range(rng.randint(0, 4)):
            tx = _hash("a", n * 16 + li // 2)  # two events per tx
            who = rng.choice(holders)
            r = rng.random()
            if r < 0.4 or bal[who] == 0:
                amt = rng.randint(1, 10**6) * 10**15
                ev = TokenEvent(chain, n, ref.hash, tx, li, EventKind.MINT, ZERO, who, amt, ts)
                bal[who] += amt
            elif r < 0.55:
                amt = rng.randint(1, bal[who])
                ev = TokenEvent(chain, n, ref.hash, tx, li, EventKind.BURN, who, ZERO, amt, ts)
                bal[who] -= amt
            else:
                to = rng.choice(holders)
                amt = rng.randint(1, bal[who])
                ev = TokenEvent(chain, n, ref.hash, tx, li, EventKind.TRANSFER, who, to, amt, ts)
                bal[who] -= amt
                bal[to] += amt
            evs.append(ev)
        refs.append(ref)
        if n % 10 == 0 or n == blocks:
            cursor = refs[-1]
            await store.commit(Batch(chain, prev, cursor, max(-1, n - finalized_lag), events=evs, refs=refs))
            syn.events.extend(evs)
            prev, refs, evs = cursor, [], []
    syn.head = blocks
    syn.finalized = blocks - finalized_lag
    return syn
