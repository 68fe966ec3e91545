"""PURE price and depth math for the token at AMM pools and order books (no I/O).

Vocabulary used throughout:

* *token* is the tracked stablecoin (USD1); *quote* is the other asset of the venue.
* A *price* is quote per token in whole units, as an exact `Fraction` (`Decimal` at the API edge,
  `float` only at the metrics edge). Its USD value is `price x quote_usd`.
* Depth at band `b` bps (DESIGN §3): `bid` is the amount of token that can be **sold** into the
  venue before its price falls below `peg x (1 - b)`; `ask` the amount that can be **bought**
  before it rises above `peg x (1 + b)`. A side whose price is already beyond its edge has depth 0.
  Amounts are token base units; `depth_usd` values them at the peg (`whole tokens x peg_usd`).
* Fees: the bid amount is the gross amount the seller sends (fee included, as a swap's
  `amountIn`); the ask amount is what the buyer receives. Uniswap V2 keeps its 0.3% fee in the
  reserves (the post-trade price is read from the reserves, `k` grows); Uniswap V3 takes its fee out
  of the input before the price moves (`SwapMath.computeSwapStep`). Both are reproduced exactly.

The Uniswap V3 part is an integer port of `TickMath`, `SqrtPriceMath`, `SwapMath`,
`TickBitmap.nextInitializedTickWithinOneWord` and the `UniswapV3Pool.swap` loop (v3-core 1.0.1),
so a simulated swap returns the same amounts and final price as the contract, rounding included.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal
from fractions import Fraction
from typing import Literal

Side = Literal["bid", "ask"]
SIDES: tuple[Side, Side] = ("bid", "ask")

_DEC = Context(prec=50)


class DepthMathError(ValueError):
    """Inputs that describe no valid pool or book state (zero reserves, bad ranges, ...)."""


# ---------------------------------------------------------------------------------------------
# Generic helpers
# ---------------------------------------------------------------------------------------------


def to_fraction(value: float | int | str | Decimal | Fraction) -> Fraction:
    """Exact rational from a config number: floats go through their shortest repr (1.0 -> 1)."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, float):
        return Fraction(Decimal(repr(value)))
    if isinstance(value, str):
        return Fraction(Decimal(value))
    return Fraction(value)


def to_decimal(value: Fraction, places: int = 30) -> Decimal:
    """Decimal rendering of an exact rational, rounded to `places` significant digits beyond 0."""
    ctx = Context(prec=max(places, 1) + 20)
    return ctx.divide(Decimal(value.numerator), Decimal(value.denominator))


def band_label(bps: int) -> str:
    return f"{bps}bps"


def band_target(peg_usd: Fraction, quote_usd: Fraction, bps: int, side: Side) -> Fraction:
    """Band edge for `side` as a token price in quote units (whole units)."""
    if quote_usd <= 0 or peg_usd <= 0:
        raise DepthMathError("peg and quote USD values must be positive")
    factor = Fraction(10_000 - bps, 10_000) if side == "bid" else Fraction(10_000 + bps, 10_000)
    return peg_usd * factor / quote_usd


def deviation_bps(price_usd: Fraction, peg_usd: Fraction) -> Fraction:
    """(price - peg) / peg x 1e4."""
    return (price_usd - peg_usd) / peg_usd * 10_000


def depth_usd(amount_raw: int, decimals: int, peg_usd: Fraction) -> Fraction:
    return Fraction(amount_raw, 10**decimals) * peg_usd


@dataclass(frozen=True)
class PairSpec:
    """Which side of a two-token pool is the tracked token, and both tokens' decimals."""

    token_is_token0: bool
    token_decimals: int
    quote_decimals: int

    def raw_to_price(self, raw_quote_per_token: Fraction) -> Fraction:
        """quote/token in base units -> quote/token in whole units."""
        return raw_quote_per_token * Fraction(10**self.token_decimals, 10**self.quote_decimals)

    def price_to_raw(self, price: Fraction) -> Fraction:
        return price * Fraction(10**self.quote_decimals, 10**self.token_decimals)

    def orient(self, amount0: int, amount1: int) -> tuple[int, int]:
        """(token0 amount, token1 amount) -> (token amount, quote amount)."""
        return (amount0, amount1) if self.token_is_token0 else (amount1, amount0)


