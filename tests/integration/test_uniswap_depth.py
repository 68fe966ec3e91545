"""Depth on real Uniswap V2/V3 contracts (npm artifacts) on anvil: for every band and side,
swapping the computed depth moves the pool to the band edge (within 1 bp, inside the band) and
swapping 1% more crosses it. Both token orientations, V3 tick spacings 1 and 10, several
liquidity ranges around 1.0, USD1-like 18-dp token vs USDC-like 6-dp tokens. Then MarketService
reads the same pools and exports the metrics; a venue on a dead RPC goes down alone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

import aiohttp
import pytest
from web3 import AsyncWeb3

from indexer.config import Config
from indexer.devnet.faultproxy import FaultProxy
from indexer.market.depth import SIDES, band_target, v2_price, v3_price, view_v2, view_v3
from indexer.market.service import MarketService
from indexer.market.uniswap import UniswapV2Reader, UniswapV3Reader
from indexer.metrics import Metrics
from tests.support.uniswap import Anvil, UniswapLab, V2Pool, V3Pool, bps_between

pytestmark = pytest.mark.integration
ONE = Fraction(1)
BANDS = (10, 50, 100)
L = 2 * 10**21  # ~1M USD per 10 bps on each range


@dataclass
class Env:
    anvil: Anvil
    lab: UniswapLab
    usd1: Any
    pools: dict[str, V2Pool | V3Pool]


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    node = Anvil().start()
    try:
        lab = UniswapLab(node.url)
        usd1 = lab.token("USD1", 18)
        lo, hi = lab.quote_tokens_around(usd1)  # USD1 is token1 with `lo`, token0 with `hi`
        pools: dict[str, V2Pool | V3Pool] = {
            "v2-t1": lab.v2_pool(usd1, lo, 2_000_000 * 10**18, 2_000_800 * 10**6),  # 1.0004
            "v2-t0": lab.v2_pool(usd1, hi, 1_000_000 * 10**18, 999_700 * 10**6),  # 0.9997
            "v3-t0-s1": lab.v3_pool(
                usd1,
                hi,
                100,
                Fraction(9997, 10000),
                [(-5, 5, L), (-30, 12, L), (-120, -8, L), (3, 80, L), (-300, 300, L)],
            ),
            "v3-t1-s10": lab.v3_pool(
                usd1,
                lo,
                500,
                Fraction(10003, 10000),
                [(-1, 1, L), (-3, 2, 3 * L), (-12, -2, L), (1, 9, L), (-40, 40, L)],
            ),
        }
        assert pools["v2-t1"].spec.token_is_token0 is False and pools["v2-t0"].spec.token_is_token0
        yield Env(node, lab, usd1, pools)
    finally:
        node.stop()


async def _view(env: Env, name: str) -> tuple[Any, Fraction]:
    w3 = AsyncWeb3(AsyncWeb3.AsyncHTTPProvider(env.anvil.url))
    try:
        p = env.pools[name]
        if isinstance(p, V2Pool):
            s2 = await UniswapV2Reader(w3, p.pair.address, env.usd1.address).read()
            return view_v2(s2.state, s2.pair, ONE, ONE, BANDS), v2_price(s2.state, s2.pair)
        s3 = await UniswapV3Reader(w3, p.pool.address, env.usd1.address, tick_words=2).read()
        assert len(s3.state.ticks) >= 8
        return view_v3(s3.state, s3.pair, ONE, ONE, BANDS), v3_price(s3.state, s3.pair)
    finally:
        await w3.provider.disconnect()


def _swap(env: Env, name: str, side: str, amount: int) -> Fraction:
    lab, p = env.lab, env.pools[name]
    if isinstance(p, V2Pool):
        (lab.v2_sell_token if side == "bid" else lab.v2_buy_token)(p, amount)
        return lab.v2_price(p)
    (lab.v3_sell_token if side == "bid" else lab.v3_buy_token)(p, amount)
    return lab.v3_price(p)


@pytest.mark.parametrize("name", ["v2-t1", "v2-t0", "v3-t0-s1", "v3-t1-s10"])
async def test_depth_swaps_to_band_edge(env: Env, name: str) -> None:
    view, price = await _view(env, name)
    assert view.complete
    assert view.price == price
    decimals = 10**18
    for side in SIDES:
        for bps in BANDS:
            target = band_target(ONE, ONE, bps, side)
            amount = int(view.depth_tokens[(side, bps)] * decimals)
            assert view.depth_tokens[(side, bps)].denominator in (1, decimals) or amount > 0
            assert amount > 0, (name, side, bps)
            snap = env.lab.snapshot()
            try:
                after = _swap(env, name, side, amount)
            finally:
                env.lab.revert(snap)
            off = bps_between(after, target)
            # at the edge, on the inside: bid leaves the price >= edge, ask <= edge
            assert (0 <= off < 1) if side == "bid" else (-1 < off <= 0), (name, side, bps, off)
            snap = env.lab.snapshot()
            try:
                after = _swap(env, name, side, amount + amount // 100)
            finally:
                env.lab.revert(snap)
            assert (after < target) if side == "bid" else (after > target), (name, side, bps)


def _config(env: Env, rpc: str, extra: list[dict[str, Any]] | None = None) -> Config:
    venues: list[dict[str, Any]] = [
        {
            "name": "uni-v2",
            "kind": "uniswap_v2",
            "chain": "dev",
            "pool": env.pools["v2-t0"].pair.address,  # type: ignore[union-attr]
            "page_depth_floor_usd": 250_000,
        },
        {"name": "uni-v3", "kind": "uniswap_v3", "chain": "dev", "pool": env.pools["v3-t1-s10"].pool.address},  # type: ignore[union-attr]
        *(extra or []),
    ]
    return Config.model_validate(
        {
            "chains": [
                {"name": "dev", "kind": "evm", "rpc": [rpc], "token": env.usd1.address},
                {"name": "dead", "kind": "evm", "rpc": ["http://127.0.0.1:9"], "token": env.usd1.address},
            ],
            "market": {"bands_bps": list(BANDS)},
            "venues": venues,
        }
    )


async def test_market_service_exports_pool_metrics(env: Env) -> None:
    dead = {
        "name": "dead-v2",
        "kind": "uniswap_v2",
        "chain": "dead",
        "pool": env.pools["v2-t1"].pair.address,  # type: ignore[union-attr]
        "timeout": "1s",
        "interval": "200ms",
    }
    cfg = _config(env, env.anvil.url, [dead])
    metrics = Metrics()
    reg = metrics.registry
    async with aiohttp.ClientSession() as session:
        svc = MarketService(cfg, metrics, session, {"dev": env.anvil.url, "dead": "http://127.0.0.1:9"})
        stop = asyncio.Event()
        task = asyncio.create_task(svc.run(stop))
        try:
            for _ in range(100):
                snap = svc.snapshot()
                if snap["uni-v2"].up and snap["uni-v3"].up and snap["dead-v2"].last_error:
                    break
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    snap = svc.snapshot()
    assert snap["uni-v2"].up and snap["uni-v3"].up and not snap["dead-v2"].up
    v2_view, _ = await _view(env, "v2-t0")
    v3_view, _ = await _view(env, "v3-t1-s10")

    def g(name: str, **labels: str) -> float | None:
        return reg.get_sample_value(name, labels)

    assert g("usd1_price_usd", venue="uni-v2") == pytest.approx(float(v2_view.price_usd), rel=1e-12)
    assert g("usd1_peg_deviation_bps", venue="uni-v2") == pytest.approx(-3.0, abs=1e-9)
    assert g("usd1_peg_deviation_bps", venue="uni-v3") == pytest.approx(3.0, abs=1e-6)
    for view, venue in ((v2_view, "uni-v2"), (v3_view, "uni-v3")):
        assert g("usd1_venue_up", venue=venue) == 1
        for side in SIDES:
            for bps in BANDS:
                got = g("usd1_depth_usd", venue=venue, side=side, band=f"{bps}bps")
                assert got == pytest.approx(float(view.depth_usd[(side, bps)]), rel=1e-12)
    assert g("usd1_depth_complete", venue="uni-v2") == g("usd1_depth_complete", venue="uni-v3") == 1
    assert g("usd1_venue_up", venue="dead-v2") == 0
    assert g("usd1_price_usd", venue="dead-v2") is None
    assert g("usd1_venue_last_success_timestamp_seconds", venue="dead-v2") is None
    assert snap["dead-v2"].last_error is not None and snap["dead-v2"].last_error.startswith("rpc")
    assert snap["uni-v3"].depth_usd["bid"]["50bps"] > 0 and snap["uni-v3"].block is not None
    # Composition against the pools' own balances (nothing traded since the service read them).
    for venue, pool in (("uni-v2", env.pools["v2-t0"]), ("uni-v3", env.pools["v3-t1-s10"])):
        share, tvl = _composition_from_balances(env, pool)
        assert g("usd1_pool_token_share", venue=venue) == pytest.approx(float(share), rel=1e-12)
        assert g("usd1_pool_tvl_usd", venue=venue) == pytest.approx(float(tvl), rel=1e-12)
        assert snap[venue].token_share is not None and abs(snap[venue].token_share - _dec(share)) < 1e-20
        assert g("usd1_venue_info", venue=venue, kind=pool_kind(pool), chain="dev") == 1
    assert g("usd1_pool_token_share", venue="dead-v2") is None
    assert g("usd1_venue_info", venue="dead-v2", kind="uniswap_v2", chain="dead") == 1
    assert g("usd1_venue_depth_floor_usd", venue="uni-v2") == 250_000
    assert g("usd1_venue_depth_floor_usd", venue="uni-v3") is None  # not configured


def pool_kind(pool: V2Pool | V3Pool) -> str:
    return "uniswap_v2" if isinstance(pool, V2Pool) else "uniswap_v3"


def _dec(f: Fraction) -> Decimal:
    return Decimal(f.numerator) / Decimal(f.denominator)


def _composition_from_balances(env: Env, pool: V2Pool | V3Pool) -> tuple[Fraction, Fraction]:
    """The token's share of the pool's value and its USD value, from balanceOf on the chain (token
    at the 1.0 peg, quote at 1.0), independently of the reader."""
    address = pool.pair.address if isinstance(pool, V2Pool) else pool.pool.address
    token = Fraction(pool.token.functions.balanceOf(address).call(), 10**pool.spec.token_decimals)
    quote = Fraction(pool.quote.functions.balanceOf(address).call(), 10**pool.spec.quote_decimals)
    return token / (token + quote), token + quote


async def test_pool_composition_follows_swaps_on_the_real_pools(env: Env) -> None:
    """Selling the token into a pool raises its share (the pool took in the token) and buying it
    lowers it; each time the exported share and TVL equal the pool's balances after the swap."""
    cfg = _config(env, env.anvil.url)
    metrics = Metrics()
    async with aiohttp.ClientSession() as session:
        svc = MarketService(cfg, metrics, session, {"dev": env.anvil.url})
        try:
            for venue, name in (("uni-v2", "v2-t0"), ("uni-v3", "v3-t1-s10")):
                pool = env.pools[name]
                before = (await svc.poll_once(venue)).token_share
                assert before is not None
                snap_id = env.lab.snapshot()
                try:
                    for side, amount in (("bid", 50_000 * 10**18), ("ask", 120_000 * 10**18)):
                        _swap(env, name, side, amount)
                        now = (await svc.poll_once(venue)).token_share
                        assert now is not None
                        assert (now > before) if side == "bid" else (now < before), (venue, side)
                        before = now
                        share, tvl = _composition_from_balances(env, pool)
                        got_share = metrics.registry.get_sample_value(
                            "usd1_pool_token_share", {"venue": venue}
                        )
                        got_tvl = metrics.registry.get_sample_value("usd1_pool_tvl_usd", {"venue": venue})
                        assert got_share == pytest.approx(float(share), rel=1e-12), (venue, side)
                        assert got_tvl == pytest.approx(float(tvl), rel=1e-12), (venue, side)
                finally:
                    env.lab.revert(snap_id)
        finally:
            await svc.close()


