"""Deploy and drive the devnet TestToken over raw JSON-RPC (eth_sendTransaction / eth_call).

Deterministic address: the first transaction of anvil's default account 0
(0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266, nonce 0) is a contract creation at
CREATE(account0, 0) = 0x5FbDB2315678afecb367f032d93F642f64180aa3. So the first deployment on a fresh
anvil chain (any chain id) is always at DETERMINISTIC_TOKEN_ADDRESS; `deploy` checks it.

Transactions from any address work: `prepare_account` impersonates it and funds it with ETH for gas
(`anvil_impersonateAccount` + `anvil_setBalance`). Gas is given explicitly so a failing call is
mined as a reverted transaction (status 0, no logs) instead of failing at estimation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eth_abi import decode, encode
from eth_utils import keccak, to_checksum_address

from indexer.devnet.solc import Artifact

ANVIL_ACCOUNT0 = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
DETERMINISTIC_TOKEN_ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
MINT_TOPIC = "0x" + keccak(text="Mint(address,address,uint256)").hex()
BURN_TOPIC = "0x" + keccak(text="Burn(address,uint256)").hex()

_GAS_SIMPLE = 150_000
_GAS_PER_ITEM = 60_000
_HOLDER_ETH = 10**21  # 1000 ETH for gas


class Rpc(Protocol):
    """Anything with `async rpc(method, params)` (e.g. `indexer.devnet.anvil.Anvil`)."""

    async def rpc(self, method: str, params: list[Any] | None = None) -> Any: ...


class TxFailed(RuntimeError):
    """A transaction reverted (status 0) while the caller expected success."""

    def __init__(self, receipt: TxReceipt) -> None:
        self.receipt = receipt
        super().__init__(f"transaction {receipt.tx_hash} reverted in block {receipt.block_number}")


@dataclass(frozen=True, slots=True)
class TxReceipt:
    tx_hash: str
    block_number: int
    block_hash: str
    status: int  # 1 success, 0 reverted
    logs: tuple[dict[str, Any], ...]
    contract_address: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 1


def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def calldata(signature: str, types: Sequence[str], args: Sequence[Any]) -> str:
    return "0x" + (selector(signature) + encode(list(types), list(args))).hex()


def _block_param(block: int | str) -> str:
    return hex(block) if isinstance(block, int) else block


def _addr(a: str) -> str:
    return to_checksum_address(a)


def _parse_receipt(r: dict[str, Any]) -> TxReceipt:
    return TxReceipt(
        tx_hash=r["transactionHash"],
        block_number=int(r["blockNumber"], 16),
        block_hash=r["blockHash"],
        status=int(r["status"], 16),
        logs=tuple(r.get("logs") or ()),
        contract_address=r.get("contractAddress"),
    )


async def wait_receipt(rpc: Rpc, tx_hash: str, max_wait: float = 30.0) -> TxReceipt:
    """Poll until the transaction is mined (automine: at once; interval mining: next block)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait
    delay = 0.005
    while True:
        r = await rpc.rpc("eth_getTransactionReceipt", [tx_hash])
        if r is not None and r.get("blockNumber") is not None:
            return _parse_receipt(r)
        if loop.time() > deadline:
            raise TimeoutError(f"transaction {tx_hash} not mined within {max_wait}s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


class TestToken:
    """Helpers for one deployed TestToken. Amounts are integers in base units."""

    __test__ = False  # not a pytest test class

    def __init__(self, rpc: Rpc, address: str, *, owner: str = ANVIL_ACCOUNT0, decimals: int = 18) -> None:
        self.rpc = rpc
        self.address = _addr(address)
        self.owner = owner.lower()
        self.decimals = decimals
        self._prepared: set[str] = {self.owner}

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
        args = encode(["string", "string", "uint8"], [name, symbol, decimals]).hex()
        tx = {"from": deployer, "data": artifact.bytecode + args, "gas": hex(3_000_000)}
        tx_hash = await rpc.rpc("eth_sendTransaction", [tx])
        receipt = await wait_receipt(rpc, tx_hash)
        address = receipt.contract_address
        if not receipt.ok or address is None:
            raise RuntimeError(f"TestToken deployment reverted: {tx_hash}")
        if expect_address is not None and address.lower() != expect_address.lower():
            raise RuntimeError(
                f"TestToken deployed at {address}, expected {expect_address} (is the chain fresh?)"
            )
        return cls(rpc, address, owner=deployer, decimals=decimals)

    # -- accounts --------------------------------------------------------------------------------

    async def prepare_account(self, address: str) -> None:
        """Impersonate `address` and give it ETH for gas (once per address, see `forget_accounts`)."""
        a = address.lower()
        if a in self._prepared:
            return
        await self.rpc.rpc("anvil_impersonateAccount", [a])
        await self.rpc.rpc("anvil_setBalance", [a, hex(_HOLDER_ETH)])
        self._prepared.add(a)

    def forget_accounts(self) -> None:
        """After a reorg, ETH given by anvil_setBalance above the fork point is gone: re-fund lazily."""
        self._prepared = {self.owner}

    # -- transaction builders (JSON tx requests; also usable in anvil_reorg pairs) ----------------

    def tx(self, sender: str, data: str, gas: int = _GAS_SIMPLE) -> dict[str, Any]:
        return {"from": sender.lower(), "to": self.address, "data": data, "gas": hex(gas)}

    def mint_tx(self, to: str, amount: int) -> dict[str, Any]:
        return self.tx(
            self.owner, calldata("mint(address,uint256)", ["address", "uint256"], [_addr(to), amount])
        )

    def burn_tx(self, from_addr: str, amount: int) -> dict[str, Any]:
        data = calldata("burn(address,uint256)", ["address", "uint256"], [_addr(from_addr), amount])
        return self.tx(self.owner, data)

    def transfer_tx(self, from_addr: str, to: str, amount: int) -> dict[str, Any]:
        data = calldata("transfer(address,uint256)", ["address", "uint256"], [_addr(to), amount])
        return self.tx(from_addr, data)

    def batch_mint_tx(self, to: Sequence[str], amounts: Sequence[int]) -> dict[str, Any]:
        data = calldata(
            "batchMint(address[],uint256[])",
            ["address[]", "uint256[]"],
            [[_addr(a) for a in to], list(amounts)],
        )
        return self.tx(self.owner, data, _GAS_SIMPLE + _GAS_PER_ITEM * len(to))

    def batch_transfer_tx(
        self, from_addrs: Sequence[str], to: Sequence[str], amounts: Sequence[int]
    ) -> dict[str, Any]:
        data = calldata(
            "batchTransfer(address[],address[],uint256[])",
            ["address[]", "address[]", "uint256[]"],
            [[_addr(a) for a in from_addrs], [_addr(a) for a in to], list(amounts)],
        )
        return self.tx(self.owner, data, _GAS_SIMPLE + _GAS_PER_ITEM * len(to))

    # -- sending ---------------------------------------------------------------------------------

    async def submit(self, tx: dict[str, Any]) -> str:
        """Send without waiting for the block; returns the tx hash."""
        await self.prepare_account(tx["from"])
        return str(await self.rpc.rpc("eth_sendTransaction", [tx]))

    async def send(self, tx: dict[str, Any], *, check: bool = True) -> TxReceipt:
        """Send and wait until mined; with `check`, a revert raises TxFailed."""
        receipt = await wait_receipt(self.rpc, await self.submit(tx))
        if check and not receipt.ok:
            raise TxFailed(receipt)
        return receipt

    async def mint(self, to: str, amount: int, *, check: bool = True) -> TxReceipt:
        return await self.send(self.mint_tx(to, amount), check=check)

    async def burn(self, from_addr: str, amount: int, *, check: bool = True) -> TxReceipt:
        return await self.send(self.burn_tx(from_addr, amount), check=check)

    async def transfer(self, from_addr: str, to: str, amount: int, *, check: bool = True) -> TxReceipt:
        return await self.send(self.transfer_tx(from_addr, to, amount), check=check)

    async def batch_mint(self, to: Sequence[str], amounts: Sequence[int], *, check: bool = True) -> TxReceipt:
        return await self.send(self.batch_mint_tx(to, amounts), check=check)

    async def batch_transfer(
        self, from_addrs: Sequence[str], to: Sequence[str], amounts: Sequence[int], *, check: bool = True
    ) -> TxReceipt:
        return await self.send(self.batch_transfer_tx(from_addrs, to, amounts), check=check)

    # -- reads -----------------------------------------------------------------------------------

    async def call(self, data: str, block: int | str = "latest") -> bytes:
        out = await self.rpc.rpc("eth_call", [{"to": self.address, "data": data}, _block_param(block)])
        return bytes.fromhex(str(out)[2:])

    async def total_supply(self, block: int | str = "latest") -> int:
        return int(decode(["uint256"], await self.call(calldata("totalSupply()", [], []), block))[0])

    async def balance_of(self, address: str, block: int | str = "latest") -> int:
        data = calldata("balanceOf(address)", ["address"], [_addr(address)])
        return int(decode(["uint256"], await self.call(data, block))[0])

    async def transfer_logs(
        self, from_block: int | str = 0, to_block: int | str = "latest"
    ) -> list[dict[str, Any]]:
        """The chain's own Transfer logs of this token (for tests)."""
        return await self.logs([TRANSFER_TOPIC], from_block, to_block)

    async def logs(
        self, topics: list[Any], from_block: int | str = 0, to_block: int | str = "latest"
    ) -> list[dict[str, Any]]:
        flt = {
            "address": self.address,
            "topics": topics,
            "fromBlock": _block_param(from_block),
            "toBlock": _block_param(to_block),
        }
        return list(await self.rpc.rpc("eth_getLogs", [flt]))
