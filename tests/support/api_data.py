"""Synthetic token history written through the real write path (`Store.commit`), with the expected
answers computed independently here: for API, CLI and page tests that do not need a live chain."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from indexer.config import Config, EvmChainConfig
from indexer.model import BlockRef, ControlEvent, ControlKind, EventKind, TokenEvent
from indexer.store.store import Batch, Store

ZERO = "0x" + "0" * 40
TOKEN = "0x8d0D000Ee44948FC98c9B98A4FA4921476f08B0d"
SOL_MINT = "So11111111111111111111111111111111111111112"
# Midnight UTC two days ago: recent enough for the page's 7-day windows, whole days for buckets.
T0 = (int(time.time()) // 86400 - 2) * 86400
BLOCK_SECONDS = 600


def config(dsn: str, tmp: Any, chain: str = "devnet", *, with_solana: bool = True) -> Config:
    return Config.model_validate(config_dict(dsn, tmp, chain, with_solana=with_solana))


PROXY_ADMIN = "0x" + "ad" * 20
# The owner is holder 2 (USD1 mints to its owner), so the `owner` supply class holds tokens.
OWNER, NEW_OWNER, IMPL = "0x" + "02" * 20, "0x" + "1e" * 20, "0x" + "1f" * 20


def evm_chain(chain: str) -> dict[str, Any]:
    """The synthetic EVM chain: a USD1-profile token whose ProxyAdmin is watched."""
    return {
        "name": chain,
        "kind": "evm",
        "rpc": ["http://127.0.0.1:9"],
        "token": TOKEN,
        "decimals": 18,
        "profile": "usd1",
        "watch": [{"address": PROXY_ADMIN, "label": "proxy_admin", "controls": ["ownable"]}],
        "non_circulating": [{"address": a, "label": label} for a, label in NON_CIRCULATING],
        "bridge": "ccip",  # its bridge_lock account locks for ccip (README "Bridges")
    }


# Supply classes: holder 4 (frozen from block 70) is also labelled (the label wins), holder 5 is
# frozen at head only; `owner` follows the control state (OWNER from block 3).
NON_CIRCULATING = [("0x" + "04" * 20, "treasury"), ("owner", "issuer"), ("0x" + "01" * 20, "bridge_lock")]


def config_dict(dsn: str, tmp: Any, chain: str = "devnet", *, with_solana: bool = True) -> dict[str, Any]:
    chains: list[dict[str, Any]] = [evm_chain(chain)]
    if with_solana:  # bridged by ccip; never indexed here, so the ccip gap is null with it
        chains.append(
            {
                "name": "sol",
                "kind": "solana",
                "rpc": ["http://127.0.0.1:9"],
                "mint": SOL_MINT,
                "role": "bridged",
                "bridge": "ccip",
            }
        )
    bridges = [{"name": "ccip", "in_flight_allowance_tokens": "0.5"}]
    return {"database": {"dsn": dsn}, "data_dir": str(tmp), "chains": chains, "bridges": bridges}


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

    def classes_at(self, block: int) -> dict[str, Any]:
        """The supply classes at `block`, computed from the events and the control script alone."""
        owner = self.last_subject(ControlKind.OWNERSHIP_TRANSFERRED, block)
        labelled = [(owner if a == "owner" else a, label) for a, label in NON_CIRCULATING]
        by_label: dict[str, int] = dict.fromkeys((label for _, label in labelled), 0)
        for a, label in labelled:
            if a is not None:
                by_label[label] += self.balance_at(a, block)
        frozen = sum(self.balance_at(a, block) for a in self.frozen_at(block) - {a for a, _ in labelled})
        total = self.supply_at(block)
        return {
            "total": total,
            "by_label": dict(by_label),
            "frozen": frozen,
            "circulating": total - frozen - sum(by_label.values()),
        }

    def keys(self) -> set[tuple[int, int, str]]:
        return {(e.block_number, e.log_index, e.tx_hash) for e in self.events}

    controls: list[ControlEvent] = field(default_factory=list)

    def frozen_at(self, block: int) -> set[str]:
        out: set[str] = set()
        for c in self.controls:
            if c.block_number <= block and c.address == TOKEN.lower():
                if c.kind is ControlKind.FROZEN:
                    out.add(c.subject or "")
                elif c.kind is ControlKind.UNFROZEN:
                    out.discard(c.subject or "")
        return out

    def last_subject(self, kind: ControlKind, block: int, address: str = TOKEN.lower()) -> str | None:
        hits = [
            c for c in self.controls if c.kind is kind and c.block_number <= block and c.address == address
        ]
        return hits[-1].subject if hits else None


# The synthetic control history: (block, kind, contract, subject). Block 115 and 117 lie above the
# finalized height (114), so head and finalized state differ.
CONTROL_SCRIPT: list[tuple[int, ControlKind, str, str | None]] = [
    (3, ControlKind.UPGRADED, TOKEN.lower(), IMPL),
    (3, ControlKind.OWNERSHIP_TRANSFERRED, TOKEN.lower(), OWNER),
    (3, ControlKind.ADMIN_CHANGED, TOKEN.lower(), PROXY_ADMIN),
    (3, ControlKind.OWNERSHIP_TRANSFERRED, PROXY_ADMIN, OWNER),
    (20, ControlKind.FROZEN, TOKEN.lower(), "0x" + "03" * 20),
    (50, ControlKind.PAUSED, TOKEN.lower(), None),
    (60, ControlKind.UNPAUSED, TOKEN.lower(), None),
    (70, ControlKind.FROZEN, TOKEN.lower(), "0x" + "04" * 20),
    (80, ControlKind.UNFROZEN, TOKEN.lower(), "0x" + "03" * 20),
    (115, ControlKind.FROZEN, TOKEN.lower(), "0x" + "05" * 20),
    (117, ControlKind.OWNERSHIP_TRANSFER_STARTED, TOKEN.lower(), NEW_OWNER),
]


async def load(
    pool: asyncpg.Pool, chain: str = "devnet", *, blocks: int = 120, seed: int = 5, finalized_lag: int = 6
) -> Synthetic:
    """`blocks` blocks ten minutes apart, each with 0-4 events among 8 holders; committed in batches
    of 10 blocks; finalized = head - finalized_lag."""
    rng = random.Random(seed)
    store = Store(pool)
    families = EvmChainConfig.model_validate(evm_chain(chain)).family_configs()
    await store.register_chain(chain, "evm", TOKEN.lower(), 18, families=families)
    holders = [("0x" + f"{i + 1:02x}" * 20) for i in range(8)]
    bal: dict[str, int] = defaultdict(int)
    syn = Synthetic(chain, holders=holders)
    prev: BlockRef | None = None
    parent = _hash("f", 0)
    refs: list[BlockRef] = []
    evs: list[TokenEvent] = []
    ctls: list[ControlEvent] = []
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
        for i, (cn, kind, address, subject) in enumerate(CONTROL_SCRIPT):
            if cn == n:
                ctl = ControlEvent(
                    chain,
                    n,
                    ref.hash,
                    _hash("c", n * 16 + i),
                    100 + i,
                    kind,
                    kind.value,
                    address,
                    subject=subject,
                    actor=OWNER,
                    timestamp=ts,
                )
                ctls.append(ctl)
        refs.append(ref)
        if n % 10 == 0 or n == blocks:
            cursor = refs[-1]
            await store.commit(
                Batch(chain, prev, cursor, max(-1, n - finalized_lag), events=evs, refs=refs, controls=ctls)
            )
            syn.events.extend(evs)
            syn.controls.extend(ctls)
            prev, refs, evs, ctls = cursor, [], [], []
    syn.head = blocks
    syn.finalized = blocks - finalized_lag
    return syn