@dataclass(frozen=True)
class PoolComposition:
    """What a two-token pool holds, valued nominally: the token at the peg, the quote asset at its
    `quote_usd`. Valuing the token at the pool's own price would make a V2 pool's share 50% by
    construction; at the peg the share measures the imbalance (like a Curve pool's balances)."""

    token_share: Fraction  # token value / pool value, 0..1
    tvl_usd: Fraction  # token value + quote value


def pool_composition(
    token_raw: int, quote_raw: int, pair: PairSpec, peg_usd: Fraction, quote_usd: Fraction
) -> PoolComposition:
    """The token's share of the pool's value and the pool's value in USD, from its two balances
    (base units): token x peg_usd and quote x quote_usd."""
    if token_raw < 0 or quote_raw < 0:
        raise DepthMathError("pool balances must not be negative")
    if peg_usd <= 0 or quote_usd <= 0:
        raise DepthMathError("peg and quote USD values must be positive")
    token_value = Fraction(token_raw, 10**pair.token_decimals) * peg_usd
    tvl = token_value + Fraction(quote_raw, 10**pair.quote_decimals) * quote_usd
    if tvl == 0:
        raise DepthMathError("pool holds nothing")
    return PoolComposition(token_share=token_value / tvl, tvl_usd=tvl)


# ---------------------------------------------------------------------------------------------
# Uniswap V2 (constant product, 0.3% fee kept in the reserves)
# ---------------------------------------------------------------------------------------------

V2_FEE_BPS = 30  # Uniswap V2: 0.3%; PancakeSwap V2 charges 25


@dataclass(frozen=True)
class V2State:
    reserve0: int
    reserve1: int
    fee_bps: int = V2_FEE_BPS  # the pair's K check credits amountIn x (10000 - fee_bps) / 10000


def v2_get_amount_out(amount_in: int, reserve_in: int, reserve_out: int, fee_bps: int = V2_FEE_BPS) -> int:
    """UniswapV2Library.getAmountOut: the most the pair's K check lets out for `amount_in`."""
    if amount_in <= 0:
        return 0
    if reserve_in <= 0 or reserve_out <= 0:
        raise DepthMathError("insufficient liquidity")
    with_fee = amount_in * (10_000 - fee_bps)
    return (with_fee * reserve_out) // (reserve_in * 10_000 + with_fee)


def v2_get_amount_in(amount_out: int, reserve_in: int, reserve_out: int, fee_bps: int = V2_FEE_BPS) -> int:
    """UniswapV2Library.getAmountIn: input needed (fee included) to take `amount_out`."""
    if amount_out <= 0:
        return 0
    if reserve_in <= 0 or amount_out >= reserve_out:
        raise DepthMathError("insufficient liquidity")
    return (reserve_in * amount_out * 10_000) // ((reserve_out - amount_out) * (10_000 - fee_bps)) + 1


def _v2_sides(state: V2State, pair: PairSpec) -> tuple[int, int]:
    x, y = pair.orient(state.reserve0, state.reserve1)
    if x <= 0 or y <= 0:
        raise DepthMathError("pool has no reserves")
    return x, y


def v2_price(state: V2State, pair: PairSpec) -> Fraction:
    """Marginal (fee-free) token price in quote units: reserve_quote / reserve_token, decimals adjusted."""
    x, y = _v2_sides(state, pair)
    return pair.raw_to_price(Fraction(y, x))


def v2_price_after_sell(x: int, y: int, amount_in: int, fee_bps: int = V2_FEE_BPS) -> Fraction:
    """Raw quote/token price after selling `amount_in` token (the whole input stays in the pool)."""
    return Fraction(y - v2_get_amount_out(amount_in, x, y, fee_bps), x + amount_in)


def v2_price_after_buy(x: int, y: int, amount_out: int, fee_bps: int = V2_FEE_BPS) -> Fraction:
    """Raw quote/token price after buying `amount_out` token, paying `v2_get_amount_in`."""
    return Fraction(y + v2_get_amount_in(amount_out, y, x, fee_bps), x - amount_out)


