"""Real Uniswap V2/V3 pools on a private anvil for the market tests.

- `Anvil`: a minimal launcher (free port, large code-size limit for the V3 factory); `stop()`
  kills and reaps the process.
- `compile_helpers()`: TestToken + V3Helper from `indexer/market/contracts/` with npm `solc`
  (`indexer.devnet.solc.compile_sources`), cached under `.usd1/cache/solc/`.
- `UniswapLab`: deploys tokens, the real V2 factory/pair and V3 factory/pool from the npm
  artifacts, adds liquidity and executes swaps (sync web3; used only for test set-up and checks).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

from web3 import Web3
from web3.contract import Contract

from indexer.devnet.solc import compile_sources
from indexer.market.depth import (
    MAX_SQRT_RATIO,
    MIN_SQRT_RATIO,
    PairSpec,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
    sqrt_price_x96_to_raw,
    v2_get_amount_in,
    v2_get_amount_out,
)

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "node_modules"
ANVIL_BIN = NODE_MODULES / "@foundry-rs/anvil-linux-amd64/bin/anvil"
CONTRACTS = ROOT / "indexer/market/contracts"
V2_BUILD = NODE_MODULES / "@uniswap/v2-core/build"
V3_ARTIFACTS = NODE_MODULES / "@uniswap/v3-core/artifacts/contracts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Anvil:
    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Anvil:
        self.proc = subprocess.Popen(
            [str(ANVIL_BIN), "--port", str(self.port), "--code-size-limit", "100000", "--silent"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"anvil exited with {self.proc.returncode}")
            try:
                req = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("anvil did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


def compile_helpers() -> dict[str, dict[str, Any]]:
    """{contract name: {"abi": ..., "bytecode": "0x..."}} for every .sol in the contracts dir."""
    compiled = compile_sources(sorted(CONTRACTS.glob("*.sol")))
    return {name: {"abi": a.abi, "bytecode": a.bytecode} for name, a in compiled.by_name().items()}


def _v2_artifact(name: str) -> dict[str, Any]:
    d = json.loads((V2_BUILD / f"{name}.json").read_text())
    return {"abi": d["abi"], "bytecode": "0x" + d["bytecode"].removeprefix("0x")}


def _v3_artifact(name: str) -> dict[str, Any]:
    d = json.loads((V3_ARTIFACTS / f"{name}.sol/{name}.json").read_text())
    return {"abi": d["abi"], "bytecode": d["bytecode"]}


def sqrt_price_for(price: Fraction, pair: PairSpec) -> int:
    """sqrtPriceX96 for a token price (quote per token, whole units) in the pool's orientation."""
    raw = pair.price_to_raw(price)
    if not pair.token_is_token0:
        raw = 1 / raw
    from math import isqrt

    return isqrt((raw.numerator << 192) // raw.denominator)


@dataclass
class V2Pool:
    pair: Contract
    token: Contract  # the USD1-like token
    quote: Contract
    spec: PairSpec


@dataclass
class V3Pool:
    pool: Contract
    token: Contract
    quote: Contract
    spec: PairSpec
    fee: int
    spacing: int


class UniswapLab:
    """Deploys and drives real Uniswap contracts on anvil through a sync Web3 (test side only)."""

    def __init__(self, url: str) -> None:
        self.w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
        self.me = self.w3.eth.accounts[0]
        self.art = compile_helpers()
        self._v3_factory: Contract | None = None
        self._v2_factory: Contract | None = None
        self._helper: Contract | None = None

    # -- plumbing --------------------------------------------------------------------------
    def deploy(self, artifact: dict[str, Any], *args: Any) -> Contract:
        c = self.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        tx = c.constructor(*args).transact({"from": self.me})
        rcpt = self.w3.eth.wait_for_transaction_receipt(tx)
        assert rcpt["status"] == 1, "deployment reverted"
        return cast(Contract, self.w3.eth.contract(address=rcpt["contractAddress"], abi=artifact["abi"]))

    def send(self, fn: Any) -> Any:
        tx = fn.transact({"from": self.me, "gas": 15_000_000})
        rcpt = self.w3.eth.wait_for_transaction_receipt(tx)
        assert rcpt["status"] == 1, f"transaction reverted: {fn.fn_name}"
        return rcpt

    def snapshot(self) -> str:
        return str(self.w3.provider.make_request("evm_snapshot", [])["result"])  # type: ignore[arg-type]

    def revert(self, snap: str) -> None:
        assert self.w3.provider.make_request("evm_revert", [snap])["result"]  # type: ignore[arg-type]

    # -- tokens ------------------------------------------------------------------------------
    def token(self, symbol: str, decimals: int) -> Contract:
        return self.deploy(self.art["TestToken"], symbol, symbol, decimals)

    def quote_tokens_around(self, token: Contract, decimals: int = 6) -> tuple[Contract, Contract]:
        """Two quote tokens, one sorting below `token` and one above (both pool orientations)."""
        lo = hi = None
        for i in range(40):
            q = self.token(f"USDC{i}", decimals)
            if int(q.address, 16) < int(token.address, 16):
                lo = lo or q
            else:
                hi = hi or q
            if lo is not None and hi is not None:
                return lo, hi
        raise RuntimeError("could not place quote tokens on both sides")

    def mint(self, token: Contract, to: str, amount: int) -> None:
        self.send(token.functions.mint(to, amount))

    # -- V2 ----------------------------------------------------------------------------------
    def v2_pool(self, token: Contract, quote: Contract, token_amount: int, quote_amount: int) -> V2Pool:
        if self._v2_factory is None:
            self._v2_factory = self.deploy(_v2_artifact("UniswapV2Factory"), self.me)
        f = self._v2_factory
        self.send(f.functions.createPair(token.address, quote.address))
        addr = f.functions.getPair(token.address, quote.address).call()
        pair = self.w3.eth.contract(address=addr, abi=_v2_artifact("UniswapV2Pair")["abi"])
        self.mint(token, addr, token_amount)
        self.mint(quote, addr, quote_amount)
        self.send(pair.functions.mint(self.me))
        t0 = pair.functions.token0().call()
        spec = PairSpec(
            token_is_token0=t0 == token.address,
            token_decimals=token.functions.decimals().call(),
            quote_decimals=quote.functions.decimals().call(),
        )
        return V2Pool(pair, token, quote, spec)

    def v2_reserves(self, p: V2Pool) -> tuple[int, int]:
        r0, r1, _ = p.pair.functions.getReserves().call()
        return (r0, r1) if p.spec.token_is_token0 else (r1, r0)  # (token, quote)

    def v2_price(self, p: V2Pool) -> Fraction:
        x, y = self.v2_reserves(p)
        return p.spec.raw_to_price(Fraction(y, x))

    def v2_sell_token(self, p: V2Pool, amount_in: int) -> None:
        x, y = self.v2_reserves(p)
        out = v2_get_amount_out(amount_in, x, y)
        self.mint(p.token, p.pair.address, amount_in)
        o0, o1 = (0, out) if p.spec.token_is_token0 else (out, 0)
        self.send(p.pair.functions.swap(o0, o1, self.me, b""))

    def v2_buy_token(self, p: V2Pool, amount_out: int) -> None:
        x, y = self.v2_reserves(p)
        pay = v2_get_amount_in(amount_out, y, x)
        self.mint(p.quote, p.pair.address, pay)
        o0, o1 = (amount_out, 0) if p.spec.token_is_token0 else (0, amount_out)
        self.send(p.pair.functions.swap(o0, o1, self.me, b""))

    # -- V3 ----------------------------------------------------------------------------------
    @property
    def helper(self) -> Contract:
        if self._helper is None:
            self._helper = self.deploy(self.art["V3Helper"])
        return self._helper

    def v3_pool(
        self,
        token: Contract,
        quote: Contract,
        fee: int,
        price: Fraction,
        positions: list[tuple[int, int, int]],
    ) -> V3Pool:
        """Pool at `price` (quote per token) with liquidity `L` on each (lower, upper) range given in
        tick-spacing units relative to the tick of price 1.0 (in the pool's orientation)."""
        if self._v3_factory is None:
            self._v3_factory = self.deploy(_v3_artifact("UniswapV3Factory"))
            self.send(self._v3_factory.functions.enableFeeAmount(100, 1))
        f = self._v3_factory
        self.send(f.functions.createPool(token.address, quote.address, fee))
        addr = f.functions.getPool(token.address, quote.address, fee).call()
        pool = self.w3.eth.contract(address=addr, abi=_v3_artifact("UniswapV3Pool")["abi"])
        spacing = pool.functions.tickSpacing().call()
        spec = PairSpec(
            token_is_token0=pool.functions.token0().call() == token.address,
            token_decimals=token.functions.decimals().call(),
            quote_decimals=quote.functions.decimals().call(),
        )
        self.send(pool.functions.initialize(sqrt_price_for(price, spec)))
        center = get_tick_at_sqrt_ratio(sqrt_price_for(Fraction(1), spec))
        center = round(center / spacing) * spacing
        helper = self.helper
        self.mint(token, helper.address, 10**40)
        self.mint(quote, helper.address, 10**40)
        for lo, hi, liquidity in positions:
            self.send(helper.functions.mint(addr, center + lo * spacing, center + hi * spacing, liquidity))
        return V3Pool(pool, token, quote, spec, fee, spacing)

    def v3_price(self, p: V3Pool) -> Fraction:
        sqrt_p = p.pool.functions.slot0().call()[0]
        raw = sqrt_price_x96_to_raw(sqrt_p)
        return p.spec.raw_to_price(raw if p.spec.token_is_token0 else 1 / raw)

    def v3_sell_token(self, p: V3Pool, amount_in: int) -> None:
        zero_for_one = p.spec.token_is_token0
        limit = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
        self.send(self.helper.functions.swap(p.pool.address, zero_for_one, amount_in, limit))

    def v3_buy_token(self, p: V3Pool, amount_out: int) -> None:
        zero_for_one = not p.spec.token_is_token0
        limit = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
        self.send(self.helper.functions.swap(p.pool.address, zero_for_one, -amount_out, limit))


def bps_between(a: Fraction, b: Fraction) -> Decimal:
    """(a - b) / b in basis points, for assertions."""
    f = (a - b) / b * 10_000
    return Decimal(f.numerator) / Decimal(f.denominator)


__all__ = [
    "Anvil",
    "UniswapLab",
    "V2Pool",
    "V3Pool",
    "bps_between",
    "compile_helpers",
    "get_sqrt_ratio_at_tick",
    "sqrt_price_for",
]
