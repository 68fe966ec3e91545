"""A real Uniswap V2 USD1/USDC-like pool on a devnet chain, at a deterministic address.

The pool is deployed from a dedicated account, anvil's default account 9
(`DEVNET_POOL_DEPLOYER`, unlocked on every anvil), with fixed nonces on a fresh chain:

    nonce 0  the quote token ("USDC", 6 decimals; indexer/market/contracts/TestToken.sol)
    nonce 1  UniswapV2Factory (npm @uniswap/v2-core artifact), feeToSetter = the deployer
    nonce 2  factory.createPair(USD1, USDC)     -> the pair, by CREATE2 from the factory
    nonce 3  USDC.mint(pair, liquidity)
    nonce 4  pair.mint(deployer)                 (after USD1 reached the pair, see below)

USD1 can only be minted by its owner (anvil account 0, whose nonce the traffic generator moves),
so the owner mints the pool's USD1 and the deployer's USD1 stash; neither changes an address. The
quote token and factory addresses follow from (deployer, nonce) and the pair address from the
factory, both token addresses and the pair's init code, so on a fresh devnet the pair is always
`DEVNET_POOL_ADDRESS` (checked at deployment) and can be written into config/devnet.yaml.

`DevnetPool.depeg()` moves the price with one large real swap (selling the deployer's USD1 stash
into the pair, or buying USD1 with freshly minted quote); `restore()` swaps back to the peg.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import structlog
from eth_abi import decode, encode
from eth_utils import keccak, to_checksum_address

from indexer.devnet.anvil import REPO_ROOT
from indexer.devnet.solc import Artifact, compile_contract
from indexer.devnet.token import (
    DETERMINISTIC_TOKEN_ADDRESS,
    Rpc,
    TestToken,
    TxFailed,
    TxReceipt,
    calldata,
    wait_receipt,
)
from indexer.market.depth import PairSpec, v2_get_amount_in, v2_get_amount_out

# anvil's default account 9 (mnemonic "test test ... junk"): unlocked, 10,000 ETH, nonce 0.
DEVNET_POOL_DEPLOYER = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"
QUOTE_SOURCE = REPO_ROOT / "indexer" / "market" / "contracts" / "TestToken.sol"
V2_BUILD = REPO_ROOT / "node_modules" / "@uniswap" / "v2-core" / "build"

QUOTE_DECIMALS = 6
DEFAULT_LIQUIDITY_TOKENS = 100_000  # whole tokens on each side at price 1.0
DEFAULT_STASH_TOKENS = 50_000  # the deployer's USD1 for depeg swaps
V2_FEE_BPS = 30

_GAS_DEPLOY = 6_000_000
_GAS_CALL = 300_000
_GAS_CREATE_PAIR = 4_000_000


def create_address(sender: str, nonce: int) -> str:
    """CREATE address of (sender, nonce) for nonce < 2**64 (RLP of [address, nonce])."""
    addr = bytes.fromhex(sender.removeprefix("0x"))
    if nonce == 0:
        enc_nonce = b"\x80"
    elif nonce < 0x80:
        enc_nonce = bytes([nonce])
    else:
        raw = nonce.to_bytes((nonce.bit_length() + 7) // 8, "big")
        enc_nonce = bytes([0x80 + len(raw)]) + raw
    payload = b"\x94" + addr + enc_nonce
    return to_checksum_address(keccak(bytes([0xC0 + len(payload)]) + payload)[12:])


def create2_address(factory: str, salt: bytes, init_code: bytes) -> str:
    data = b"\xff" + bytes.fromhex(factory.removeprefix("0x")) + salt + keccak(init_code)
    return to_checksum_address(keccak(data)[12:])


def _sorted_pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if int(a, 16) < int(b, 16) else (b, a)


def _v2_artifact(name: str) -> dict[str, Any]:
    path = V2_BUILD / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing; run `make install` (npm install @uniswap/v2-core)")
    d = json.loads(path.read_text())
    return {"abi": d["abi"], "bytecode": "0x" + str(d["bytecode"]).removeprefix("0x")}


def v2_pair_address(factory: str, token_a: str, token_b: str) -> str:
    """UniswapV2Factory.createPair's CREATE2 address for the npm v2-core pair bytecode."""
    t0, t1 = _sorted_pair(token_a, token_b)
    salt = keccak(bytes.fromhex(t0[2:]) + bytes.fromhex(t1[2:]))
    init_code = bytes.fromhex(_v2_artifact("UniswapV2Pair")["bytecode"][2:])
    return create2_address(factory, salt, init_code)


