"""The REAL USD1 contract on anvil, deployed as its own deploy script does.

Source: `contracts/Stablecoin.sol`, byte for byte from worldliberty/usd1-smart-contracts @ a881f281
(sha256 `USD1_SOURCE_SHA256`; provenance in contracts/README.md), compiled with its original compiler
solc 0.8.14 against npm @openzeppelin/contracts(-upgradeable) 4.8.1 (`OZ_REMAPPINGS`).

`deploy_usd1` follows `script/DeployStablecoin.s.sol`: `new Stablecoin()` (the implementation),
`new ProxyAdmin()`, `new TransparentUpgradeableProxy(impl, proxyAdmin, initialize(name, symbol))`,
then `impl.initialize(name, symbol)`. The deployer owns both the token and the ProxyAdmin.

Every action returns the mined `TxReceipt` (block, logs); with `check=True` (the default) a revert
raises `TxFailed`, with `check=False` the reverted receipt is returned. Privileged actions are sent
from `Usd1Token.owner`, the owner this object believes in: `accept_ownership` moves it, and
`sync_owner()` re-reads it from the chain (after a reorg that orphaned an ownership change).

Facts the tests check (NOTES.md): `mint` mints to the owner only, `burn` burns the owner's balance;
pause and freeze block transfers and approvals but not mint or burn; `renounceOwnership` reverts.

`Usd1Traffic` is the seeded random traffic of a devnet chain that runs the real USD1 (the devnet
spec's `token="usd1"`): the owner mints to itself, hands tokens to holders and burns its own
balance; holders transfer among themselves (some transfers revert). It sends no control action:
those are the tests' to make.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import keccak

from indexer.devnet.contract import (
    ANVIL_ACCOUNT0,
    DevnetContract,
    PausableToken,
    Rpc,
    TxReceipt,
    calldata,
    checksum,
    deploy_contract,
    topic0,
)
from indexer.devnet.solc import CONTRACTS_DIR, OZ_REMAPPINGS, USD1_SOLC, Artifact, compile_sources
from indexer.devnet.traffic import TokenTraffic

USD1_SOURCE = CONTRACTS_DIR / "Stablecoin.sol"
USD1_SOURCE_SHA256 = "9e14fa4404a656d9c4898fd421d843fe947eb6745c47cf081b805ac063177bce"
USD1_V2_SOURCE = CONTRACTS_DIR / "DevnetStablecoinV2.sol"  # ours: the upgrade target
PROXY_ADMIN_UNIT = "@openzeppelin/contracts/proxy/transparent/ProxyAdmin.sol"  # imports the proxy

USD1_NAME = "World Liberty Financial USD"
# Where `deploy_usd1` from anvil account 0 puts the contracts on a fresh chain: CREATE(account0,
# nonce) for the implementation (0), the ProxyAdmin (1) and the proxy, i.e. the token (2).
DEVNET_USD1_IMPLEMENTATION_ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DEVNET_USD1_PROXY_ADMIN_ADDRESS = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
DEVNET_USD1_ADDRESS = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"
USD1_SYMBOL = "USD1"
USD1_DECIMALS = 18
_GAS_INITIALIZE = 500_000

# EIP-1967: keccak256("eip1967.proxy.implementation") - 1 and keccak256("eip1967.proxy.admin") - 1.
IMPLEMENTATION_SLOT = int.from_bytes(keccak(text="eip1967.proxy.implementation"), "big") - 1
ADMIN_SLOT = int.from_bytes(keccak(text="eip1967.proxy.admin"), "big") - 1

# Every event the USD1 proxy (and its ProxyAdmin) can emit, as the source declares it.
USD1_EVENT_SIGNATURES: dict[str, str] = {
    "Transfer": "Transfer(address,address,uint256)",
    "Approval": "Approval(address,address,uint256)",
    "Mint": "Mint(address,address,uint256)",
    "Burn": "Burn(address,address,uint256)",
    "Freeze": "Freeze(address,address)",
    "Unfreeze": "Unfreeze(address,address)",
    "Paused": "Paused(address)",
    "Unpaused": "Unpaused(address)",
    "OwnershipTransferStarted": "OwnershipTransferStarted(address,address)",
    "OwnershipTransferred": "OwnershipTransferred(address,address)",
    "Initialized": "Initialized(uint8)",
    "Upgraded": "Upgraded(address)",
    "AdminChanged": "AdminChanged(address,address)",
    "BeaconUpgraded": "BeaconUpgraded(address)",
}
USD1_TOPICS: dict[str, str] = {name: topic0(sig) for name, sig in USD1_EVENT_SIGNATURES.items()}


@dataclass(frozen=True, slots=True)
class Usd1Artifacts:
    stablecoin: Artifact
    stablecoin_v2: Artifact
    proxy_admin: Artifact
    proxy: Artifact  # TransparentUpgradeableProxy


def compile_usd1(cache_dir: Path | None = None) -> Usd1Artifacts:
    """Stablecoin, DevnetStablecoinV2, ProxyAdmin and TransparentUpgradeableProxy with solc 0.8.14
    (one compilation, cached). Blocking."""
    compiled = compile_sources(
        [USD1_SOURCE, USD1_V2_SOURCE, PROXY_ADMIN_UNIT],
        compiler=USD1_SOLC,
        remappings=OZ_REMAPPINGS,
        cache_dir=cache_dir,
    )
    return Usd1Artifacts(
        stablecoin=compiled.get("Stablecoin", USD1_SOURCE.name),
        stablecoin_v2=compiled.get("DevnetStablecoinV2", USD1_V2_SOURCE.name),
        proxy_admin=compiled.get("ProxyAdmin"),
        proxy=compiled.get("TransparentUpgradeableProxy"),
    )


def _word_address(word: int) -> str:
    return checksum("0x" + word.to_bytes(32, "big")[12:].hex())


class Usd1Token(PausableToken):
    """The USD1 proxy: Stablecoin's functions plus EIP-1967 slot reads. Amounts in base units."""

    def __init__(self, rpc: Rpc, address: str, *, owner: str = ANVIL_ACCOUNT0) -> None:
        super().__init__(rpc, address, owner=owner, decimals=USD1_DECIMALS)

    # -- transaction builders (JSON tx requests; also usable in anvil_reorg pairs) ----------------

    def mint_tx(self, amount: int) -> dict[str, Any]:
        """Mint `amount` to the owner (USD1 mints only to its owner)."""
        return self.tx(self.owner, calldata("mint(uint256)", ["uint256"], [amount]))

    def burn_tx(self, amount: int) -> dict[str, Any]:
        """Burn `amount` of the owner's own balance."""
        return self.tx(self.owner, calldata("burn(uint256)", ["uint256"], [amount]))

    def freeze_tx(self, account: str) -> dict[str, Any]:
        return self.tx(self.owner, calldata("freeze(address)", ["address"], [checksum(account)]))

    def unfreeze_tx(self, account: str) -> dict[str, Any]:
        return self.tx(self.owner, calldata("unfreeze(address)", ["address"], [checksum(account)]))

    # -- owner actions ---------------------------------------------------------------------------

    async def mint(self, amount: int, *, check: bool = True) -> TxReceipt:
        return await self.send(self.mint_tx(amount), check=check)

    async def burn(self, amount: int, *, check: bool = True) -> TxReceipt:
        return await self.send(self.burn_tx(amount), check=check)

    async def freeze(self, account: str, *, check: bool = True) -> TxReceipt:
        return await self.send(self.freeze_tx(account), check=check)

    async def unfreeze(self, account: str, *, check: bool = True) -> TxReceipt:
        return await self.send(self.unfreeze_tx(account), check=check)

    async def transfer_ownership(self, new_owner: str, *, check: bool = True) -> TxReceipt:
        """Step 1 of Ownable2Step: sets the pending owner (OwnershipTransferStarted)."""
        return await self.transact(
            "transferOwnership(address)", ["address"], [checksum(new_owner)], sender=self.owner, check=check
        )

    async def accept_ownership(self, sender: str, *, check: bool = True) -> TxReceipt:
        """Step 2, sent by the pending owner (OwnershipTransferred); on success `owner` follows."""
        receipt = await self.transact("acceptOwnership()", sender=sender, check=check)
        if receipt.ok:
            self.owner = sender
        return receipt

    async def renounce_ownership(self, *, check: bool = False) -> TxReceipt:
        """Always reverts in USD1 ("Unsupported"): the mined receipt has status 0."""
        return await self.transact("renounceOwnership()", sender=self.owner, check=check)

    async def sync_owner(self) -> str:
        """Re-read the owner from the chain (e.g. after a reorg) and send as it from now on."""
        self.owner = await self.current_owner()
        return self.owner

    # -- reads -----------------------------------------------------------------------------------

    async def pending_owner(self, block: int | str = "latest") -> str:
        return await self.read_address("pendingOwner()", block)

    async def is_frozen(self, account: str, block: int | str = "latest") -> bool:
        """Stablecoin's public `frozen(address)` mapping."""
        return bool(
            (await self.read("frozen(address)", ["bool"], ["address"], [checksum(account)], block))[0]
        )

    async def implementation(self, block: int | str = "latest") -> str:
        """The EIP-1967 implementation slot of the proxy (eth_getStorageAt)."""
        return _word_address(await self.storage_at(IMPLEMENTATION_SLOT, block))

    async def admin(self, block: int | str = "latest") -> str:
        """The EIP-1967 admin slot of the proxy (the ProxyAdmin contract, or whoever replaced it)."""
        return _word_address(await self.storage_at(ADMIN_SLOT, block))


