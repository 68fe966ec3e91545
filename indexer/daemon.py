"""`usd1-indexer run` and `backfill`: the long-running daemon and the one-shot backfill."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import aiohttp
import structlog
from aiohttp import web

from indexer.api.app import create_app
from indexer.backing import AtAsOf, TotalSupply
from indexer.chains.evm import EvmSource
from indexer.chains.rpc import RpcPool
from indexer.config import Config, EvmChainConfig
from indexer.depeg_recorder import DepegRecorder, thresholds
from indexer.errors import DatabaseGaveUp
from indexer.metrics import Metrics
from indexer.model import Family
from indexer.oracle import EvmFeedReader, OracleService
from indexer.reserves import ReservesService, load_reserves_key
from indexer.runtime import Runtime, database, kept, open_runtime
from indexer.store import queries as q
from indexer.store import supply_at_queries as saq
from indexer.store.store import Store
from indexer.sync.fill import FamilyFill
from indexer.sync.supervisor import Supervisor
from indexer.sync.supply_classes import SupplyClassesExporter
from indexer.sync.watchlists import WatchlistService

log = structlog.get_logger(__name__)


def install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


@contextlib.asynccontextmanager
async def serve_http(app: web.Application, host: str, port: int) -> AsyncIterator[int]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    try:
        yield bound
    finally:
        await runner.cleanup()


async def run_daemon(
    cfg: Config,
    stop: asyncio.Event,
    chains: Sequence[str] | None = None,
    on_ready: Callable[[Runtime, int], None] | None = None,
    config_dir: Path | None = None,
) -> None:
    """Index every selected chain and serve HTTP until `stop` is set (or the database stays
    unreachable past its limit with `database.exit_on_unavailable`: then `DatabaseGaveUp`)."""
    async with open_runtime(cfg, chains, stop, config_dir=config_dir) as rt:
        if rt.watchlists is not None:
            await rt.watchlists.refresh()  # in force before the first head step (a failure: logged)
        reserves = None
        if cfg.reserves is not None:
            reserves = ReservesService(
                cfg.reserves,
                rt.metrics,
                rt.session,
                lambda: finalized_circulating(rt),
                token_symbol=cfg.token.symbol,
                base_dir=config_dir,
                ratio_interval=5.0,
                public_key=load_reserves_key(cfg.reserves, config_dir),
                supply_at=lambda when: circulating_at(rt, when),
            )
        market, depegs = None, None
        if cfg.venues:
            from indexer.market.service import MarketService  # web3: only when venues exist

            evm_rpc = {c.name: list(c.rpc) for c in cfg.chains if isinstance(c, EvmChainConfig)}
            depegs = DepegRecorder(rt.pool, thresholds(cfg.market))
            market = MarketService(cfg, rt.metrics, rt.session, evm_rpc, on_reading=depegs.on_reading)
        classes = SupplyClassesExporter(cfg, rt.pool, rt.metrics)
        oracle = None
        if reserves is not None and cfg.reserves is not None and cfg.reserves.oracle is not None:
            feed = cfg.reserves.oracle
            src = feed_source(rt, feed.chain)
            oracle = OracleService(
                feed,
                rt.metrics,
                EvmFeedReader(src),
                _attested(reserves),
                lambda: _circulating(classes),
                shown_address=src.dialect.show_address(feed.address),
            )
        app = create_app(
            cfg,
            rt.store,
            rt.metrics,
            rt.statuses,
            reserves=reserves.snapshot if reserves is not None else None,
            oracle=oracle.snapshot if oracle is not None else None,
            db=rt.db,
            watchlists=rt.watchlists.current if rt.watchlists is not None else None,
            market=market.snapshot if market is not None else None,
        )
        async with serve_http(app, cfg.http.host, cfg.http.port) as port:
            log.info("daemon_started", chains=[c.name for c in rt.chains], http=f"{cfg.http.host}:{port}")
            if on_ready is not None:
                on_ready(rt, port)
            supervisor = Supervisor(list(rt.followers.values()), rt.metrics, tick=rt.update_totals)
            services = [asyncio.create_task(supervisor.run(stop), name="supervisor")]
            # The audits run beside indexing, each in its own task, within their budgets.
            for name, auditor in rt.auditors.items():
                if auditor.cfg.enabled:
                    services.append(asyncio.create_task(auditor.run(stop), name=f"audit:{name}"))
            # Market and reserves pollers run in their own tasks: a dead venue never blocks indexing.
            if market is not None and depegs is not None:
                services.append(asyncio.create_task(depegs.run(stop), name="depegs"))
                services.append(asyncio.create_task(market.run(stop), name="market"))
            if reserves is not None:
                services.append(asyncio.create_task(reserves.run(stop), name="reserves"))
            if oracle is not None:
                services.append(asyncio.create_task(oracle.run(stop), name="reserves_oracle"))
            if rt.watchlists is not None:
                services.append(asyncio.create_task(rt.watchlists.run(stop), name="watchlists"))
            services.append(asyncio.create_task(classes.run(stop), name="supply_classes"))
            try:
                await stop.wait()
                await asyncio.wait(services, timeout=10)
            finally:
                for t in services:
                    t.cancel()
                await asyncio.gather(*services, return_exceptions=True)
        gave_up = rt.db.describe() if rt.db.gave_up else None
    if gave_up is not None:
        log.error("daemon_stopped", reason="database_unavailable")
        raise DatabaseGaveUp(gave_up)
    log.info("daemon_stopped")


async def serve_api(
    cfg: Config,
    stop: asyncio.Event,
    on_ready: Callable[[int], None] | None = None,
    config_dir: Path | None = None,
) -> None:
    """The HTTP API alone, on `database.read_dsn` (a read replica, read-only role) or `dsn`.

    No migrations, no followers: indexing processes elsewhere write the database. The watchlists
    are loaded (and reloaded) here too, to flag transfers; nothing is counted."""
    metrics = Metrics()
    dsn = cfg.database.read_dsn or cfg.database.dsn
    async with (
        database(cfg, metrics, dsn=dsn, run_migrations=False) as db,
        kept(db, stop),
        aiohttp.ClientSession() as session,
    ):
        watch = WatchlistService.configured(cfg, metrics, session, config_dir, counted=[])
        if watch is not None:
            await watch.refresh()
        app = create_app(
            cfg, Store(db.pool), metrics, None, db=db, watchlists=watch.current if watch is not None else None
        )
        async with serve_http(app, cfg.http.host, cfg.http.port) as port:
            log.info("api_started", http=f"{cfg.http.host}:{port}", read_only=bool(cfg.database.read_dsn))
            if on_ready is not None:
                on_ready(port)
            reload = asyncio.create_task(watch.run(stop), name="watchlists") if watch is not None else None
            try:
                await stop.wait()
            finally:
                if reload is not None:
                    reload.cancel()
                    await asyncio.gather(reload, return_exceptions=True)
        gave_up = db.describe() if db.gave_up else None
    if gave_up is not None:
        raise DatabaseGaveUp(gave_up)
    log.info("api_stopped")


RESERVES_QUERY_TIMEOUT_MS = 10_000


async def finalized_circulating(rt: Runtime) -> TotalSupply | None:
    """The global circulating supply at every configured chain's finalized block (from the store,
    so chains indexed by other processes count too; each token once, README "Bridges"), in the
    largest decimals among them; None until every chain is indexed."""
    async with q.snapshot(rt.pool, timeout_ms=RESERVES_QUERY_TIMEOUT_MS) as conn:
        return await saq.circulating_now(conn, rt.cfg.chains)


async def circulating_at(rt: Runtime, when: datetime) -> AtAsOf:
    """The global circulating supply at `when` (an attestation's as_of), per chain at the last
    block at or before it, in one snapshot (unavailable with a reason: `indexer.backing`)."""
    async with q.snapshot(rt.pool, timeout_ms=RESERVES_QUERY_TIMEOUT_MS) as conn:
        return await saq.circulating_at(conn, rt.cfg.chains, when)


def feed_source(rt: Runtime, chain: str) -> EvmSource:
    """The EVM source of `chain` (this process's, or one on the chain's endpoints if it follows
    other chains only) for the proof-of-reserve feed reads."""
    src = rt.sources.get(chain)
    if isinstance(src, EvmSource):
        return src
    c = rt.cfg.chain(chain)
    assert isinstance(c, EvmChainConfig)  # config validation: reserves.oracle.chain is EVM
    return EvmSource(
        c,
        RpcPool(
            c.name,
            c.rpc,
            rt.session,
            rt.metrics,
            timeout=c.request_timeout,
            max_rps=c.max_requests_per_second,
        ),
    )


def _attested(reserves: ReservesService) -> Callable[[], Decimal | None]:
    return lambda: reserves.snapshot().reserves_usd


def _circulating(classes: SupplyClassesExporter) -> TotalSupply | None:
    got = classes.circulating.get("finalized")
    return None if got is None else TotalSupply(*got)


async def fill_family(cfg: Config, chains: Sequence[str] | None, family: Family) -> dict[str, int | None]:
    """Fill `family` in below its coverage on each selected chain that decodes it, without
    re-indexing the others (see `indexer.sync.fill`); returns where each chain's coverage of the
    family starts now (None: the chain does not decode it)."""
    stop = asyncio.Event()
    install_signal_handlers(stop)
    out: dict[str, int | None] = {}
    async with open_runtime(cfg, chains) as rt:
        fills = []
        for chain in rt.chains:
            fc = chain.family_configs().get(family)
            if fc is None:
                out[chain.name] = None
                continue
            settings = rt.settings[chain.name]
            fills.append(
                FamilyFill(
                    rt.sources[chain.name],
                    rt.store,
                    family,
                    fc.fingerprint,
                    chain.first_height,
                    settings.backfill_chunk,
                    settings.poll_interval,
                )
            )
        for cov, f in zip(await asyncio.gather(*(f.run(stop) for f in fills)), fills, strict=True):
            out[f.chain] = cov.from_block
    return out


async def backfill(
    cfg: Config,
    chains: Sequence[str] | None,
    to_block: int | None,
    progress: Callable[[Runtime, dict[str, int]], contextlib.AbstractAsyncContextManager[None]] | None = None,
) -> dict[str, int]:
    """Index each selected chain up to `to_block` (default: its finalized head now); returns the
    indexed height per chain."""
    stop = asyncio.Event()
    install_signal_handlers(stop)
    async with open_runtime(cfg, chains, stop) as rt:
        targets: dict[str, int] = {}
        tips: dict[str, tuple[int, int]] = {}
        for name, src in rt.sources.items():
            tips[name] = await src.tips()
            targets[name] = to_block if to_block is not None else tips[name][1]
        ctx = progress(rt, targets) if progress is not None else contextlib.nullcontext()
        async with ctx:
            await asyncio.gather(
                *(
                    rt.followers[name].run(stop, to_block=targets[name], tips=tips.get(name))
                    for name in rt.followers
                )
            )
        if rt.db.gave_up:
            raise DatabaseGaveUp(rt.db.describe())
        return {name: f.status.indexed for name, f in rt.followers.items()}
