"""Deploy and drive the devnet TestToken over raw JSON-RPC (see `indexer.devnet.contract`).

Deterministic address: the first transaction of anvil's default account 0
(0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266, nonce 0) is a contract creation at
CREATE(account0, 0) = 0x5FbDB2315678afecb367f032d93F642f64180aa3. So the first deployment on a fresh
anvil chain (any chain id) is always at DETERMINISTIC_TOKEN_ADDRESS; `deploy` checks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from indexer.devnet.contract import (
    ANVIL_ACCOUNT0,
    GAS_SIMPLE,
    TRANSFER_TOPIC,
    ZERO_ADDRESS,
    Erc20Contract,
    Rpc,
    TxFailed,
    TxReceipt,
    calldata,
    checksum,
    deploy_contract,
    selector,
    topic0,
    wait_receipt,
)
from indexer.devnet.solc import Artifact

__all__ = [
    "ANVIL_ACCOUNT0",
    "BURN_TOPIC",
    "DETERMINISTIC_TOKEN_ADDRESS",
    "MINT_TOPIC",
    "TRANSFER_TOPIC",
    "ZERO_ADDRESS",
    "Rpc",
    "TestToken",
    "TxFailed",
    "TxReceipt",
    "calldata",
    "selector",
    "wait_receipt",
]

DETERMINISTIC_TOKEN_ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"

MINT_TOPIC = topic0("Mint(address,address,uint256)")
BURN_TOPIC = topic0("Burn(address,uint256)")

_GAS_PER_ITEM = 60_000


class TestToken(Erc20Contract):
    """Helpers for one deployed TestToken. Amounts are integers in base units."""

    __test__ = False  # not a pytest test class

    # -- deployment ------------------------------------------------------------------------------

    @classmethod
    async def deploy(
        cls,
        rpc: Rpc,
        artifact: Artifact,
        *,
        name: str = "USD1 Devnet",
        symbol: str = "USD1",
        decimals: int = 18,
        deployer: str = ANVIL_ACCOUNT0,
        expect_address: str | None = None,
    ) -> TestToken:
        """Deploy from `deployer` (default anvil account 0). On a fresh chain the token lands at
        DETERMINISTIC_TOKEN_ADDRESS; pass `expect_address` to have that checked."""
        receipt = await deploy_contract(
            rpc,
            artifact,
            ["string", "string", "uint8"],
            [name, symbol, decimals],
            deployer=deployer,
            gas=3_000_000,
            expect_address=expect_address,
        )
        assert receipt.contract_address is not None
        return cls(rpc, receipt.contract_address, owner=deployer, decimals=decimals)

    # -- transaction builders (JSON tx requests; also usable in anvil_reorg pairs) ----------------

    def mint_tx(self, to: str, amount: int) -> dict[str, Any]:
        return self.tx(
            self.owner, calldata("mint(address,uint256)", ["address", "uint256"], [checksum(to), amount])
        )

    def burn_tx(self, from_addr: str, amount: int) -> dict[str, Any]:
        data = calldata("burn(address,uint256)", ["address", "uint256"], [checksum(from_addr), amount])
        return self.tx(self.owner, data)

    def batch_mint_tx(self, to: Sequence[str], amounts: Sequence[int]) -> dict[str, Any]:
        data = calldata(
            "batchMint(address[],uint256[])",
            ["address[]", "uint256[]"],
            [[checksum(a) for a in to], list(amounts)],
        )
        return self.tx(self.owner, data, GAS_SIMPLE + _GAS_PER_ITEM * len(to))

    def batch_transfer_tx(
        self, from_addrs: Sequence[str], to: Sequence[str], amounts: Sequence[int]
    ) -> dict[str, Any]:
        data = calldata(
            "batchTransfer(address[],address[],uint256[])",
            ["address[]", "address[]", "uint256[]"],
            [[checksum(a) for a in from_addrs], [checksum(a) for a in to], list(amounts)],
        )
        return self.tx(self.owner, data, GAS_SIMPLE + _GAS_PER_ITEM * len(to))

    # -- sending ---------------------------------------------------------------------------------

    async def mint(self, to: str, amount: int, *, check: bool = True) -> TxReceipt:
        return await self.send(self.mint_tx(to, amount), check=check)

    async def burn(self, from_addr: str, amount: int, *, check: bool = True) -> TxReceipt:
        return await self.send(self.burn_tx(from_addr, amount), check=check)

    async def batch_mint(self, to: Sequence[str], amounts: Sequence[int], *, check: bool = True) -> TxReceipt:
        return await self.send(self.batch_mint_tx(to, amounts), check=check)

    async def batch_transfer(
        self, from_addrs: Sequence[str], to: Sequence[str], amounts: Sequence[int], *, check: bool = True
    ) -> TxReceipt:
        return await self.send(self.batch_transfer_tx(from_addrs, to, amounts), check=check)
