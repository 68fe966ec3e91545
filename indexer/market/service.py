"""Venue pollers: each configured venue is read on its own interval in its own task.

Per venue and successful read: `usd1_price_usd`, `usd1_peg_deviation_bps`,
`usd1_depth_usd{side,band}` (band label `"<bps>bps"` for each `market.bands_bps`),
`usd1_venue_up` 1 and `usd1_venue_last_success_timestamp_seconds`; for pools also
`usd1_pool_token_share` and `usd1_pool_tvl_usd` (V2: the reserves; V3: the pool's token balances,
every position in range or not; both valued with the token at the peg, `depth.pool_composition`).
At start-up every venue gets `usd1_venue_info{venue,kind,chain}` 1 and, when configured,
`usd1_venue_depth_floor_usd` (its `page_depth_floor_usd`, used by the depeg paging alert).

A failed read (any `VenueError`, a timeout, a math error on a nonsensical state) sets
`usd1_venue_up` 0, removes that venue's price/deviation/depth/pool series (stale numbers must not
look live; `snapshot()` keeps the last values, flagged `up=False`), keeps the last-success
timestamp, logs `venue_down` once and `venue_recovered` once. Venues never wait on each other
except through a bounded semaphore on in-flight reads.

Quote conversion: `quote_usd` (default 1.0) or `quote_venue`: the latest USD price of another
venue, which must be up (else this venue's read fails with kind `quote`).

Pool reads use the chain's RPC URLs in order: when the current one fails (an `rpc` error or no
reply within the venue's timeout), the same poll tries the next, and the one that answered stays
current for that chain's venues (`venue_rpc_failover`, logged with secret-free host:port labels).
A venue is down only when every URL failed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from fractions import Fraction
from typing import Any

import aiohttp
import structlog
from web3 import AsyncWeb3

from indexer.chains.rpc import endpoint_label
from indexer.config import (
    Config,
    EvmChainConfig,
    OrderbookVenueConfig,
    UniswapV2VenueConfig,
    UniswapV3VenueConfig,
    VenueConfig,
)
from indexer.errors import ConfigError
from indexer.market.depth import (
    SIDES,
    DepthMathError,
    VenueView,
    band_label,
    to_decimal,
    to_fraction,
    view_book,
    view_v2,
    view_v3,
)
from indexer.market.errors import VenueError, VenueErrorKind
from indexer.market.orderbook import fetch_order_book
from indexer.market.uniswap import UniswapV2Reader, UniswapV3Reader, V2Snapshot, V3Snapshot
from indexer.metrics import Metrics

_Logger = Any  # structlog BoundLogger (typed loosely: structlog's wrappers are dynamic)


@dataclass(frozen=True)
class VenueSnapshot:
    """Latest state of one venue (for the HTTP API). Values are those of the last success."""

    name: str
    kind: str
    up: bool
    price_usd: Decimal | None = None
    deviation_bps: Decimal | None = None
    depth_usd: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)  # side -> band -> USD
    depth_complete: bool = True
    token_share: Decimal | None = None  # pools: the token's share of the pool's value
    tvl_usd: Decimal | None = None  # pools: the pool's value in USD
    block: int | None = None  # for pool venues: the block the state was read at
    last_success: float | None = None  # unix time
    last_error: str | None = None
    failing_since: float | None = None


def _check_quote_graph(venues: list[VenueConfig]) -> None:
    refs = {v.name: v.quote_venue for v in venues}
    for v in venues:
        seen = [v.name]
        nxt = refs.get(v.name)
        while nxt is not None:
            if nxt in seen:
                raise ConfigError([f"venues: quote_venue cycle {' -> '.join([*seen, nxt])}"])
            seen.append(nxt)
            nxt = refs.get(nxt)


class MarketService:
    """Polls every venue of `config.venues`; see the module docstring for the metrics contract.

    `rpc_urls` maps chain name -> its JSON-RPC HTTP URLs (in order of preference) for the chains
    that Uniswap venues use. `on_reading(venue, unix_time, deviation_bps)` is called after every
    read (deviation None: the read failed), e.g. by the depeg recorder; it must not block.
    """

    def __init__(
        self,
        config: Config,
        metrics: Metrics,
        session: aiohttp.ClientSession,
        rpc_urls: Mapping[str, str | Sequence[str]],
        *,
        logger: _Logger | None = None,
        clock: Callable[[], float] = time.time,
        max_concurrency: int = 8,
        on_reading: Callable[[str, float, Decimal | None], None] | None = None,
    ) -> None:
        self._config = config
        self._on_reading = on_reading
        self._metrics = metrics
        self._session = session
        self._clock = clock
        self._log = logger if logger is not None else structlog.get_logger("indexer.market")
        self._sem = asyncio.Semaphore(max_concurrency)
        self._peg = to_fraction(config.token.peg_usd)
        self._bands = list(config.market.bands_bps)
        self._venues = list(config.venues)
        problems: list[str] = []
        self._tokens: dict[str, str] = {}
        for i, v in enumerate(self._venues):
            if isinstance(v, UniswapV2VenueConfig | UniswapV3VenueConfig):
                try:
                    chain = config.chain(v.chain)
                except KeyError:
                    chain = None
                if not isinstance(chain, EvmChainConfig):
                    problems.append(f"venues.{i}.chain: {v.chain!r} is not a configured EVM chain")
                    continue
                if not rpc_urls.get(v.chain):
                    problems.append(f"venues.{i}.chain: no RPC URL for chain {v.chain!r}")
                self._tokens[v.name] = chain.token
        if problems:
            raise ConfigError(problems)
        _check_quote_graph(self._venues)
        self._rpc_urls = {c: [u] if isinstance(u, str) else list(u) for c, u in rpc_urls.items()}
        self._url_at: dict[str, int] = {}  # chain -> index of the URL its pool reads use now
        self._w3: dict[str, AsyncWeb3[Any]] = {}  # by URL
        self._readers: dict[tuple[str, str], UniswapV2Reader | UniswapV3Reader] = {}
        self._state: dict[str, VenueSnapshot] = {
            v.name: VenueSnapshot(name=v.name, kind=v.kind, up=False) for v in self._venues
        }
        self._attempted: dict[str, asyncio.Event] = {v.name: asyncio.Event() for v in self._venues}
        for v in self._venues:
            pool_chain = v.chain if isinstance(v, UniswapV2VenueConfig | UniswapV3VenueConfig) else ""
            metrics.init_venue(v.name, v.kind, pool_chain, v.page_depth_floor_usd)

    # -- public ----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, VenueSnapshot]:
        return dict(self._state)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set; then cancel and await every venue task and close providers."""
        tasks = [asyncio.create_task(self._poll_loop(v, stop), name=f"venue:{v.name}") for v in self._venues]
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.close()

    async def close(self) -> None:
        """Disconnect the web3 providers (`run` does this when it stops; callers that only use
        `poll_once` call it themselves)."""
        for w3 in self._w3.values():
            try:
                await w3.provider.disconnect()
            except Exception as exc:
                self._log.warning("web3_disconnect_failed", error=str(exc))
        self._w3.clear()
        self._readers.clear()

    async def poll_once(self, name: str) -> VenueSnapshot:
        """Read one venue now (also what each task does per tick); returns its new snapshot."""
        venue = next(v for v in self._venues if v.name == name)
        await self._poll(venue)
        return self._state[name]

    # -- internals -------------------------------------------------------------------------
    async def _poll_loop(self, venue: VenueConfig, stop: asyncio.Event) -> None:
        if venue.quote_venue is not None:
            # Let the quote venue try once first, so a cold start does not log a false failure.
            try:
                async with asyncio.timeout(venue.interval):
                    await self._attempted[venue.quote_venue].wait()
            except TimeoutError:
                pass
        while not stop.is_set():
            await self._poll(venue)
            try:
                async with asyncio.timeout(venue.interval):
                    await stop.wait()
            except TimeoutError:
                pass

    def _web3(self, url: str) -> AsyncWeb3[Any]:
        if url not in self._w3:
            self._w3[url] = AsyncWeb3(AsyncWeb3.AsyncHTTPProvider(url))
        return self._w3[url]

    def _reader(
        self, venue: UniswapV2VenueConfig | UniswapV3VenueConfig, url: str
    ) -> UniswapV2Reader | UniswapV3Reader:
        key = (venue.name, url)
        if key not in self._readers:
            w3 = self._web3(url)
            token = self._tokens[venue.name]
            self._readers[key] = (
                UniswapV2Reader(w3, venue.pool, token, venue.fee_bps)
                if isinstance(venue, UniswapV2VenueConfig)
                else UniswapV3Reader(w3, venue.pool, token, venue.tick_words)
            )
        return self._readers[key]

    async def _read_pool(self, venue: UniswapV2VenueConfig | UniswapV3VenueConfig) -> V2Snapshot | V3Snapshot:
        """Read the pool through the chain's current URL, then the others in order (each within
        the venue's timeout); the URL that answered becomes current for the chain."""
        urls = self._rpc_urls[venue.chain]
        start = self._url_at.get(venue.chain, 0) % len(urls)
        failures: list[str] = []
        timeouts = 0
        for k in range(len(urls)):
            i = (start + k) % len(urls)
            label = endpoint_label(urls[i])
            try:
                async with asyncio.timeout(venue.timeout):
                    snap = await self._reader(venue, urls[i]).read()
            except TimeoutError:
                timeouts += 1
                failures.append(f"{label}: no reply within {venue.timeout:g}s")
                continue
            except VenueError as exc:
                if exc.kind != "rpc":
                    raise  # the endpoint answered; the pool itself is the problem
                failures.append(f"{label}: {exc}")
                continue
            if failures:
                self._url_at[venue.chain] = i
                self._log.warning(
                    "venue_rpc_failover", venue=venue.name, chain=venue.chain, endpoint=label, failed=failures
                )
            return snap
        kind: VenueErrorKind = "timeout" if timeouts == len(urls) else "rpc"
        raise VenueError(kind, "every RPC URL failed: " + "; ".join(failures))

    def _quote_usd(self, venue: VenueConfig) -> Fraction:
        if venue.quote_venue is None:
            return to_fraction(venue.quote_usd if venue.quote_usd is not None else 1.0)
        ref = self._state[venue.quote_venue]
        if not ref.up or ref.price_usd is None:
            raise VenueError("quote", f"quote venue {venue.quote_venue!r} has no current price")
        return Fraction(ref.price_usd)

    async def _read(self, venue: VenueConfig, quote_usd: Fraction) -> tuple[VenueView, int | None]:
        match venue:
            case UniswapV2VenueConfig():
                s2 = await self._read_pool(venue)
                assert isinstance(s2, V2Snapshot)
                return view_v2(s2.state, s2.pair, self._peg, quote_usd, self._bands), s2.block
            case UniswapV3VenueConfig():
                s3 = await self._read_pool(venue)
                assert isinstance(s3, V3Snapshot)
                return view_v3(s3.state, s3.pair, self._peg, quote_usd, self._bands, s3.balances), s3.block
            case OrderbookVenueConfig():
                async with asyncio.timeout(venue.timeout):
                    book = await fetch_order_book(self._session, venue.exchange, venue.url, venue.timeout)
                return view_book(book, self._peg, quote_usd, self._bands), None

    async def _poll(self, venue: VenueConfig) -> None:
        try:
            quote_usd = self._quote_usd(venue)
            async with self._sem:
                view, block = await self._read(venue, quote_usd)
        except VenueError as exc:
            self._failed(venue, exc.kind, str(exc))
        except TimeoutError:
            self._failed(venue, "timeout", f"timeout: no reply within {venue.timeout:g}s")
        except DepthMathError as exc:
            self._failed(venue, "pool", f"pool: {exc}")
        except Exception as exc:  # a bug or an unexpected library error: still only this venue
            self._log.exception("venue_read_crashed", venue=venue.name)
            self._failed(venue, "unexpected", f"{type(exc).__name__}: {exc}")
        else:
            self._succeeded(venue, view, block)
        finally:
            self._attempted[venue.name].set()

    def _succeeded(self, venue: VenueConfig, view: VenueView, block: int | None) -> None:
        now = self._clock()
        prev = self._state[venue.name]
        m, name = self._metrics, venue.name
        m.price_usd.labels(name).set(float(view.price_usd))
        m.peg_deviation_bps.labels(name).set(float(view.deviation_bps))
        depth: dict[str, dict[str, Decimal]] = {side: {} for side in SIDES}
        for (side, bps), usd in view.depth_usd.items():
            m.depth_usd.labels(name, side, band_label(bps)).set(float(usd))
            depth[side][band_label(bps)] = to_decimal(usd)
        m.depth_complete.labels(name).set(1 if view.complete else 0)
        pool = view.composition
        if pool is not None:
            m.pool_token_share.labels(name).set(float(pool.token_share))
            m.pool_tvl_usd.labels(name).set(float(pool.tvl_usd))
        m.venue_up.labels(name).set(1)
        m.venue_last_success.labels(name).set(now)
        if prev.failing_since is not None:
            self._log.info("venue_recovered", venue=name, down_seconds=round(now - prev.failing_since, 3))
        if not view.complete and prev.depth_complete:
            hint = (
                "ask the exchange for more levels (its limit/depth parameter in the venue url)"
                if isinstance(venue, OrderbookVenueConfig)
                else "raise tick_words"
            )
            self._log.warning("venue_depth_truncated", venue=name, hint=hint)
        self._state[name] = VenueSnapshot(
            name=name,
            kind=venue.kind,
            up=True,
            price_usd=to_decimal(view.price_usd),
            deviation_bps=to_decimal(view.deviation_bps),
            depth_usd=depth,
            depth_complete=view.complete,
            token_share=None if pool is None else to_decimal(pool.token_share),
            tvl_usd=None if pool is None else to_decimal(pool.tvl_usd),
            block=block,
            last_success=now,
        )
        self._notify(name, now, self._state[name].deviation_bps)

    def _notify(self, name: str, now: float, bps: Decimal | None) -> None:
        if self._on_reading is None:
            return
        try:
            self._on_reading(name, now, bps)
        except Exception:  # a bug in the observer must not take the venue down
            self._log.exception("venue_reading_observer_failed", venue=name)

    def _failed(self, venue: VenueConfig, kind: str, message: str) -> None:
        now = self._clock()
        prev = self._state[venue.name]
        m, name = self._metrics, venue.name
        m.venue_up.labels(name).set(0)
        for gauge, labels in [
            (m.price_usd, (name,)),
            (m.peg_deviation_bps, (name,)),
            (m.depth_complete, (name,)),
            (m.pool_token_share, (name,)),
            (m.pool_tvl_usd, (name,)),
            *((m.depth_usd, (name, side, band_label(b))) for side in SIDES for b in self._bands),
        ]:
            try:
                gauge.remove(*labels)
            except KeyError:
                pass
        if prev.failing_since is None:
            self._log.warning("venue_down", venue=name, error_kind=kind, error=message)
        else:
            self._log.debug("venue_still_down", venue=name, error_kind=kind, error=message)
        self._state[name] = replace(
            prev,
            up=False,
            last_error=message,
            failing_since=prev.failing_since if prev.failing_since is not None else now,
        )
        self._notify(name, now, None)
