"""Uniswap V2/V3 pool readers over web3's AsyncWeb3 (the HTTP provider is passed in).

Every read pins one block number and sends its calls as JSON-RPC batches at that block, so the
state handed to the pure math (`indexer.market.depth`) is one consistent snapshot:

* V2: `getReserves` (token0/token1 and both decimals are read once and cached).
* V3: `slot0`, `liquidity` and the pool's `balanceOf` on both tokens (its composition), then the
  tick-bitmap words `tick_words` either side of the current tick, then `ticks(i)` for every
  initialized tick found in them (fee, tickSpacing, tokens and decimals cached). The result says
  which words were read; depth beyond them is not guessed.

Any failure raises `VenueError` (kind `rpc` or `pool`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import AsyncWeb3

from indexer.market.depth import (
    DepthMathError,
    PairSpec,
    V2State,
    V3State,
    word_of_tick,
)
from indexer.market.errors import VenueError


def _view(name: str, inputs: list[tuple[str, str]], outputs: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": n, "type": t} for n, t in inputs],
        "outputs": [{"name": f"o{i}", "type": t} for i, t in enumerate(outputs)],
    }


_ERC20_ABI = [_view("decimals", [], ["uint8"]), _view("balanceOf", [("account", "address")], ["uint256"])]


_V2_ABI = [
    _view("token0", [], ["address"]),
    _view("token1", [], ["address"]),
    _view("getReserves", [], ["uint112", "uint112", "uint32"]),
]
_V3_ABI = [
    _view("token0", [], ["address"]),
    _view("token1", [], ["address"]),
    _view("fee", [], ["uint24"]),
    _view("tickSpacing", [], ["int24"]),
    _view("liquidity", [], ["uint128"]),
    # feeProtocol is uint8 in Uniswap and uint32 in PancakeSwap V3: decode the wider type.
    _view("slot0", [], ["uint160", "int24", "uint16", "uint16", "uint16", "uint32", "bool"]),
    _view("tickBitmap", [("wordPosition", "int16")], ["uint256"]),
    _view(
        "ticks",
        [("tick", "int24")],
        ["uint128", "int128", "uint256", "uint256", "int56", "uint160", "uint32", "bool"],
    ),
]

MAX_BATCH = 100  # calls per JSON-RPC batch


@dataclass(frozen=True)
class V2Snapshot:
    block: int
    state: V2State
    pair: PairSpec


@dataclass(frozen=True)
class V3Snapshot:
    block: int
    state: V3State
    pair: PairSpec
    balances: tuple[int, int]  # the pool's token0 and token1 balances at `block` (base units)


def _rpc_error(what: str, exc: BaseException) -> VenueError:
    return VenueError("rpc", f"{what}: {type(exc).__name__}: {exc}")


async def _batch(w3: AsyncWeb3[Any], calls: list[Any]) -> list[Any]:
    """Run contract-call coroutines-to-be as JSON-RPC batches of at most MAX_BATCH."""
    out: list[Any] = []
    for i in range(0, len(calls), MAX_BATCH):
        async with w3.batch_requests() as batch:
            for c in calls[i : i + MAX_BATCH]:
                batch.add(c)
            replies = await batch.async_execute()
        for r in replies:
            if isinstance(r, dict) and "error" in r:
                raise VenueError("rpc", f"batched call failed: {r['error']}")
        out.extend(replies)
    return out


class _PoolReader:
    abi: list[dict[str, Any]]

    def __init__(self, w3: AsyncWeb3[Any], pool: str, token: str) -> None:
        self.w3 = w3
        self.pool = w3.eth.contract(address=AsyncWeb3.to_checksum_address(pool), abi=self.abi)
        self.token = token.lower()
        self._pair: PairSpec | None = None
        self._erc20: tuple[Any, Any] | None = None  # token0, token1 contracts

    async def _pair_spec(self, extra: list[Any] | None = None) -> tuple[PairSpec, list[Any]]:
        """token side + decimals (cached), plus any `extra` static calls on first use."""
        if self._pair is not None and extra is None:
            return self._pair, []
        fns = self.pool.functions
        t0, t1, *rest = await _batch(self.w3, [fns.token0().call(), fns.token1().call(), *(extra or [])])
        if self.token not in (t0.lower(), t1.lower()):
            raise VenueError("pool", f"pool {self.pool.address} holds {t0}/{t1}, not the token {self.token}")
        token_is_token0 = t0.lower() == self.token
        erc0, erc1 = (self.w3.eth.contract(address=a, abi=_ERC20_ABI) for a in (t0, t1))
        self._erc20 = (erc0, erc1)
        d0, d1 = await _batch(self.w3, [c.functions.decimals().call() for c in self._erc20])
        self._pair = PairSpec(
            token_is_token0=token_is_token0,
            token_decimals=d0 if token_is_token0 else d1,
            quote_decimals=d1 if token_is_token0 else d0,
        )
        return self._pair, rest


class UniswapV2Reader(_PoolReader):
    abi = _V2_ABI

    def __init__(self, w3: AsyncWeb3[Any], pool: str, token: str, fee_bps: int = 30) -> None:
        super().__init__(w3, pool, token)
        self.fee_bps = fee_bps

    async def read(self) -> V2Snapshot:
        try:
            pair, _ = await self._pair_spec()
            block = await self.w3.eth.block_number
            (r0, r1, _ts) = (
                await _batch(self.w3, [self.pool.functions.getReserves().call(block_identifier=block)])
            )[0]
        except VenueError:
            raise
        except Exception as exc:
            raise _rpc_error("uniswap v2 read", exc) from exc
        if r0 <= 0 or r1 <= 0:
            raise VenueError("pool", "pool has no reserves")
        return V2Snapshot(block, V2State(r0, r1, self.fee_bps), pair)


class UniswapV3Reader(_PoolReader):
    abi = _V3_ABI

    def __init__(self, w3: AsyncWeb3[Any], pool: str, token: str, tick_words: int = 4) -> None:
        if not 1 <= tick_words <= 1000:
            raise ValueError("tick_words must be between 1 and 1000")
        super().__init__(w3, pool, token)
        self.tick_words = tick_words
        self._fee: int | None = None
        self._spacing: int | None = None

    async def read(self) -> V3Snapshot:
        try:
            return await self._read()
        except VenueError:
            raise
        except DepthMathError as exc:
            raise VenueError("pool", str(exc)) from exc
        except Exception as exc:
            raise _rpc_error("uniswap v3 read", exc) from exc

    async def _read(self) -> V3Snapshot:
        fns = self.pool.functions
        if self._fee is None or self._spacing is None:
            pair, (fee, spacing) = await self._pair_spec([fns.fee().call(), fns.tickSpacing().call()])
            self._fee, self._spacing = int(fee), int(spacing)
        else:
            pair, _ = await self._pair_spec()
        fee, spacing = self._fee, self._spacing
        block = await self.w3.eth.block_number
        assert self._erc20 is not None  # set with the pair spec
        slot0, liquidity, balance0, balance1 = await _batch(
            self.w3,
            [
                fns.slot0().call(block_identifier=block),
                fns.liquidity().call(block_identifier=block),
                *(c.functions.balanceOf(self.pool.address).call(block_identifier=block) for c in self._erc20),
            ],
        )
        sqrt_price, tick = int(slot0[0]), int(slot0[1])
        if sqrt_price == 0:
            raise VenueError("pool", "pool is not initialized")
        center = word_of_tick(tick, spacing)
        # int16 word positions; MIN_TICK // 1 >> 8 = -3466, so clamping never hides real words
        words = list(range(max(-32768, center - self.tick_words), min(32767, center + self.tick_words) + 1))
        bitmaps = await _batch(self.w3, [fns.tickBitmap(w).call(block_identifier=block) for w in words])
        initialized = [
            ((w << 8) + bit) * spacing
            for w, bits in zip(words, bitmaps, strict=True)
            for bit in range(256)
            if (int(bits) >> bit) & 1
        ]
        infos = await _batch(self.w3, [fns.ticks(t).call(block_identifier=block) for t in initialized])
        ticks = {t: int(info[1]) for t, info in zip(initialized, infos, strict=True)}
        state = V3State(
            sqrt_price_x96=sqrt_price,
            tick=tick,
            liquidity=int(liquidity),
            fee=fee,
            tick_spacing=spacing,
            ticks=ticks,
            known_words=(words[0], words[-1]),
        )
        return V3Snapshot(block, state, pair, (int(balance0), int(balance1)))
