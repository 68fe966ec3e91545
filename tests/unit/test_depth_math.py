"""Pure price/depth math: the V3 integer port, V2 constant product, order-book sums, checked
against Uniswap's published formulas (whitepaper, Decimal) on real recorded pool states.

Real states (copied from /work/shared/realdata/pools/, values verbatim):
* stablecoin_amm_pool_observations.csv, ethereum block 17,173,050, Uniswap V3 USDC/USDT 0.01%
  pool 0x3416cf6c708da44db2624d63ea0aaef7113527c6 (tx 0xeda67199...): sqrtPriceX96
  79218614293939350846248737538, liquidity 416258483197424778, tick -3.
* bsc_stable_pools_snapshot_2025-06_extracted.json (PancakeSwap, block unknown): V2 USDT/USD1
  0x109977931268a6f7CbCF61dC9218323345Ce8d0E reserves 124687100226370855702888 /
  124801199574313273906629 (both 18 dp); V3 USDT/USD1 0.01% 0x9c4Ee895e4f6Ce07Ada631C508D1306Db7502cCE
  sqrtRatioX96 79249879177462662226869601150, liquidity 19957355418646188477376181587, tick 5.
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.market.depth import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    Q96,
    SIDES,
    DepthMathError,
    Level,
    OrderBook,
    PairSpec,
    PoolComposition,
    V2State,
    V3State,
    band_target,
    book_depth,
    book_mid,
    deviation_bps,
    get_sqrt_ratio_at_tick,
    get_tick_at_sqrt_ratio,
    pool_composition,
    v2_depth,
    v2_price,
    v2_price_after_buy,
    v2_price_after_sell,
    v3_depth,
    v3_price,
    v3_swap,
    view_book,
    view_v2,
    view_v3,
)

ONE = Fraction(1)

# Uniswap V3 USDC(token0, 6dp)/USDT(token1, 6dp) 0.01% at block 17,173,050
ETH_SQRT_P = 79218614293939350846248737538
ETH_L = 416258483197424778
ETH_TICK = -3


def dec(f: Fraction) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 60
        return Decimal(f.numerator) / Decimal(f.denominator)


# --- TickMath -----------------------------------------------------------------------------


def test_tick_math_known_values() -> None:
    assert get_sqrt_ratio_at_tick(0) == Q96
    assert get_sqrt_ratio_at_tick(MIN_TICK) == MIN_SQRT_RATIO
    assert get_sqrt_ratio_at_tick(MAX_TICK) == MAX_SQRT_RATIO
    assert get_tick_at_sqrt_ratio(ETH_SQRT_P) == ETH_TICK
    assert get_tick_at_sqrt_ratio(79249879177462662226869601150) == 5  # the BSC pool's recorded tick


@given(st.integers(MIN_TICK, MAX_TICK - 1))
@settings(max_examples=200, deadline=None)
def test_tick_math_inverse_and_close_to_formula(tick: int) -> None:
    s = get_sqrt_ratio_at_tick(tick)
    assert get_tick_at_sqrt_ratio(s) == tick
    assert get_tick_at_sqrt_ratio(get_sqrt_ratio_at_tick(tick + 1) - 1) == tick
    with localcontext() as ctx:
        ctx.prec = 60
        exact = Decimal("1.0001") ** tick
        approx = (Decimal(s) / Decimal(Q96)) ** 2
        # constants accurate to ~1e-15; plus the Q64.96 quantum (one unit of s, doubled for P)
        assert abs(approx / exact - 1) < Decimal("1e-14") + Decimal(4) / Decimal(s)


# --- Real pool states vs. the whitepaper formulas ------------------------------------------


def test_real_v3_usdc_usdt_price_matches_formula() -> None:
    state = V3State(ETH_SQRT_P, ETH_TICK, ETH_L, 100, 1)
    usdc = PairSpec(token_is_token0=True, token_decimals=6, quote_decimals=6)
    usdt = PairSpec(token_is_token0=False, token_decimals=6, quote_decimals=6)
    with localcontext() as ctx:
        ctx.prec = 60
        p = (Decimal(ETH_SQRT_P) / Decimal(2**96)) ** 2  # whitepaper: P = (sqrtPriceX96 / 2^96)^2
        assert abs(dec(v3_price(state, usdc)) - p) < Decimal("1e-40")
        assert abs(dec(v3_price(state, usdt)) - 1 / p) < Decimal("1e-40")
        # -2.41 bps from the 1.0 peg; tick -3 says the same to within one tick
        assert abs(dec(deviation_bps(v3_price(state, usdc), ONE)) - (p - 1) * 10_000) < Decimal("1e-30")
        assert Decimal("1.0001") ** -3 <= p < Decimal("1.0001") ** -2


@pytest.mark.parametrize("token_is_token0", [True, False])
@pytest.mark.parametrize("bps", [10, 50, 100])
@pytest.mark.parametrize("side", SIDES)
def test_real_v3_in_range_depth_matches_whitepaper(token_is_token0: bool, bps: int, side: str) -> None:
    """Constant liquidity L (no tick crossed): whitepaper 6.14-6.16,
    dx = L (1/sqrtP_b - 1/sqrtP_a), dy = L (sqrtP_b - sqrtP_a); the input side pays fee/(1-fee)."""
    fee = 100
    state = V3State(ETH_SQRT_P, ETH_TICK, ETH_L, fee, 1)  # no initialized ticks, all words known
    pair = PairSpec(token_is_token0=token_is_token0, token_decimals=6, quote_decimals=6)
    target = band_target(ONE, ONE, bps, side)  # type: ignore[arg-type]
    got = v3_depth(state, pair, target, side)  # type: ignore[arg-type]
    assert got.complete
    with localcontext() as ctx:
        ctx.prec = 60
        L = Decimal(ETH_L)
        sp = Decimal(ETH_SQRT_P) / Decimal(2**96)
        # band edge in the pool's token1/token0 price
        t = Decimal(target.numerator) / Decimal(target.denominator)
        st_ = (t if token_is_token0 else 1 / t).sqrt()
        if token_is_token0:  # token is token0: dx moves the price
            amount = L * abs(1 / st_ - 1 / sp)
        else:
            amount = L * abs(st_ - sp)
        if side == "bid":  # the seller's gross input: fee is taken before the price moves
            amount = amount / (1 - Decimal(fee) / Decimal(1_000_000))
        # Integer rounding of a few steps (one per 256-tick bitmap word) stays within a few units
        assert abs(Decimal(got.amount) - amount) <= 4, (got.amount, amount)
        assert got.amount > 10**12  # ~ millions of USDC per 10 bps at this liquidity


def test_real_bsc_usd1_pools_price() -> None:
    v2 = V2State(124687100226370855702888, 124801199574313273906629, fee_bps=25)
    pair = PairSpec(token_is_token0=False, token_decimals=18, quote_decimals=18)  # USD1 is token1
    assert dec(v2_price(v2, pair)) == dec(Fraction(124687100226370855702888, 124801199574313273906629))
    assert round(float(deviation_bps(v2_price(v2, pair), ONE)), 3) == -9.142
    v3 = V3State(79249879177462662226869601150, 5, 19957355418646188477376181587, 100, 1)
    with localcontext() as ctx:
        ctx.prec = 60
        p = (Decimal(79249879177462662226869601150) / Decimal(2**96)) ** 2
        assert abs(dec(v3_price(v3, pair)) - 1 / p) < Decimal("1e-40")


@pytest.mark.parametrize("fee_bps", [30, 25, 0])
@pytest.mark.parametrize("bps", [10, 50, 100])
@pytest.mark.parametrize("side", SIDES)
def test_v2_depth_matches_closed_form(fee_bps: int, bps: int, side: str) -> None:
    """Closed form with the fee kept in the pool. Selling a (gamma = 1 - fee):
    p' = x y / ((x + gamma a)(x + a)), so gamma a^2 + (1 + gamma) x a + x^2 - x y / T = 0.
    Buying o (paying y o / (gamma (x - o))): p' = y (x - o + o/gamma) / (x - o)^2 = T."""
    x, y = 124801199574313273906629, 124687100226370855702888  # BSC USD1 (token1) / USDT
    state = V2State(y, x, fee_bps)
    pair = PairSpec(token_is_token0=False, token_decimals=18, quote_decimals=18)
    target = band_target(ONE, ONE, bps, side)  # type: ignore[arg-type]
    got = v2_depth(state, pair, target, side)  # type: ignore[arg-type]
    with localcontext() as ctx:
        ctx.prec = 80
        X, Y, T = Decimal(x), Decimal(y), dec(target)
        g = 1 - Decimal(fee_bps) / 10_000
        if side == "bid":
            b, c = (1 + g) * X, X * X - X * Y / T
            if c >= 0:
                expected = Decimal(0)
            else:
                expected = (-b + (b * b - 4 * g * c).sqrt()) / (2 * g)
        else:
            # y (u + o/g) = T u^2 with u = x - o -> solve g T u^2 - g y u - y (x - u) = 0
            a2, a1, a0 = g * T, -(g * Y) + Y, -Y * X
            u = (-a1 + (a1 * a1 - 4 * a2 * a0).sqrt()) / (2 * a2)
            expected = max(Decimal(0), X - u)
    assert abs(Decimal(got) - expected) <= 2, (got, expected)


