"""A Tether-profile token on anvil: our `contracts/TetherStyleToken.sol` (USDT's event profile).

Supply moves WITHOUT Transfer events: `issue` / `redeem` (the owner's balance, events
`Issue(uint)` / `Redeem(uint)`) and `destroyBlackFunds` (a blacklisted balance,
`DestroyedBlackFunds(address,uint)`); `transferOwnership` emits nothing. So supply counted from
zero-address Transfers alone is wrong for it, which is what the tether profile of the indexer has to
get right. `TetherTraffic` drives it with seeded random traffic and reorgs (see `traffic.py`).

Every action returns the mined `TxReceipt`; `check=True` raises `TxFailed` on a revert.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from indexer.devnet.contract import (
    ANVIL_ACCOUNT0,
    PausableToken,
    Rpc,
    TxReceipt,
    calldata,
    checksum,
    deploy_contract,
    topic0,
)
from indexer.devnet.solc import CONTRACTS_DIR, Artifact, compile_contract
from indexer.devnet.traffic import TokenTraffic

TETHER_SOURCE = CONTRACTS_DIR / "TetherStyleToken.sol"
TETHER_DECIMALS = 6

TETHER_EVENT_SIGNATURES: dict[str, str] = {
    "Transfer": "Transfer(address,address,uint256)",
    "Approval": "Approval(address,address,uint256)",
    "Issue": "Issue(uint256)",
    "Redeem": "Redeem(uint256)",
    "AddedBlackList": "AddedBlackList(address)",
    "RemovedBlackList": "RemovedBlackList(address)",
    "DestroyedBlackFunds": "DestroyedBlackFunds(address,uint256)",
    "Pause": "Pause()",
    "Unpause": "Unpause()",
}
TETHER_TOPICS: dict[str, str] = {name: topic0(sig) for name, sig in TETHER_EVENT_SIGNATURES.items()}


def compile_tether(cache_dir: Path | None = None) -> Artifact:
    """The TetherStyleToken artifact (project solc, cached). Blocking."""
    return compile_contract(TETHER_SOURCE, "TetherStyleToken", cache_dir=cache_dir)


class TetherStyleToken(PausableToken):
    """Helpers for one deployed TetherStyleToken. Owner actions are sent from `owner`."""

    @classmethod
    async def deploy(
        cls,
        rpc: Rpc,
        *,
        initial_supply: int = 0,
        name: str = "Tether USD Devnet",
        symbol: str = "USDT",
        decimals: int = TETHER_DECIMALS,
        deployer: str = ANVIL_ACCOUNT0,
        cache_dir: Path | None = None,
    ) -> TetherStyleToken:
        """Deploy from `deployer`, who becomes the owner. A non-zero `initial_supply` is credited to
        the owner with NO event, as USDT's constructor does."""
        artifact = await asyncio.to_thread(compile_tether, cache_dir)
        receipt = await deploy_contract(
            rpc,
            artifact,
            ["uint256", "string", "string", "uint256"],
            [initial_supply, name, symbol, decimals],
            deployer=deployer,
        )
        assert receipt.contract_address is not None
        return cls(rpc, receipt.contract_address, owner=deployer, decimals=decimals)

    # -- transaction builders (JSON tx requests; also usable in anvil_reorg pairs) ----------------

    def issue_tx(self, amount: int) -> dict[str, Any]:
        return self.tx(self.owner, calldata("issue(uint256)", ["uint256"], [amount]))

    def redeem_tx(self, amount: int) -> dict[str, Any]:
        return self.tx(self.owner, calldata("redeem(uint256)", ["uint256"], [amount]))

    def add_black_list_tx(self, user: str) -> dict[str, Any]:
        return self.tx(self.owner, calldata("addBlackList(address)", ["address"], [checksum(user)]))

    def remove_black_list_tx(self, user: str) -> dict[str, Any]:
        return self.tx(self.owner, calldata("removeBlackList(address)", ["address"], [checksum(user)]))

    def destroy_black_funds_tx(self, user: str) -> dict[str, Any]:
        return self.tx(self.owner, calldata("destroyBlackFunds(address)", ["address"], [checksum(user)]))

    # -- owner actions ---------------------------------------------------------------------------

    async def issue(self, amount: int, *, check: bool = True) -> TxReceipt:
        """`amount` new tokens to the owner: Issue(amount), no Transfer."""
        return await self.send(self.issue_tx(amount), check=check)

    async def redeem(self, amount: int, *, check: bool = True) -> TxReceipt:
        """`amount` of the owner's tokens destroyed: Redeem(amount), no Transfer."""
        return await self.send(self.redeem_tx(amount), check=check)

    async def add_black_list(self, user: str, *, check: bool = True) -> TxReceipt:
        return await self.send(self.add_black_list_tx(user), check=check)

    async def remove_black_list(self, user: str, *, check: bool = True) -> TxReceipt:
        return await self.send(self.remove_black_list_tx(user), check=check)

    async def destroy_black_funds(self, user: str, *, check: bool = True) -> TxReceipt:
        """Burn a blacklisted holder's whole balance: DestroyedBlackFunds(user, balance), no Transfer."""
        return await self.send(self.destroy_black_funds_tx(user), check=check)

    async def transfer_ownership(self, new_owner: str, *, check: bool = True) -> TxReceipt:
        """One step and NO event (as USDT); `owner` follows on success."""
        receipt = await self.transact(
            "transferOwnership(address)", ["address"], [checksum(new_owner)], sender=self.owner, check=check
        )
        if receipt.ok:
            self.owner = new_owner
        return receipt

    # -- reads -----------------------------------------------------------------------------------

    async def is_black_listed(self, user: str, block: int | str = "latest") -> bool:
        out = await self.read("getBlackListStatus(address)", ["bool"], ["address"], [checksum(user)], block)
        return bool(out[0])


