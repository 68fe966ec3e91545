"""Drive any deployed devnet contract over raw JSON-RPC (eth_sendTransaction / eth_call).

The shared layer under `token.TestToken`, `usd1.Usd1Token`, `tether.TetherToken` and
`chainlink.ChainlinkFeed`: calldata encoding, deployment, sending from any address, receipts,
reads, logs and storage slots.

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

from indexer.devnet.anvil import RpcCallError
from indexer.devnet.solc import Artifact

ANVIL_ACCOUNT0 = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

GAS_SIMPLE = 150_000
GAS_DEPLOY = 6_000_000
_HOLDER_ETH = 10**21  # 1000 ETH for gas
_ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)


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


def topic0(signature: str) -> str:
    """keccak256 of an event's canonical signature, 0x-prefixed."""
    return "0x" + keccak(text=signature).hex()


TRANSFER_TOPIC = topic0("Transfer(address,address,uint256)")


def block_param(block: int | str) -> str:
    return hex(block) if isinstance(block, int) else block


def checksum(address: str) -> str:
    return to_checksum_address(address)


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


async def deploy_contract(
    rpc: Rpc,
    artifact: Artifact,
    types: Sequence[str] = (),
    args: Sequence[Any] = (),
    *,
    deployer: str = ANVIL_ACCOUNT0,
    gas: int = GAS_DEPLOY,
    expect_address: str | None = None,
) -> TxReceipt:
    """Deploy `artifact` with constructor `args`; the receipt's `contract_address` is the address.
    `deployer` must be unlocked (anvil's default accounts are; see `DevnetContract.prepare_account`)."""
    data = artifact.bytecode + encode(list(types), list(args)).hex()
    tx_hash = await rpc.rpc("eth_sendTransaction", [{"from": deployer, "data": data, "gas": hex(gas)}])
    receipt = await wait_receipt(rpc, tx_hash)
    address = receipt.contract_address
    if not receipt.ok or address is None:
        raise RuntimeError(f"{artifact.contract} deployment reverted: {tx_hash}")
    if expect_address is not None and address.lower() != expect_address.lower():
        raise RuntimeError(
            f"{artifact.contract} deployed at {address}, expected {expect_address} (is the chain fresh?)"
        )
    return receipt


def revert_reason(exc: RpcCallError) -> str | None:
    """The `Error(string)` message of a reverted eth_call, if it carries one."""
    data = exc.data
    if not isinstance(data, str) or not data.startswith("0x"):
        return None
    raw = bytes.fromhex(data[2:])
    if raw[:4] != _ERROR_STRING:
        return None
    return str(decode(["string"], raw[4:])[0])


class DevnetContract:
    """One deployed contract: send from any (impersonated) address, read, fetch its logs.

    `default_sender` is the account actions use when none is given (the owner, for tokens)."""

    def __init__(self, rpc: Rpc, address: str, *, default_sender: str = ANVIL_ACCOUNT0) -> None:
        self.rpc = rpc
        self.address = checksum(address)
        self.default_sender = default_sender.lower()
        self._prepared: set[str] = {ANVIL_ACCOUNT0}

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
        self._prepared = {ANVIL_ACCOUNT0}

    # -- sending ---------------------------------------------------------------------------------

    def tx(self, sender: str | None, data: str, gas: int = GAS_SIMPLE) -> dict[str, Any]:
        """A JSON tx request to this contract (also usable in anvil_reorg pairs)."""
        return {
            "from": (sender or self.default_sender).lower(),
            "to": self.address,
            "data": data,
            "gas": hex(gas),
        }

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

    async def transact(
        self,
        signature: str,
        types: Sequence[str] = (),
        args: Sequence[Any] = (),
        *,
        sender: str | None = None,
        gas: int = GAS_SIMPLE,
        check: bool = True,
    ) -> TxReceipt:
        """Call `signature` with `args` in a mined transaction from `sender` (default sender)."""
        return await self.send(self.tx(sender, calldata(signature, types, args), gas), check=check)

    # -- reads -----------------------------------------------------------------------------------

    async def call(self, data: str, block: int | str = "latest", *, sender: str | None = None) -> bytes:
        req: dict[str, Any] = {"to": self.address, "data": data}
        if sender is not None:
            req["from"] = sender.lower()
        out = await self.rpc.rpc("eth_call", [req, block_param(block)])
        return bytes.fromhex(str(out)[2:])

    async def read(
        self,
        signature: str,
        out_types: Sequence[str],
        types: Sequence[str] = (),
        args: Sequence[Any] = (),
        block: int | str = "latest",
    ) -> tuple[Any, ...]:
        """eth_call `signature(args)` at `block` and ABI-decode the reply as `out_types`."""
        return tuple(decode(list(out_types), await self.call(calldata(signature, types, args), block)))

    async def read_uint(self, signature: str, block: int | str = "latest") -> int:
        return int((await self.read(signature, ["uint256"], block=block))[0])

    async def read_address(self, signature: str, block: int | str = "latest") -> str:
        return checksum((await self.read(signature, ["address"], block=block))[0])

    async def storage_at(self, slot: int, block: int | str = "latest") -> int:
        """The raw 32-byte storage word at `slot` of this contract (eth_getStorageAt)."""
        word = await self.rpc.rpc("eth_getStorageAt", [self.address, hex(slot), block_param(block)])
        return int(str(word), 16)

    async def code(self, block: int | str = "latest") -> str:
        return str(await self.rpc.rpc("eth_getCode", [self.address, block_param(block)]))

    async def logs(
        self, topics: list[Any], from_block: int | str = 0, to_block: int | str = "latest"
    ) -> list[dict[str, Any]]:
        """The chain's own logs of this contract (eth_getLogs), for tests and checks."""
        flt = {
            "address": self.address,
            "topics": topics,
            "fromBlock": block_param(from_block),
            "toBlock": block_param(to_block),
        }
        return list(await self.rpc.rpc("eth_getLogs", [flt]))


