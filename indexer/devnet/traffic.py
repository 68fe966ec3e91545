"""Seeded random token activity on one devnet chain: mints, burns, transfers among many holders,
some reverting transfers, and reorgs (`anvil_reorg`) whose replacement blocks carry different
token events than the orphaned ones.

`TokenTraffic` is the shared driver (holders, amounts, sending, pacing, the reorg skeleton);
`Traffic` drives the TestToken, `indexer.devnet.tether.TetherTraffic` the Tether-style token.

The record kept here (`history`) is for debugging only; tests check the chain itself
(totalSupply / balanceOf at a block, logs), never this record.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from eth_utils import keccak, to_checksum_address

from indexer.devnet.anvil import RpcCallError
from indexer.devnet.contract import Erc20Contract
from indexer.devnet.token import TestToken


@dataclass(frozen=True, slots=True)
class OpRecord:
    """What one step tried (debugging aid)."""

    kind: str  # mint | burn | transfer | fail_transfer | batch_mint | batch_transfer | reorg
    detail: dict[str, Any]
    tx_hash: str | None = None


@dataclass(frozen=True, slots=True)
class ReorgResult:
    depth: int
    fork_point: int  # first replaced height; heights fork_point .. fork_point+depth-1 changed
    old_hashes: tuple[str, ...]
    new_hashes: tuple[str, ...]
    replacement_txs: int


@dataclass(slots=True)
class TrafficStats:
    ops: dict[str, int] = field(default_factory=dict)

    def bump(self, kind: str) -> None:
        self.ops[kind] = self.ops.get(kind, 0) + 1


def holder_addresses(seed: int, count: int) -> list[str]:
    """`count` deterministic holder addresses (checksummed) derived from `seed`."""
    return [to_checksum_address(keccak(text=f"usd1-devnet-holder:{seed}:{i}")[12:]) for i in range(count)]


class TokenTraffic:
    """What every seeded token driver shares: holders, amounts, sending, history, pacing and
    reorgs. Subclasses define `step()` (one random operation) and `replacement_txs()` (what the
    blocks that replace orphaned ones carry). `wait=True` waits for every receipt (automine tests);
    with interval mining (`--block-time`) use `wait=False` so several operations land in one block."""

    def __init__(
        self,
        token: Erc20Contract,
        *,
        seed: int = 0,
        holders: int = 20,
        wait: bool = True,
        fail_ratio: float = 0.08,
        max_mint_tokens: int = 10_000,
        history_limit: int = 10_000,
        chain: str = "devnet",
    ) -> None:
        if holders < 2:
            raise ValueError("traffic needs at least 2 holders")
        self.token = token
        self.rng = random.Random(seed)
        self.holders = holder_addresses(seed, holders)
        self.wait = wait
        self.fail_ratio = fail_ratio
        self.unit = 10**token.decimals
        self.max_mint = max_mint_tokens * self.unit
        self.history: deque[OpRecord] = deque(maxlen=history_limit)
        self.stats = TrafficStats()
        self._log = structlog.get_logger("devnet.traffic").bind(chain=chain)

    # -- helpers ---------------------------------------------------------------------------------

    def _amount(self, cap: int | None = None) -> int:
        """A random amount in cents-of-a-token granularity, at least 1 base unit, at most `cap`."""
        cents = self.unit // 100 or 1
        hi = self.max_mint if cap is None else min(cap, self.max_mint)
        if hi < 1:
            return 0
        return max(1, min(hi, self.rng.randint(1, max(1, hi // cents)) * cents))

    def _other_holder(self, holder: str) -> str:
        return self.rng.choice([h for h in self.holders if h != holder])

    async def _balances(self, addrs: Sequence[str]) -> list[int]:
        return list(await asyncio.gather(*(self.token.balance_of(a) for a in addrs)))

    async def _send(self, kind: str, tx: dict[str, Any], detail: dict[str, Any]) -> str:
        if self.wait:
            receipt = await self.token.send(tx, check=False)
            tx_hash = receipt.tx_hash
            detail = {**detail, "block": receipt.block_number, "status": receipt.status}
        else:
            tx_hash = await self.token.submit(tx)
        self.history.append(OpRecord(kind, detail, tx_hash))
        self.stats.bump(kind)
        return tx_hash

    async def transfer(self, holder: str, balance: int) -> str:
        to = self._other_holder(holder)
        amount = self._amount(balance)
        tx = self.token.transfer_tx(holder, to, amount)
        return await self._send("transfer", tx, {"from": holder, "to": to, "amount": amount})

    async def failing_transfer(self, holder: str, balance: int) -> str:
        """A transfer of more than the balance: mined, reverted, no logs."""
        to = self._other_holder(holder)
        amount = balance + self._amount()
        tx = self.token.transfer_tx(holder, to, amount)
        return await self._send("fail_transfer", tx, {"from": holder, "to": to, "amount": amount})

    # -- driving ---------------------------------------------------------------------------------

    async def step(self) -> str:
        """One random operation; returns its tx hash."""
        raise NotImplementedError

    async def run(self, ops: int) -> None:
        for _ in range(ops):
            await self.step()

    async def run_until(self, stop: asyncio.Event, ops_per_second: float = 3.0) -> None:
        """Steps at about `ops_per_second` until `stop` is set."""
        period = 1.0 / ops_per_second
        while not stop.is_set():
            await self.step()
            try:
                await asyncio.wait_for(stop.wait(), period)
            except TimeoutError:
                pass

    # -- reorg -----------------------------------------------------------------------------------

    def replacement_txs(self, txs_per_block: int, funded: dict[str, int]) -> list[dict[str, Any]]:
        """The transactions of one replacement block; `funded` ({holder: balance at the fork
        point}, empty when the node has no state there) is debited by what they spend."""
        raise NotImplementedError

    async def reorg(self, depth: int, *, txs_per_block: int = 1) -> ReorgResult:
        """Replace the last `depth` blocks (`anvil_reorg`) with blocks carrying different token
        events (`replacement_txs` per block). The head height stays the same. Transactions of the
        orphaned blocks are dropped."""
        if depth < 1:
            raise ValueError("reorg depth must be >= 1")
        rpc = self.token.rpc
        head = int((await rpc.rpc("eth_getBlockByNumber", ["latest", False]))["number"], 16)
        if depth >= head:
            raise ValueError(f"reorg depth {depth} reaches genesis (head {head})")
        fork_point = head - depth + 1
        old = [await rpc.rpc("eth_getBlockByNumber", [hex(n), False]) for n in range(fork_point, head + 1)]
        base = fork_point - 1
        try:
            base_balances = await asyncio.gather(*(self.token.balance_of(h, base) for h in self.holders))
            funded = {h: b for h, b in zip(self.holders, base_balances, strict=True) if b > 0}
        except RpcCallError:
            # No state at the fork point (a node restarted from a state dump keeps no history):
            # skip the replacement transfer; the fresh mints still change the blocks' events.
            funded = {}
        pairs: list[list[Any]] = [
            [tx, offset] for offset in range(depth) for tx in self.replacement_txs(txs_per_block, funded)
        ]
        await rpc.rpc("anvil_reorg", [depth, pairs])
        self.token.forget_accounts()
        new = [await rpc.rpc("eth_getBlockByNumber", [hex(n), False]) for n in range(fork_point, head + 1)]
        result = ReorgResult(
            depth=depth,
            fork_point=fork_point,
            old_hashes=tuple(b["hash"] for b in old),
            new_hashes=tuple(b["hash"] for b in new),
            replacement_txs=len(pairs),
        )
        self.history.append(OpRecord("reorg", {"depth": depth, "fork_point": fork_point}))
        self.stats.bump("reorg")
        self._log.info("reorg", depth=depth, fork_point=fork_point, head=head, replacement_txs=len(pairs))
        return result


class Traffic(TokenTraffic):
    """Drives one TestToken: mints, burns, transfers, failing transfers, batch mints/transfers."""

    token: TestToken

    def __init__(self, token: TestToken, **kwargs: Any) -> None:
        super().__init__(token, **kwargs)

    # -- operations ------------------------------------------------------------------------------

    async def mint(self) -> str:
        to = self.rng.choice(self.holders)
        amount = self._amount()
        return await self._send("mint", self.token.mint_tx(to, amount), {"to": to, "amount": amount})

    async def burn(self, holder: str, balance: int) -> str:
        amount = self._amount(balance)
        return await self._send(
            "burn", self.token.burn_tx(holder, amount), {"from": holder, "amount": amount}
        )

    async def batch_mint(self, n: int) -> str:
        to = [self.rng.choice(self.holders) for _ in range(n)]
        amounts = [self._amount() for _ in range(n)]
        return await self._send("batch_mint", self.token.batch_mint_tx(to, amounts), {"n": n})

    async def batch_transfer(self, funded: Sequence[tuple[str, int]], n: int) -> str:
        picks = [funded[self.rng.randrange(len(funded))] for _ in range(n)]
        froms: list[str] = []
        tos: list[str] = []
        amounts: list[int] = []
        spent: dict[str, int] = {}
        for holder, bal in picks:
            left = bal - spent.get(holder, 0)
            if left < 1:
                continue
            amount = self._amount(left // 2 or left)
            spent[holder] = spent.get(holder, 0) + amount
            froms.append(holder)
            tos.append(self._other_holder(holder))
            amounts.append(amount)
        if not froms:
            return await self.mint()
        tx = self.token.batch_transfer_tx(froms, tos, amounts)
        return await self._send("batch_transfer", tx, {"n": len(froms)})

    async def step(self) -> str:
        """One random operation; returns its tx hash."""
        sample = self.rng.sample(self.holders, k=min(4, len(self.holders)))
        balances = await self._balances(sample)
        funded = [(h, b) for h, b in zip(sample, balances, strict=True) if b > 0]
        roll = self.rng.random()
        if not funded or roll < 0.25:
            return await self.mint()
        holder, balance = self.rng.choice(funded)
        if roll < 0.25 + self.fail_ratio:
            return await self.failing_transfer(holder, balance)
        if roll < 0.40:
            return await self.burn(holder, balance)
        if roll < 0.85:
            return await self.transfer(holder, balance)
        if roll < 0.92:
            return await self.batch_mint(self.rng.randint(2, 5))
        return await self.batch_transfer(funded, self.rng.randint(2, 5))

    # -- reorg -----------------------------------------------------------------------------------

    def replacement_txs(self, txs_per_block: int, funded: dict[str, int]) -> list[dict[str, Any]]:
        """`txs_per_block` fresh mints (random holder and amount), then a transfer (owner
        `batchTransfer`) from a holder funded at the fork point."""
        txs = [
            self.token.mint_tx(self.rng.choice(self.holders), self._amount()) for _ in range(txs_per_block)
        ]
        if funded:
            src = self.rng.choice(sorted(funded))
            amount = self._amount(funded[src] // 2 or funded[src])
            funded[src] -= amount
            dst = self._other_holder(src)
            txs.append(self.token.batch_transfer_tx([src], [dst], [amount]))
        return txs