# --- V2 invariants -----------------------------------------------------------------------


@given(
    x=st.integers(10**6, 10**30),
    y=st.integers(10**6, 10**30),
    bps=st.integers(1, 500),
    side=st.sampled_from(SIDES),
)
@settings(max_examples=200, deadline=None)
def test_v2_depth_is_exactly_maximal(x: int, y: int, bps: int, side: str) -> None:
    pair = PairSpec(True, 0, 0)
    target = band_target(ONE, ONE, bps, side)  # type: ignore[arg-type]
    d = v2_depth(V2State(x, y), pair, target, side)  # type: ignore[arg-type]
    if side == "bid":
        assert d == 0 or v2_price_after_sell(x, y, d) >= target
        if Fraction(y, x) >= target:
            assert v2_price_after_sell(x, y, d + 1) < target
        else:
            assert d == 0
    else:
        if Fraction(y, x) > target:
            assert d == 0
        else:
            assert d == 0 or v2_price_after_buy(x, y, d) <= target
            if d + 1 < x:
                assert v2_price_after_buy(x, y, d + 1) > target


def test_outside_the_band_is_zero() -> None:
    pair = PairSpec(True, 18, 6)
    low = V2State(10**24, 985 * 10**9)  # 0.985: below every bid edge up to 100 bps
    view = view_v2(low, pair, ONE, ONE, [10, 50, 100])
    assert all(view.depth_tokens[("bid", b)] == 0 for b in (10, 50, 100))
    assert all(view.depth_tokens[("ask", b)] > 0 for b in (10, 50, 100))
    assert round(float(view.deviation_bps), 6) == -150.0