def v2_depth(state: V2State, pair: PairSpec, target_price: Fraction, side: Side) -> int:
    """Largest token amount (base units) whose swap leaves the price inside the band edge.

    bid: max `a` with price_after_sell(a) ≥ target. ask: max `o` with price_after_buy(o) ≤ target.
    Both prices are monotone in the amount, so an integer bisection gives the exact answer of
    the contract's integer arithmetic.
    """
    x, y = _v2_sides(state, pair)
    fee = state.fee_bps
    if not 0 <= fee < 10_000:
        raise DepthMathError("fee_bps must be in [0, 10000)")
    target = pair.price_to_raw(target_price)
    if side == "bid":
        if Fraction(y, x) < target:
            return 0
        if target <= 0:
            raise DepthMathError("bid target must be positive")
        # Fee-free estimate: x' = sqrt(k / target); grow until the price is below the target.
        hi = max(1, math.isqrt(x * y * target.denominator // target.numerator) - x + 1)
        while v2_price_after_sell(x, y, hi, fee) >= target:
            hi *= 2
        lo = 0  # invariant: ok(lo), not ok(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if v2_price_after_sell(x, y, mid, fee) >= target:
                lo = mid
            else:
                hi = mid
        return lo
    if Fraction(y, x) > target:
        return 0
    lo, hi = 0, x  # buying all of x is impossible
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if v2_price_after_buy(x, y, mid, fee) <= target:
            lo = mid
        else:
            hi = mid
    return lo


# ---------------------------------------------------------------------------------------------
# Uniswap V3 (concentrated liquidity), exact integer port of v3-core 1.0.1
# ---------------------------------------------------------------------------------------------

MIN_TICK = -887272
MAX_TICK = 887272
MIN_SQRT_RATIO = 4295128739
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342
Q96 = 1 << 96
MAX_UINT256 = (1 << 256) - 1
MAX_UINT160 = (1 << 160) - 1
MAX_INT256 = (1 << 255) - 1

_TICK_FACTORS = (
    (0x2, 0xFFF97272373D413259A46990580E213A),
    (0x4, 0xFFF2E50F5F656932EF12357CF3C7FDCC),
    (0x8, 0xFFE5CACA7E10E4E61C3624EAA0941CD0),
    (0x10, 0xFFCB9843D60F6159C9DB58835C926644),
    (0x20, 0xFF973B41FA98C081472E6896DFB254C0),
    (0x40, 0xFF2EA16466C96A3843EC78B326B52861),
    (0x80, 0xFE5DEE046A99A2A811C461F1969C3053),
    (0x100, 0xFCBE86C7900A88AEDCFFC83B479AA3A4),
    (0x200, 0xF987A7253AC413176F2B074CF7815E54),
    (0x400, 0xF3392B0822B70005940C7A398E4B70F3),
    (0x800, 0xE7159475A2C29B7443B29C7FA6E889D9),
    (0x1000, 0xD097F3BDFD2022B8845AD8F792AA5825),
    (0x2000, 0xA9F746462D870FDF8A65DC1F90E061E5),
    (0x4000, 0x70D869A156D2A1B890BB3DF62BAF32F7),
    (0x8000, 0x31BE135F97D08FD981231505542FCFA6),
    (0x10000, 0x9AA508B5B7A84E1C677DE54F3E99BC9),
    (0x20000, 0x5D6AF8DEDB81196699C329225EE604),
    (0x40000, 0x2216E584F5FA1EA926041BEDFE98),
    (0x80000, 0x48A170391F7DC42444E8FA2),
)


def get_sqrt_ratio_at_tick(tick: int) -> int:
    """TickMath.getSqrtRatioAtTick: sqrt(1.0001^tick) x 2^96 as Q64.96, bit-exact."""
    abs_tick = abs(tick)
    if abs_tick > MAX_TICK:
        raise DepthMathError(f"tick {tick} out of range")
    ratio = 0xFFFCB933BD6FAD37AA2D162D1A594001 if abs_tick & 0x1 else 0x100000000000000000000000000000000
    for bit, factor in _TICK_FACTORS:
        if abs_tick & bit:
            ratio = (ratio * factor) >> 128
    if tick > 0:
        ratio = MAX_UINT256 // ratio
    return (ratio >> 32) + (0 if ratio % (1 << 32) == 0 else 1)


def get_tick_at_sqrt_ratio(sqrt_price_x96: int) -> int:
    """TickMath.getTickAtSqrtRatio: the greatest tick with getSqrtRatioAtTick(tick) ≤ price.

    Found by bisection over getSqrtRatioAtTick (monotone), which is that function's definition.
    """
    if not MIN_SQRT_RATIO <= sqrt_price_x96 < MAX_SQRT_RATIO:
        raise DepthMathError("sqrt price out of range")
    lo, hi = MIN_TICK, MAX_TICK  # ratio(lo) <= p < ratio(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if get_sqrt_ratio_at_tick(mid) <= sqrt_price_x96:
            lo = mid
        else:
            hi = mid
    return lo


def _mul_div(a: int, b: int, d: int) -> int:
    return (a * b) // d


def _mul_div_up(a: int, b: int, d: int) -> int:
    return -((-(a * b)) // d)


def _div_up(a: int, d: int) -> int:
    return -((-a) // d)


def get_amount0_delta(sqrt_a: int, sqrt_b: int, liquidity: int, round_up: bool) -> int:
    """SqrtPriceMath.getAmount0Delta: L * (sqrt(b) - sqrt(a)) / (sqrt(a) * sqrt(b)) in token0 base units."""
    if sqrt_a > sqrt_b:
        sqrt_a, sqrt_b = sqrt_b, sqrt_a
    if sqrt_a <= 0:
        raise DepthMathError("sqrt price must be positive")
    n1, n2 = liquidity << 96, sqrt_b - sqrt_a
    if round_up:
        return _div_up(_mul_div_up(n1, n2, sqrt_b), sqrt_a)
    return _mul_div(n1, n2, sqrt_b) // sqrt_a


def get_amount1_delta(sqrt_a: int, sqrt_b: int, liquidity: int, round_up: bool) -> int:
    """SqrtPriceMath.getAmount1Delta: L * (sqrt(b) - sqrt(a)) in token1 base units."""
    if sqrt_a > sqrt_b:
        sqrt_a, sqrt_b = sqrt_b, sqrt_a
    if round_up:
        return _mul_div_up(liquidity, sqrt_b - sqrt_a, Q96)
    return _mul_div(liquidity, sqrt_b - sqrt_a, Q96)


def _next_sqrt_from_amount0(sqrt_p: int, liquidity: int, amount: int, add: bool) -> int:
    if amount == 0:
        return sqrt_p
    n1 = liquidity << 96
    product = amount * sqrt_p
    if add:
        if product <= MAX_UINT256 and n1 + product <= MAX_UINT256:
            return _mul_div_up(n1, sqrt_p, n1 + product)
        return _div_up(n1, n1 // sqrt_p + amount)
    if product > MAX_UINT256 or n1 <= product:
        raise DepthMathError("amount0 out exceeds the liquidity")
    result = _mul_div_up(n1, sqrt_p, n1 - product)
    if result > MAX_UINT160:
        raise DepthMathError("sqrt price overflow")
    return result


def _next_sqrt_from_amount1(sqrt_p: int, liquidity: int, amount: int, add: bool) -> int:
    if add:
        result = sqrt_p + (amount << 96) // liquidity
        if result > MAX_UINT160:
            raise DepthMathError("sqrt price overflow")
        return result
    quotient = _div_up(amount << 96, liquidity)
    if sqrt_p <= quotient:
        raise DepthMathError("amount1 out exceeds the liquidity")
    return sqrt_p - quotient


def get_next_sqrt_price_from_input(sqrt_p: int, liquidity: int, amount_in: int, zero_for_one: bool) -> int:
    if sqrt_p <= 0 or liquidity <= 0:
        raise DepthMathError("price and liquidity must be positive")
    if zero_for_one:
        return _next_sqrt_from_amount0(sqrt_p, liquidity, amount_in, True)
    return _next_sqrt_from_amount1(sqrt_p, liquidity, amount_in, True)


def get_next_sqrt_price_from_output(sqrt_p: int, liquidity: int, amount_out: int, zero_for_one: bool) -> int:
    if sqrt_p <= 0 or liquidity <= 0:
        raise DepthMathError("price and liquidity must be positive")
    if zero_for_one:
        return _next_sqrt_from_amount1(sqrt_p, liquidity, amount_out, False)
    return _next_sqrt_from_amount0(sqrt_p, liquidity, amount_out, False)


def compute_swap_step(
    sqrt_current: int, sqrt_target: int, liquidity: int, amount_remaining: int, fee_pips: int
) -> tuple[int, int, int, int]:
    """SwapMath.computeSwapStep -> (sqrt_next, amount_in, amount_out, fee_amount)."""
    zero_for_one = sqrt_current >= sqrt_target
    exact_in = amount_remaining >= 0
    amount_in = amount_out = 0
    if exact_in:
        remaining_less_fee = _mul_div(amount_remaining, 1_000_000 - fee_pips, 1_000_000)
        amount_in = (
            get_amount0_delta(sqrt_target, sqrt_current, liquidity, True)
            if zero_for_one
            else get_amount1_delta(sqrt_current, sqrt_target, liquidity, True)
        )
        if remaining_less_fee >= amount_in:
            sqrt_next = sqrt_target
        else:
            sqrt_next = get_next_sqrt_price_from_input(
                sqrt_current, liquidity, remaining_less_fee, zero_for_one
            )
    else:
        amount_out = (
            get_amount1_delta(sqrt_target, sqrt_current, liquidity, False)
            if zero_for_one
            else get_amount0_delta(sqrt_current, sqrt_target, liquidity, False)
        )
        if -amount_remaining >= amount_out:
            sqrt_next = sqrt_target
        else:
            sqrt_next = get_next_sqrt_price_from_output(
                sqrt_current, liquidity, -amount_remaining, zero_for_one
            )
    is_max = sqrt_target == sqrt_next
    if zero_for_one:
        if not (is_max and exact_in):
            amount_in = get_amount0_delta(sqrt_next, sqrt_current, liquidity, True)
        if not (is_max and not exact_in):
            amount_out = get_amount1_delta(sqrt_next, sqrt_current, liquidity, False)
    else:
        if not (is_max and exact_in):
            amount_in = get_amount1_delta(sqrt_current, sqrt_next, liquidity, True)
        if not (is_max and not exact_in):
            amount_out = get_amount0_delta(sqrt_current, sqrt_next, liquidity, False)
    if not exact_in and amount_out > -amount_remaining:
        amount_out = -amount_remaining
    if exact_in and sqrt_next != sqrt_target:
        fee_amount = amount_remaining - amount_in
    else:
        fee_amount = _mul_div_up(amount_in, fee_pips, 1_000_000 - fee_pips)
    return sqrt_next, amount_in, amount_out, fee_amount


def word_of_tick(tick: int, tick_spacing: int) -> int:
    """Bitmap word holding `tick` (compressed towards -inf, as TickBitmap does)."""
    return (tick // tick_spacing) >> 8


@dataclass(frozen=True)
class V3State:
    """What the pool's storage says, enough to replay any swap exactly.

    `ticks` maps every initialized tick in the known bitmap words to its liquidityNet.
    `known_words` is the inclusive range of bitmap words that were read (None: all of them,
    i.e. `ticks` is the complete set). A swap that needs a word outside that range stops there
    and reports `complete=False` (the depth is then a lower bound).
    """

    sqrt_price_x96: int
    tick: int
    liquidity: int
    fee: int  # pips (1e-6)
    tick_spacing: int
    ticks: Mapping[int, int] = field(default_factory=dict)
    known_words: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not MIN_SQRT_RATIO <= self.sqrt_price_x96 < MAX_SQRT_RATIO:
            raise DepthMathError("sqrtPriceX96 out of range (pool not initialized?)")
        if self.tick_spacing <= 0 or not 0 <= self.fee < 1_000_000 or self.liquidity < 0:
            raise DepthMathError("invalid pool parameters")
        for t in self.ticks:
            if t % self.tick_spacing:
                raise DepthMathError(f"initialized tick {t} is not a multiple of the spacing")


@dataclass(frozen=True)
class SwapResult:
    amount0: int  # pool's view: positive = paid into the pool, negative = paid out
    amount1: int
    sqrt_price_x96: int
    tick: int
    liquidity: int
    complete: bool  # False if the swap stopped at the edge of the known bitmap words


class _Bitmap:
    def __init__(self, state: V3State) -> None:
        self.spacing = state.tick_spacing
        self.compressed = sorted(t // self.spacing for t in state.ticks)
        self.known = state.known_words

    def next_within_word(self, tick: int, lte: bool) -> tuple[int, bool] | None:
        """TickBitmap.nextInitializedTickWithinOneWord, or None if that word was not read."""
        compressed = tick // self.spacing  # Python floors: the contract's round-towards--inf
        c = self.compressed
        if lte:
            word, bit = compressed >> 8, compressed % 256
            if self.known is not None and not self.known[0] <= word <= self.known[1]:
                return None
            i = bisect.bisect_right(c, compressed) - 1
            if i >= 0 and c[i] >= compressed - bit:
                return c[i] * self.spacing, True
            return (compressed - bit) * self.spacing, False
        start = compressed + 1
        word, bit = start >> 8, start % 256
        if self.known is not None and not self.known[0] <= word <= self.known[1]:
            return None
        i = bisect.bisect_left(c, start)
        if i < len(c) and c[i] <= start + (255 - bit):
            return c[i] * self.spacing, True
        return (start + 255 - bit) * self.spacing, False


def v3_swap(
    state: V3State, zero_for_one: bool, amount_specified: int, sqrt_price_limit_x96: int
) -> SwapResult:
    """Replay UniswapV3Pool.swap on `state` (amount_specified > 0: exact input, < 0: exact output)."""
    if amount_specified == 0:
        raise DepthMathError("amount_specified must be non-zero")
    p = state.sqrt_price_x96
    if zero_for_one:
        if not (MIN_SQRT_RATIO < sqrt_price_limit_x96 < p):
            raise DepthMathError("price limit must be below the price and above MIN_SQRT_RATIO")
    elif not (p < sqrt_price_limit_x96 < MAX_SQRT_RATIO):
        raise DepthMathError("price limit must be above the price and below MAX_SQRT_RATIO")
    bitmap = _Bitmap(state)
    exact_input = amount_specified > 0
    remaining, calculated = amount_specified, 0
    tick, liquidity = state.tick, state.liquidity
    complete = True
    while remaining != 0 and p != sqrt_price_limit_x96:
        start = p
        nxt = bitmap.next_within_word(tick, zero_for_one)
        if nxt is None:
            complete = False
            break
        tick_next, initialized = nxt
        tick_next = max(MIN_TICK, min(MAX_TICK, tick_next))
        sqrt_next = get_sqrt_ratio_at_tick(tick_next)
        beyond = sqrt_next < sqrt_price_limit_x96 if zero_for_one else sqrt_next > sqrt_price_limit_x96
        target = sqrt_price_limit_x96 if beyond else sqrt_next
        p, amount_in, amount_out, fee_amount = compute_swap_step(p, target, liquidity, remaining, state.fee)
        if exact_input:
            remaining -= amount_in + fee_amount
            calculated -= amount_out
        else:
            remaining += amount_out
            calculated += amount_in + fee_amount
        if p == sqrt_next:
            if initialized:
                net = state.ticks[tick_next]
                liquidity += -net if zero_for_one else net
                if liquidity < 0:
                    raise DepthMathError("liquidity went negative: inconsistent tick data")
            tick = tick_next - 1 if zero_for_one else tick_next
        elif p != start:
            tick = get_tick_at_sqrt_ratio(p)
    if zero_for_one == exact_input:
        amount0, amount1 = amount_specified - remaining, calculated
    else:
        amount0, amount1 = calculated, amount_specified - remaining
    return SwapResult(amount0, amount1, p, tick, liquidity, complete)


def sqrt_price_x96_to_raw(sqrt_price_x96: int) -> Fraction:
    """token1 per token0 in base units."""
    return Fraction(sqrt_price_x96 * sqrt_price_x96, 1 << 192)


def v3_price(state: V3State, pair: PairSpec) -> Fraction:
    raw = sqrt_price_x96_to_raw(state.sqrt_price_x96)
    return pair.raw_to_price(raw if pair.token_is_token0 else 1 / raw)


def _sqrt_x96(raw_price: Fraction, round_up: bool) -> int:
    """sqrt(raw_price) x 2^96 rounded down or up."""
    num, den = raw_price.numerator << 192, raw_price.denominator
    q, r = divmod(num, den)
    s = math.isqrt(q)
    if round_up and (s * s != q or r):
        s += 1
    return s


@dataclass(frozen=True)
class V3Depth:
    amount: int  # token base units
    complete: bool  # False: the swap ran past the bitmap words read; `amount` is a lower bound


def v3_depth(state: V3State, pair: PairSpec, target_price: Fraction, side: Side) -> V3Depth:
    """Exact token amount swappable before the price crosses `target_price` (quote per token).

    The pool's own swap with `sqrtPriceLimitX96` at the band edge (rounded to the inside) and an
    unbounded amount stops exactly at the edge; its token leg is the depth.
    """
    if target_price <= 0:
        raise DepthMathError("target price must be positive")
    raw_token_price = pair.price_to_raw(target_price)
    # In the pool's orientation (token1 per token0) the band edge is:
    raw = raw_token_price if pair.token_is_token0 else 1 / raw_token_price
    # Selling token0 / buying token1 moves the pool price down.
    zero_for_one = (side == "bid") == pair.token_is_token0
    # Keep the final token price inside the band: for token0 the bid edge is a floor on the pool
    # price (round the limit up) and the ask edge a ceiling (round down); token1 is the mirror.
    limit = _sqrt_x96(raw, round_up=zero_for_one)
    limit = max(MIN_SQRT_RATIO + 1, min(MAX_SQRT_RATIO - 1, limit))
    p = state.sqrt_price_x96
    if (zero_for_one and limit >= p) or (not zero_for_one and limit <= p):
        return V3Depth(0, True)
    exact_in = side == "bid"
    result = v3_swap(state, zero_for_one, MAX_INT256 if exact_in else -MAX_INT256, limit)
    amount = abs(result.amount0 if pair.token_is_token0 else result.amount1)
    if result.complete and amount > 0:
        amount = _largest_inside(state, pair, target_price, side, zero_for_one, amount)
    return V3Depth(amount, result.complete)


def _largest_inside(
    state: V3State, pair: PairSpec, target: Fraction, side: Side, zero_for_one: bool, amount: int
) -> int:
    """Trim rounding dust: the largest amount <= `amount` whose plain swap (no price limit) ends
    inside the band. Stopping at the limit and swapping the same amount without one can differ by
    a unit or two of input, because the last step's target and rounding differ."""
    far = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1

    def inside(a: int) -> bool:
        if a == 0:
            return True
        r = v3_swap(state, zero_for_one, a if side == "bid" else -a, far)
        raw = sqrt_price_x96_to_raw(r.sqrt_price_x96)
        price = pair.raw_to_price(raw if pair.token_is_token0 else 1 / raw)
        return price >= target if side == "bid" else price <= target

    if inside(amount):
        return amount
    bad, step = amount, 1
    good = max(0, amount - step)
    while not inside(good):
        bad, step = good, step * 2
        good = max(0, amount - step)
    while bad - good > 1:
        mid = (good + bad) // 2
        if inside(mid):
            good = mid
        else:
            bad = mid
    return good


# ---------------------------------------------------------------------------------------------
# Order books
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Level:
    price: Decimal  # quote per token
    qty: Decimal  # tokens


@dataclass(frozen=True)
class OrderBook:
    """Bids best (highest) first, asks best (lowest) first."""

    bids: tuple[Level, ...]
    asks: tuple[Level, ...]

    @staticmethod
    def from_levels(bids: Sequence[Level], asks: Sequence[Level]) -> OrderBook:
        return OrderBook(
            tuple(sorted(bids, key=lambda lv: lv.price, reverse=True)),
            tuple(sorted(asks, key=lambda lv: lv.price)),
        )

    @property
    def crossed(self) -> bool:
        return bool(self.bids and self.asks and self.bids[0].price >= self.asks[0].price)


def book_mid(book: OrderBook) -> Fraction:
    if not book.bids or not book.asks:
        raise DepthMathError("book side is empty")
    return (Fraction(book.bids[0].price) + Fraction(book.asks[0].price)) / 2


def book_depth(book: OrderBook, target_price: Fraction, side: Side) -> Fraction:
    """Tokens fillable before the price passes the band edge: bids at or above a bid edge, asks
    at or below an ask edge (each level is consumed whole; the next level would cross)."""
    if side == "bid":
        return sum((Fraction(lv.qty) for lv in book.bids if Fraction(lv.price) >= target_price), Fraction(0))
    return sum((Fraction(lv.qty) for lv in book.asks if Fraction(lv.price) <= target_price), Fraction(0))


# ---------------------------------------------------------------------------------------------
# One venue's view: price, deviation and depth per (side, band) in USD
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VenueView:
    price: Fraction  # quote per token
    price_usd: Fraction
    deviation_bps: Fraction
    depth_tokens: Mapping[tuple[Side, int], Fraction]  # whole tokens
    depth_usd: Mapping[tuple[Side, int], Fraction]  # whole tokens x peg
    complete: bool  # False: a lower bound (V3 ticks past those read; a book snapshot ending inside a band)
    composition: PoolComposition | None = None  # pools only: token share and TVL


def _view(
    price: Fraction,
    peg_usd: Fraction,
    quote_usd: Fraction,
    depth_tokens: dict[tuple[Side, int], Fraction],
    complete: bool,
    composition: PoolComposition | None = None,
) -> VenueView:
    price_usd = price * quote_usd
    return VenueView(
        price=price,
        price_usd=price_usd,
        deviation_bps=deviation_bps(price_usd, peg_usd),
        depth_tokens=depth_tokens,
        depth_usd={k: v * peg_usd for k, v in depth_tokens.items()},
        complete=complete,
        composition=composition,
    )


def view_v2(
    state: V2State, pair: PairSpec, peg_usd: Fraction, quote_usd: Fraction, bands_bps: Sequence[int]
) -> VenueView:
    unit = 10**pair.token_decimals
    depth = {
        (side, b): Fraction(v2_depth(state, pair, band_target(peg_usd, quote_usd, b, side), side), unit)
        for side in SIDES
        for b in bands_bps
    }
    x, y = _v2_sides(state, pair)  # a V2 pair's value is its reserves
    composition = pool_composition(x, y, pair, peg_usd, quote_usd)
    return _view(v2_price(state, pair), peg_usd, quote_usd, depth, True, composition)


def view_v3(
    state: V3State,
    pair: PairSpec,
    peg_usd: Fraction,
    quote_usd: Fraction,
    bands_bps: Sequence[int],
    balances: tuple[int, int] | None = None,
) -> VenueView:
    """Price and depth from the swap state; with `balances` (the pool contract's token0 and token1
    balances) also the composition: every position's tokens in range or not, plus uncollected fees."""
    unit = 10**pair.token_decimals
    depth: dict[tuple[Side, int], Fraction] = {}
    complete = True
    for side in SIDES:
        for b in bands_bps:
            d = v3_depth(state, pair, band_target(peg_usd, quote_usd, b, side), side)
            depth[(side, b)] = Fraction(d.amount, unit)
            complete = complete and d.complete
    composition = (
        None if balances is None else pool_composition(*pair.orient(*balances), pair, peg_usd, quote_usd)
    )
    return _view(v3_price(state, pair), peg_usd, quote_usd, depth, complete, composition)


def book_reaches(book: OrderBook, target_price: Fraction, side: Side) -> bool:
    """Whether the snapshot holds a level beyond the band edge. An exchange returns only its top
    levels; when all of them sit inside the band, more may follow and `book_depth` is a lower
    bound."""
    if side == "bid":
        return any(Fraction(lv.price) < target_price for lv in book.bids)
    return any(Fraction(lv.price) > target_price for lv in book.asks)


def view_book(book: OrderBook, peg_usd: Fraction, quote_usd: Fraction, bands_bps: Sequence[int]) -> VenueView:
    targets = {(side, b): band_target(peg_usd, quote_usd, b, side) for side in SIDES for b in bands_bps}
    depth = {key: book_depth(book, t, key[0]) for key, t in targets.items()}
    complete = all(book_reaches(book, t, side) for (side, _), t in targets.items())
    return _view(book_mid(book), peg_usd, quote_usd, depth, complete)