async def test_pool_without_the_token_is_a_clear_error(env: Env) -> None:
    w3 = AsyncWeb3(AsyncWeb3.AsyncHTTPProvider(env.anvil.url))
    other = env.lab.token("OTHER", 18)
    try:
        from indexer.market.errors import VenueError

        with pytest.raises(VenueError) as info:
            await UniswapV2Reader(w3, env.pools["v2-t0"].pair.address, other.address).read()  # type: ignore[union-attr]
        assert info.value.kind == "pool"
    finally:
        await w3.provider.disconnect()


@contextlib.asynccontextmanager
async def _two_urls(
    env: Env, extra: list[dict[str, Any]]
) -> AsyncIterator[tuple[MarketService, FaultProxy, FaultProxy]]:
    """A MarketService whose `dev` chain has two RPC URLs, each a FaultProxy in front of anvil."""
    cfg = _config(env, env.anvil.url, extra)
    async with (
        FaultProxy(env.anvil.url) as first,
        FaultProxy(env.anvil.url) as second,
        aiohttp.ClientSession() as session,
    ):
        svc = MarketService(cfg, Metrics(), session, {"dev": [first.url, second.url]})
        try:
            yield svc, first, second
        finally:
            await svc.close()


async def test_pool_reads_fail_over_to_the_next_rpc_url(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """A chain's first RPC URL goes down (503, then a silent hang): the same poll reads the pool
    through the next URL, which then stays current; the venue never goes down, and only when
    every URL fails does it."""
    async with _two_urls(env, []) as (svc, first, second):
        assert (await svc.poll_once("uni-v2")).up
        assert first.http_requests > 0 and second.http_requests == 0

        first.down = True
        before = second.http_requests
        snap = await svc.poll_once("uni-v2")
        assert snap.up and snap.failing_since is None
        assert second.http_requests > before
        assert (await svc.poll_once("uni-v3")).up  # the chain's other venue: straight to second
        failed_over = first.http_requests
        assert (await svc.poll_once("uni-v2")).up
        assert first.http_requests == failed_over  # second stays current

        second.down_mode = "close"
        second.down = True  # both down: the venue is down, naming both endpoints
        snap = await svc.poll_once("uni-v2")
        assert not snap.up and snap.last_error is not None
        assert snap.last_error.startswith("rpc: every RPC URL failed")
        assert first.url.split("//")[1].rstrip("/") in snap.last_error

        first.heal()  # first is back: the next poll finds it after second fails
        assert (await svc.poll_once("uni-v2")).up
    out = capsys.readouterr()
    logs = out.out + out.err
    assert logs.count("venue_rpc_failover") == 2, logs


async def test_a_hung_rpc_url_fails_over_within_the_venue_timeout(env: Env) -> None:
    fast = {
        "name": "uni-v2-fast",
        "kind": "uniswap_v2",
        "chain": "dev",
        "pool": env.pools["v2-t0"].pair.address,  # type: ignore[union-attr]
        "timeout": "300ms",
    }
    async with _two_urls(env, [fast]) as (svc, first, second):
        first.delay = 2.0  # accepts, never answers in time
        assert (await svc.poll_once("uni-v2-fast")).up
        second.delay = 2.0
        snap = await svc.poll_once("uni-v2-fast")
        assert not snap.up and snap.last_error is not None
        assert snap.last_error.startswith("timeout: every RPC URL failed")
        assert snap.last_error.count("no reply within 0.3s") == 2