# --- V3 swap replay ------------------------------------------------------------------------


def _ladder_state(token_is_token0: bool) -> tuple[V3State, PairSpec]:
    """Positions on several ranges around 1.0 for an 18-dp token vs a 6-dp quote, spacing 10."""
    pair = PairSpec(token_is_token0, 18, 6)
    raw_one = Fraction(10**6, 10**18) if token_is_token0 else Fraction(10**18, 10**6)
    center = get_tick_at_sqrt_ratio(int((raw_one * 2**192) ** 0.5 // 1))
    center -= center % 10
    L = 10**21
    ranges = [(-50, 50), (-300, 120), (-1200, -80), (30, 800), (-3000, 3000)]
    ticks: dict[int, int] = {}
    liquidity = 0
    for lo, hi in ranges:
        lo, hi = center + lo, center + hi
        ticks[lo] = ticks.get(lo, 0) + L
        ticks[hi] = ticks.get(hi, 0) - L
        if lo <= center < hi:
            liquidity += L
    return V3State(get_sqrt_ratio_at_tick(center), center, liquidity, 500, 10, ticks), pair


@pytest.mark.parametrize("token_is_token0", [True, False])
def test_v3_depth_replays_to_band_edge(token_is_token0: bool) -> None:
    state, pair = _ladder_state(token_is_token0)
    prev = {"bid": 0, "ask": 0}
    for bps in (10, 50, 100, 500):
        for side in SIDES:
            target = band_target(ONE, ONE, bps, side)
            d = v3_depth(state, pair, target, side)
            assert d.complete and d.amount > prev[side]
            prev[side] = d.amount
            zero_for_one = (side == "bid") == token_is_token0
            limit = MIN_SQRT_RATIO + 1 if zero_for_one else MAX_SQRT_RATIO - 1
            amount = d.amount if side == "bid" else -d.amount
            after = V3State(**{**state.__dict__, **_moved(v3_swap(state, zero_for_one, amount, limit))})
            edge_bps = dec((v3_price(after, pair) - target) / target * 10_000)
            assert (0 <= edge_bps < Decimal("0.01")) if side == "bid" else (-Decimal("0.01") < edge_bps <= 0)
            more = amount + amount // 100
            after = V3State(**{**state.__dict__, **_moved(v3_swap(state, zero_for_one, more, limit))})
            crossed = v3_price(after, pair) < target if side == "bid" else v3_price(after, pair) > target
            assert crossed


def _moved(r: object) -> dict[str, int]:
    return {
        "sqrt_price_x96": r.sqrt_price_x96,  # type: ignore[attr-defined]
        "tick": r.tick,  # type: ignore[attr-defined]
        "liquidity": r.liquidity,  # type: ignore[attr-defined]
    }


def test_v3_depth_is_a_lower_bound_beyond_known_words() -> None:
    state, pair = _ladder_state(True)
    word = (state.tick // 10) >> 8
    narrow = V3State(**{**state.__dict__, "known_words": (word, word)})
    full = v3_depth(state, pair, band_target(ONE, ONE, 5000, "bid"), "bid")
    part = v3_depth(narrow, pair, band_target(ONE, ONE, 5000, "bid"), "bid")
    assert full.complete and not part.complete and 0 < part.amount < full.amount


# --- Order books ---------------------------------------------------------------------------


def _book() -> OrderBook:
    lv = lambda p, q: Level(Decimal(p), Decimal(q))  # noqa: E731
    return OrderBook.from_levels(
        [lv("0.9995", "100"), lv("0.9999", "50"), lv("0.9990", "200"), lv("0.9900", "1000")],
        [lv("1.0001", "70"), lv("1.0010", "300"), lv("1.0050", "10"), lv("1.0200", "5")],
    )


def test_book_depth_sums_levels_within_band() -> None:
    book = _book()
    assert book_mid(book) == Fraction(1)
    assert book_depth(book, band_target(ONE, ONE, 10, "bid"), "bid") == 350  # 0.9999, 0.9995, 0.9990
    assert book_depth(book, band_target(ONE, ONE, 5, "bid"), "bid") == 150
    assert book_depth(book, band_target(ONE, ONE, 10, "ask"), "ask") == 370
    assert book_depth(book, band_target(ONE, ONE, 100, "ask"), "ask") == 380
    # the quote asset at 0.999 USD: the token's USD edges move up in quote terms
    v = view_book(book, ONE, Fraction(999, 1000), [10])
    assert v.price_usd == Fraction(999, 1000)
    assert v.depth_tokens[("bid", 10)] == 0  # the bid edge is 0.999 USD = 1.0 quote: no bid that high
    assert v.depth_tokens[("ask", 10)] == 370  # ask edge 1.001 USD = 1.002002 quote
    assert round(float(v.deviation_bps), 9) == -10.0


def test_book_depth_is_complete_only_when_the_snapshot_reaches_past_every_band() -> None:
    """A book snapshot whose last level on a side is still inside a band may hide more depth:
    the view is then a lower bound (`complete` False)."""
    book = _book()  # bids down to 0.99, asks up to 1.02
    assert view_book(book, ONE, ONE, [10, 50]).complete  # a level beyond each edge on both sides
    assert not view_book(book, ONE, ONE, [10, 100]).complete  # no bid below 0.99
    assert not view_book(book, ONE, ONE, [300]).complete  # no ask above 1.03 (and no bid below 0.97)
    assert view_book(book, ONE, ONE, [10, 100]).depth_tokens[("bid", 100)] == 1350  # the sum it has


def test_crossed_book_flag() -> None:
    lv = lambda p, q: Level(Decimal(p), Decimal(q))  # noqa: E731
    assert OrderBook.from_levels([lv("1.001", "1")], [lv("1.000", "1")]).crossed
    assert not _book().crossed


# --- pool composition ------------------------------------------------------------------------


def test_real_bsc_usd1_v2_pool_composition() -> None:
    """The recorded PancakeSwap V2 USDT/USD1 reserves (USD1 is token1): USD1 is just over half of the
    pool's nominal value; the TVL is both reserves at 1 USD each."""
    usdt, usd1 = 124687100226370855702888, 124801199574313273906629
    pair = PairSpec(token_is_token0=False, token_decimals=18, quote_decimals=18)
    view = view_v2(V2State(usdt, usd1, fee_bps=25), pair, ONE, ONE, [10])
    assert view.composition == PoolComposition(Fraction(usd1, usd1 + usdt), Fraction(usd1 + usdt, 10**18))
    assert round(float(view.composition.token_share), 6) == 0.500229
    assert round(float(view.composition.tvl_usd)) == 249_488


def test_pool_composition_values_the_token_at_the_peg_and_the_quote_at_its_usd() -> None:
    pair = PairSpec(token_is_token0=True, token_decimals=18, quote_decimals=6)
    # 700k token, 300k quote at 1.0: 70% token (the pool took in the token: selling pressure)
    c = pool_composition(700_000 * 10**18, 300_000 * 10**6, pair, ONE, ONE)
    assert c.token_share == Fraction(7, 10) and c.tvl_usd == 1_000_000
    # a quote asset worth 0.5 USD halves the quote side's value; a peg of 2 doubles the token's
    c = pool_composition(10**18, 2 * 10**6, pair, Fraction(2), Fraction(1, 2))
    assert c.token_share == Fraction(2, 3) and c.tvl_usd == 3
    assert pool_composition(0, 5 * 10**6, pair, ONE, ONE).token_share == 0
    assert pool_composition(5 * 10**18, 0, pair, ONE, ONE).token_share == 1
    with pytest.raises(DepthMathError, match="holds nothing"):
        pool_composition(0, 0, pair, ONE, ONE)
    with pytest.raises(DepthMathError, match="negative"):
        pool_composition(-1, 5, pair, ONE, ONE)
    with pytest.raises(DepthMathError, match="positive"):
        pool_composition(1, 5, pair, ONE, Fraction(0))


def test_v3_composition_comes_from_the_balances_in_the_pools_orientation() -> None:
    state = V3State(79249879177462662226869601150, 5, 19957355418646188477376181587, 100, 1)
    pair = PairSpec(token_is_token0=False, token_decimals=18, quote_decimals=6)  # token is token1
    assert view_v3(state, pair, ONE, ONE, [10]).composition is None  # no balances read
    view = view_v3(state, pair, ONE, ONE, [10], balances=(250 * 10**6, 750 * 10**18))
    assert view.composition == PoolComposition(Fraction(3, 4), Fraction(1000))


@given(st.integers(0, 10**30), st.integers(0, 10**30), st.booleans())
@settings(max_examples=200, deadline=None)
def test_pool_composition_share_is_a_fraction_and_orientation_symmetric(a: int, b: int, t0: bool) -> None:
    if a == 0 and b == 0:
        return
    pair = PairSpec(token_is_token0=t0, token_decimals=18, quote_decimals=18)
    c = pool_composition(*pair.orient(a, b), pair, ONE, ONE)
    assert 0 <= c.token_share <= 1
    token = a if t0 else b
    assert c.token_share == Fraction(token, a + b) and c.tvl_usd == Fraction(a + b, 10**18)