DEVNET_QUOTE_ADDRESS = create_address(DEVNET_POOL_DEPLOYER, 0)
DEVNET_V2_FACTORY_ADDRESS = create_address(DEVNET_POOL_DEPLOYER, 1)
# v2_pair_address(DEVNET_V2_FACTORY_ADDRESS, DETERMINISTIC_TOKEN_ADDRESS, DEVNET_QUOTE_ADDRESS),
# pinned here (and checked by tests and at deployment) so config/devnet.yaml can name it.
DEVNET_POOL_ADDRESS = "0x6e3f620c0D4933e7Edaf74c94bD58F382228aee8"


async def compile_quote_token(cache_dir: Path | None = None) -> Artifact:
    """The quote token (the market tests' open-mint TestToken), compiled by npm solc and cached."""
    return await asyncio.to_thread(compile_contract, QUOTE_SOURCE, "TestToken", cache_dir=cache_dir)


@dataclass(frozen=True, slots=True)
class PoolPrice:
    """The pool's state after a read: reserves in base units and the USD1 price in quote."""

    token_reserve: int
    quote_reserve: int
    price: Fraction  # quote per USD1, whole units

    @property
    def deviation_bps(self) -> float:
        return float((self.price - 1) * 10_000)


class DevnetPool:
    """A deployed USD1/quote Uniswap V2 pair and the helpers that move its price."""

    def __init__(
        self,
        rpc: Rpc,
        token: TestToken,
        pair: str,
        quote: str,
        *,
        deployer: str = DEVNET_POOL_DEPLOYER,
        quote_decimals: int = QUOTE_DECIMALS,
    ) -> None:
        self.rpc = rpc
        self.token = token
        self.address = to_checksum_address(pair)
        self.quote = to_checksum_address(quote)
        self.deployer = to_checksum_address(deployer)
        self.spec = PairSpec(
            token_is_token0=int(token.address, 16) < int(self.quote, 16),
            token_decimals=token.decimals,
            quote_decimals=quote_decimals,
        )
        self._log = structlog.get_logger("devnet.pool")

    # -- reads -------------------------------------------------------------------------------
    async def _call(self, to: str, data: str) -> bytes:
        out = await self.rpc.rpc("eth_call", [{"to": to, "data": data}, "latest"])
        return bytes.fromhex(str(out)[2:])

    async def reserves(self) -> tuple[int, int]:
        """(USD1 reserve, quote reserve) in base units."""
        r0, r1, _ = decode(
            ["uint112", "uint112", "uint32"],
            await self._call(self.address, calldata("getReserves()", [], [])),
        )
        return (int(r0), int(r1)) if self.spec.token_is_token0 else (int(r1), int(r0))

    async def state(self) -> PoolPrice:
        x, y = await self.reserves()
        return PoolPrice(x, y, self.spec.raw_to_price(Fraction(y, x)))

    async def price(self) -> Fraction:
        return (await self.state()).price

    # -- swaps -------------------------------------------------------------------------------
    async def _send(self, to: str, data: str, gas: int = _GAS_CALL) -> TxReceipt:
        tx = {"from": self.deployer.lower(), "to": to, "data": data, "gas": hex(gas)}
        receipt = await wait_receipt(self.rpc, str(await self.rpc.rpc("eth_sendTransaction", [tx])))
        if not receipt.ok:
            raise TxFailed(receipt)
        return receipt

    def _swap_data(self, token_out: int, quote_out: int) -> str:
        out0, out1 = (token_out, quote_out) if self.spec.token_is_token0 else (quote_out, token_out)
        return calldata(
            "swap(uint256,uint256,address,bytes)",
            ["uint256", "uint256", "address", "bytes"],
            [out0, out1, self.deployer, b""],
        )

    async def sell_token(self, amount: int) -> TxReceipt:
        """Sell `amount` USD1 base units from the deployer's stash into the pair (price falls)."""
        x, y = await self.reserves()
        out = v2_get_amount_out(amount, x, y, V2_FEE_BPS)
        transfer = calldata("transfer(address,uint256)", ["address", "uint256"], [self.address, amount])
        await self._send(self.token.address, transfer)
        return await self._send(self.address, self._swap_data(0, out))

    async def buy_token(self, amount_out: int) -> TxReceipt:
        """Buy `amount_out` USD1 base units with freshly minted quote (price rises)."""
        x, y = await self.reserves()
        pay = v2_get_amount_in(amount_out, y, x, V2_FEE_BPS)
        mint = calldata("mint(address,uint256)", ["address", "uint256"], [self.address, pay])
        await self._send(self.quote, mint)
        return await self._send(self.address, self._swap_data(amount_out, 0))

    async def move_to(self, price: Fraction) -> PoolPrice:
        """Swap until the USD1 price is about `price` (quote per USD1; within the 0.3 % fee)."""
        if price <= 0:
            raise ValueError("price must be positive")
        x, y = await self.reserves()
        raw = self.spec.price_to_raw(price)  # target quote/token in base units
        # Constant product (the fee stays in the pool, so the result is a hair off the target):
        # x' * y' = x * y and y' / x' = raw  ->  x' = sqrt(x * y / raw).
        target_x = math.isqrt(int(Fraction(x * y) / raw))
        if target_x > x:
            stash = await self.token.balance_of(self.deployer)
            need = target_x - x
            if need > stash:
                raise ValueError(f"depeg needs {need} USD1 base units, the deployer holds {stash}")
            await self.sell_token(need)
        elif target_x < x:
            await self.buy_token(x - target_x)
        after = await self.state()
        self._log.info("pool_price_moved", pool=self.address, price=f"{float(after.price):.6f}")
        return after

    async def depeg(self, bps: float = -1000.0) -> PoolPrice:
        """One large swap that moves the price `bps` basis points off the 1.0 peg (negative:
        USD1 below the peg, by selling the stash). Default -1000 bps: 0.90, far past the
        50 bps warning and 200 bps critical alert thresholds."""
        return await self.move_to(Fraction(1) + Fraction(bps).limit_denominator(10**6) / 10_000)

    async def restore(self) -> PoolPrice:
        """Swap back to the peg (1.0)."""
        return await self.move_to(Fraction(1))