class TetherTraffic(TokenTraffic):
    """Seeded random traffic on a TetherStyleToken: issues and redeems (no Transfer), the owner
    distributing to holders, holder transfers (some reverting), blacklisting, un-blacklisting,
    destroying blacklisted funds (no Transfer), and short pauses (the next step unpauses)."""

    token: TetherStyleToken

    def __init__(self, token: TetherStyleToken, **kwargs: Any) -> None:
        super().__init__(token, **kwargs)

    async def issue(self) -> str:
        amount = self._amount()
        return await self._send("issue", self.token.issue_tx(amount), {"amount": amount})

    async def redeem(self, owner_balance: int) -> str:
        amount = self._amount(owner_balance)
        return await self._send("redeem", self.token.redeem_tx(amount), {"amount": amount})

    async def distribute(self, owner_balance: int) -> str:
        to = self.rng.choice(self.holders)
        amount = self._amount(owner_balance)
        tx = self.token.transfer_tx(self.token.owner, to, amount)
        return await self._send("distribute", tx, {"to": to, "amount": amount})

    async def blacklist(self, holder: str) -> str:
        return await self._send("blacklist", self.token.add_black_list_tx(holder), {"user": holder})

    async def unblacklist(self, holder: str) -> str:
        return await self._send("unblacklist", self.token.remove_black_list_tx(holder), {"user": holder})

    async def destroy(self, holder: str) -> str:
        return await self._send(
            "destroy_black_funds", self.token.destroy_black_funds_tx(holder), {"user": holder}
        )

    async def step(self) -> str:
        """One random operation; returns its tx hash. Reads the chain (balances, blacklist,
        paused) so it stays right after reorgs."""
        if await self.token.paused():
            return await self._send("unpause", self.token.unpause_tx(), {})
        sample = self.rng.sample(self.holders, k=min(4, len(self.holders)))
        balances = await self._balances(sample)
        listed = await asyncio.gather(*(self.token.is_black_listed(h) for h in sample))
        owner_balance = await self.token.balance_of(self.token.owner)
        funded = [(h, b) for h, b, bl in zip(sample, balances, listed, strict=True) if b > 0 and not bl]
        black = [(h, b) for h, b, bl in zip(sample, balances, listed, strict=True) if bl]
        roll = self.rng.random()
        if roll < 0.15 or (owner_balance == 0 and not funded):
            return await self.issue()
        if roll < 0.22 and owner_balance > 0:
            return await self.redeem(owner_balance)
        if (roll < 0.40 or not funded) and owner_balance > 0:
            return await self.distribute(owner_balance)
        holder, balance = self.rng.choice(funded)
        if roll < 0.40 + self.fail_ratio:
            return await self.failing_transfer(holder, balance)
        if roll < 0.82:
            return await self.transfer(holder, balance)
        if roll < 0.88 or not black:
            return await self.blacklist(holder)
        target, target_balance = self.rng.choice(black)
        if roll < 0.93 or target_balance == 0:
            return await self.unblacklist(target)
        if roll < 0.975:
            return await self.destroy(target)
        return await self._send("pause", self.token.pause_tx(), {})

    def replacement_txs(self, txs_per_block: int, funded: dict[str, int]) -> list[dict[str, Any]]:
        """Per replacement block: `txs_per_block` issues, each followed by the owner handing part
        of it to a random holder (owner-sent only, so no holder needs gas at the fork point)."""
        txs: list[dict[str, Any]] = []
        for _ in range(txs_per_block):
            amount = self._amount()
            txs.append(self.token.issue_tx(amount))
            to = self.rng.choice(self.holders)
            txs.append(self.token.transfer_tx(self.token.owner, to, self._amount(amount)))
        return txs