class Erc20Contract(DevnetContract):
    """The ERC-20 part every devnet token shares: transfers, balances, supply, Transfer logs.
    `owner` is the account privileged actions are sent from (the default sender)."""

    def __init__(self, rpc: Rpc, address: str, *, owner: str = ANVIL_ACCOUNT0, decimals: int = 18) -> None:
        super().__init__(rpc, address, default_sender=owner)
        self.decimals = decimals

    @property
    def owner(self) -> str:
        return self.default_sender

    @owner.setter
    def owner(self, address: str) -> None:
        self.default_sender = address.lower()

    def transfer_tx(self, from_addr: str, to: str, amount: int) -> dict[str, Any]:
        data = calldata("transfer(address,uint256)", ["address", "uint256"], [checksum(to), amount])
        return self.tx(from_addr, data)

    async def transfer(self, from_addr: str, to: str, amount: int, *, check: bool = True) -> TxReceipt:
        return await self.send(self.transfer_tx(from_addr, to, amount), check=check)

    async def approve(self, holder: str, spender: str, amount: int, *, check: bool = True) -> TxReceipt:
        return await self.transact(
            "approve(address,uint256)",
            ["address", "uint256"],
            [checksum(spender), amount],
            sender=holder,
            check=check,
        )

    async def current_owner(self, block: int | str = "latest") -> str:
        """`owner()` as the chain says (the `owner` attribute is who this object sends as)."""
        return await self.read_address("owner()", block)

    async def name(self, block: int | str = "latest") -> str:
        return str((await self.read("name()", ["string"], block=block))[0])

    async def symbol(self, block: int | str = "latest") -> str:
        return str((await self.read("symbol()", ["string"], block=block))[0])

    async def total_supply(self, block: int | str = "latest") -> int:
        return await self.read_uint("totalSupply()", block)

    async def balance_of(self, address: str, block: int | str = "latest") -> int:
        out = await self.read("balanceOf(address)", ["uint256"], ["address"], [checksum(address)], block)
        return int(out[0])

    async def transfer_logs(
        self, from_block: int | str = 0, to_block: int | str = "latest"
    ) -> list[dict[str, Any]]:
        """The chain's own Transfer logs of this token (for tests)."""
        return await self.logs([TRANSFER_TOPIC], from_block, to_block)


class PausableToken(Erc20Contract):
    """A token with owner-only `pause()` / `unpause()` and a `paused()` getter (USD1, Tether)."""

    def pause_tx(self) -> dict[str, Any]:
        return self.tx(self.owner, calldata("pause()", [], []))

    def unpause_tx(self) -> dict[str, Any]:
        return self.tx(self.owner, calldata("unpause()", [], []))

    async def pause(self, *, check: bool = True) -> TxReceipt:
        return await self.send(self.pause_tx(), check=check)

    async def unpause(self, *, check: bool = True) -> TxReceipt:
        return await self.send(self.unpause_tx(), check=check)

    async def paused(self, block: int | str = "latest") -> bool:
        return bool((await self.read("paused()", ["bool"], block=block))[0])