async def deploy_v2_pool(
    rpc: Rpc,
    token: TestToken,
    *,
    cache_dir: Path | None = None,
    liquidity_tokens: int = DEFAULT_LIQUIDITY_TOKENS,
    stash_tokens: int = DEFAULT_STASH_TOKENS,
    expect_address: str | None = DEVNET_POOL_ADDRESS,
) -> DevnetPool:
    """Deploy the USD1/USDC V2 pool with `liquidity_tokens` on each side (price 1.0) and give
    the deployer a USD1 stash for `depeg`. On a fresh chain with USD1 at its deterministic address
    the pair lands at DEVNET_POOL_ADDRESS; `expect_address` (default) checks that."""
    deployer = DEVNET_POOL_DEPLOYER.lower()
    nonce = int(await rpc.rpc("eth_getTransactionCount", [deployer, "latest"]), 16)
    if nonce != 0:
        raise RuntimeError(f"pool deployer {DEVNET_POOL_DEPLOYER} has nonce {nonce}: is the chain fresh?")
    quote_art = await compile_quote_token(cache_dir)
    factory_art = _v2_artifact("UniswapV2Factory")

    def tx(n: int, data: str, to: str | None = None, gas: int = _GAS_CALL) -> dict[str, Any]:
        out: dict[str, Any] = {"from": deployer, "data": data, "gas": hex(gas), "nonce": hex(n)}
        if to is not None:
            out["to"] = to
        return out

    quote_addr = create_address(DEVNET_POOL_DEPLOYER, 0)
    factory_addr = create_address(DEVNET_POOL_DEPLOYER, 1)
    pair_addr = v2_pair_address(factory_addr, token.address, quote_addr)
    if expect_address is not None and (
        pair_addr.lower() != expect_address.lower()
        or token.address.lower() != DETERMINISTIC_TOKEN_ADDRESS.lower()
    ):
        raise RuntimeError(f"the pool would land at {pair_addr}, expected {expect_address}")
    quote_ctor = encode(["string", "string", "uint8"], ["USD Coin (devnet)", "USDC", QUOTE_DECIMALS]).hex()
    factory_ctor = encode(["address"], [DEVNET_POOL_DEPLOYER]).hex()
    token_unit, quote_unit = 10**token.decimals, 10**QUOTE_DECIMALS
    first = [
        tx(0, quote_art.bytecode + quote_ctor, gas=_GAS_DEPLOY),
        tx(1, factory_art["bytecode"] + factory_ctor, gas=_GAS_DEPLOY),
        tx(
            2,
            calldata("createPair(address,address)", ["address", "address"], [token.address, quote_addr]),
            factory_addr,
            _GAS_CREATE_PAIR,
        ),
        tx(
            3,
            calldata(
                "mint(address,uint256)", ["address", "uint256"], [pair_addr, liquidity_tokens * quote_unit]
            ),
            quote_addr,
        ),
    ]
    hashes = [str(await rpc.rpc("eth_sendTransaction", [t])) for t in first]
    hashes.append(await token.submit(token.mint_tx(pair_addr, liquidity_tokens * token_unit)))
    if stash_tokens > 0:
        hashes.append(await token.submit(token.mint_tx(DEVNET_POOL_DEPLOYER, stash_tokens * token_unit)))
    receipts = [await wait_receipt(rpc, h) for h in hashes]
    failed = [r for r in receipts if not r.ok]
    if failed:
        raise TxFailed(failed[0])
    last = await wait_receipt(
        rpc,
        str(
            await rpc.rpc(
                "eth_sendTransaction",
                [tx(4, calldata("mint(address)", ["address"], [DEVNET_POOL_DEPLOYER]), pair_addr)],
            )
        ),
    )
    if not last.ok:
        raise TxFailed(last)
    got = decode(
        ["address"],
        bytes.fromhex(
            str(
                await rpc.rpc(
                    "eth_call",
                    [
                        {
                            "to": factory_addr,
                            "data": calldata(
                                "getPair(address,address)",
                                ["address", "address"],
                                [token.address, quote_addr],
                            ),
                        },
                        "latest",
                    ],
                )
            )[2:]
        ),
    )[0]
    if str(got).lower() != pair_addr.lower():
        raise RuntimeError(f"factory created the pair at {got}, computed {pair_addr}")
    pool = DevnetPool(rpc, token, pair_addr, quote_addr)
    structlog.get_logger("devnet.pool").info(
        "devnet_pool_deployed",
        pool=pool.address,
        quote=pool.quote,
        factory=factory_addr,
        liquidity=liquidity_tokens,
        block=last.block_number,
    )
    return pool


__all__ = [
    "DEFAULT_LIQUIDITY_TOKENS",
    "DEVNET_POOL_ADDRESS",
    "DEVNET_POOL_DEPLOYER",
    "DEVNET_QUOTE_ADDRESS",
    "DEVNET_V2_FACTORY_ADDRESS",
    "DevnetPool",
    "PoolPrice",
    "compile_quote_token",
    "create2_address",
    "create_address",
    "deploy_v2_pool",
    "v2_pair_address",
]