class ProxyAdmin(DevnetContract):
    """OpenZeppelin 4.8.1 ProxyAdmin (Ownable): upgrades and re-admins the USD1 proxy."""

    @property
    def owner(self) -> str:
        return self.default_sender

    def upgrade_tx(self, proxy: str, implementation: str) -> dict[str, Any]:
        """The `upgrade(proxy, implementation)` transaction, from the owner (to submit unmined)."""
        data = calldata(
            "upgrade(address,address)", ["address", "address"], [checksum(proxy), checksum(implementation)]
        )
        return self.tx(None, data)

    async def upgrade(self, proxy: str, implementation: str, *, check: bool = True) -> TxReceipt:
        """`upgrade(proxy, implementation)`: the proxy emits Upgraded(implementation)."""
        return await self.send(self.upgrade_tx(proxy, implementation), check=check)

    async def change_proxy_admin(self, proxy: str, new_admin: str, *, check: bool = True) -> TxReceipt:
        """`changeProxyAdmin(proxy, newAdmin)`: the proxy emits AdminChanged(this, newAdmin); this
        ProxyAdmin can no longer upgrade it afterwards. (A transparent proxy refuses token calls from
        its admin: an EOA made admin cannot use the token any more.)"""
        return await self.transact(
            "changeProxyAdmin(address,address)",
            ["address", "address"],
            [checksum(proxy), checksum(new_admin)],
            check=check,
        )

    async def transfer_ownership(self, new_owner: str, *, check: bool = True) -> TxReceipt:
        """Ownable (one step): OwnershipTransferred on the ProxyAdmin; `owner` follows on success."""
        receipt = await self.transact(
            "transferOwnership(address)", ["address"], [checksum(new_owner)], check=check
        )
        if receipt.ok:
            self.default_sender = new_owner.lower()
        return receipt

    async def current_owner(self, block: int | str = "latest") -> str:
        return await self.read_address("owner()", block)

    async def proxy_implementation(self, proxy: str, block: int | str = "latest") -> str:
        out = await self.read(
            "getProxyImplementation(address)", ["address"], ["address"], [checksum(proxy)], block
        )
        return checksum(out[0])

    async def proxy_admin(self, proxy: str, block: int | str = "latest") -> str:
        out = await self.read("getProxyAdmin(address)", ["address"], ["address"], [checksum(proxy)], block)
        return checksum(out[0])


async def deploy_v2_implementation(rpc: Rpc, artifacts: Usd1Artifacts, deployer: str) -> str:
    """Deploy and initialize (as the script does for V1) the DevnetStablecoinV2 implementation
    from `deployer` (unlocked); returns its address. Nothing points at it until an upgrade."""
    receipt = await deploy_contract(rpc, artifacts.stablecoin_v2, deployer=deployer)
    assert receipt.contract_address is not None
    impl = DevnetContract(rpc, receipt.contract_address, default_sender=deployer)
    await impl.transact(
        "initialize(string,string)", ["string", "string"], [USD1_NAME, USD1_SYMBOL], gas=_GAS_INITIALIZE
    )
    return impl.address


@dataclass(frozen=True, slots=True)
class Usd1Deployment:
    """What `deploy_usd1` made: the token (proxy), its ProxyAdmin, the implementation, and the
    four deployment receipts in script order."""

    token: Usd1Token
    proxy_admin: ProxyAdmin
    implementation: str
    artifacts: Usd1Artifacts
    implementation_receipt: TxReceipt
    proxy_admin_receipt: TxReceipt
    proxy_receipt: TxReceipt  # Upgraded, OwnershipTransferred, Initialized, AdminChanged
    implementation_init_receipt: TxReceipt

    async def deploy_v2(self, *, deployer: str | None = None) -> str:
        """Deploy (and initialize, as the script does for V1) the DevnetStablecoinV2 implementation;
        returns its address. The proxy still runs V1 until `proxy_admin.upgrade`."""
        return await deploy_v2_implementation(
            self.token.rpc, self.artifacts, deployer or self.proxy_admin.owner
        )

    async def upgrade_to_v2(self) -> TxReceipt:
        """Deploy DevnetStablecoinV2 and upgrade the proxy to it through the ProxyAdmin."""
        return await self.proxy_admin.upgrade(self.token.address, await self.deploy_v2())


async def deploy_usd1(
    rpc: Rpc,
    *,
    name: str = USD1_NAME,
    symbol: str = USD1_SYMBOL,
    deployer: str = ANVIL_ACCOUNT0,
    cache_dir: Path | None = None,
) -> Usd1Deployment:
    """Deploy the real USD1 as `script/DeployStablecoin.s.sol` does, from `deployer` (unlocked;
    default anvil account 0). Compiles on first use (cached), off the event loop."""
    arts = await asyncio.to_thread(compile_usd1, cache_dir)
    impl_r = await deploy_contract(rpc, arts.stablecoin, deployer=deployer)
    admin_r = await deploy_contract(rpc, arts.proxy_admin, deployer=deployer)
    assert impl_r.contract_address is not None and admin_r.contract_address is not None
    init = calldata("initialize(string,string)", ["string", "string"], [name, symbol])
    proxy_r = await deploy_contract(
        rpc,
        arts.proxy,
        ["address", "address", "bytes"],
        [checksum(impl_r.contract_address), checksum(admin_r.contract_address), bytes.fromhex(init[2:])],
        deployer=deployer,
    )
    assert proxy_r.contract_address is not None
    impl = DevnetContract(rpc, impl_r.contract_address, default_sender=deployer)
    init_r = await impl.send(impl.tx(deployer, init, _GAS_INITIALIZE))
    return Usd1Deployment(
        token=Usd1Token(rpc, proxy_r.contract_address, owner=deployer),
        proxy_admin=ProxyAdmin(rpc, admin_r.contract_address, default_sender=deployer),
        implementation=impl.address,
        artifacts=arts,
        implementation_receipt=impl_r,
        proxy_admin_receipt=admin_r,
        proxy_receipt=proxy_r,
        implementation_init_receipt=init_r,
    )


class Usd1Traffic(TokenTraffic):
    """Seeded random traffic on the real USD1, within its rule that only the owner mints (to
    itself) and burns (its own balance): owner mints, owner-to-holder distributions, owner burns,
    holder transfers (some reverting). No control actions (freeze, pause, ownership, upgrade)."""

    token: Usd1Token

    def __init__(self, token: Usd1Token, **kwargs: Any) -> None:
        super().__init__(token, **kwargs)

    async def mint(self) -> str:
        amount = self._amount()
        return await self._send("mint", self.token.mint_tx(amount), {"amount": amount})

    async def burn(self, owner_balance: int) -> str:
        amount = self._amount(owner_balance)
        return await self._send("burn", self.token.burn_tx(amount), {"amount": amount})

    async def distribute(self, owner_balance: int) -> str:
        to = self.rng.choice(self.holders)
        amount = self._amount(owner_balance)
        tx = self.token.transfer_tx(self.token.owner, to, amount)
        return await self._send("distribute", tx, {"to": to, "amount": amount})

    async def step(self) -> str:
        """One random operation; returns its tx hash. Reads balances from the chain, so it stays
        right after reorgs."""
        sample = self.rng.sample(self.holders, k=min(4, len(self.holders)))
        balances = await self._balances(sample)
        owner_balance = await self.token.balance_of(self.token.owner)
        funded = [(h, b) for h, b in zip(sample, balances, strict=True) if b > 0]
        roll = self.rng.random()
        if roll < 0.2 or (owner_balance == 0 and (not funded or roll < 0.5)):
            return await self.mint()
        if owner_balance > 0 and (roll < 0.45 or not funded):
            return await self.distribute(owner_balance)
        if owner_balance > 0 and roll < 0.55:
            return await self.burn(owner_balance)
        holder, balance = self.rng.choice(funded)
        if roll < 0.55 + self.fail_ratio:
            return await self.failing_transfer(holder, balance)
        return await self.transfer(holder, balance)

    def replacement_txs(self, txs_per_block: int, funded: dict[str, int]) -> list[dict[str, Any]]:
        """Per replacement block: `txs_per_block` owner mints, each followed by the owner handing
        part of it to a random holder (owner-sent only, so no holder needs gas at the fork point)."""
        txs: list[dict[str, Any]] = []
        for _ in range(txs_per_block):
            amount = self._amount()
            txs.append(self.token.mint_tx(amount))
            to = self.rng.choice(self.holders)
            txs.append(self.token.transfer_tx(self.token.owner, to, self._amount(amount)))
        return txs
