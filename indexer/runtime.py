"""Composition root: builds the store, sources, followers and services from a Config, owns their
lifecycle, and tears everything down in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import assert_never

import aiohttp
import asyncpg
import structlog

from indexer import __version__
from indexer.chains.base import ChainSource
from indexer.chains.decode_pool import DecodePool
from indexer.chains.evm import EvmSource
from indexer.chains.heads import HeadWatcher
from indexer.chains.rpc import RpcPool
from indexer.config import ChainConfig, Config, EvmChainConfig, SolanaChainConfig
from indexer.errors import ConfigError
from indexer.metrics import Metrics
from indexer.model import Family
from indexer.store.db import EmbeddedPostgres, close_pool, create_pool, migrate
from indexer.store.keeper import DatabaseKeeper, KeeperSettings
from indexer.store.store import Store
from indexer.sync.audit import Auditor
from indexer.sync.controls import ControlsMonitor, EvmControls, SolanaControls
from indexer.sync.follower import Follower, FollowerSettings
from indexer.sync.lease import ChainLease
from indexer.sync.status import STATES, ChainStatus
from indexer.sync.watchlists import WatchlistService

log = structlog.get_logger(__name__)


@dataclass
class Runtime:
    cfg: Config
    metrics: Metrics
    store: Store
    pool: asyncpg.Pool
    session: aiohttp.ClientSession
    chains: list[ChainConfig]
    db: DatabaseKeeper
    sources: dict[str, ChainSource] = field(default_factory=dict)
    statuses: dict[str, ChainStatus] = field(default_factory=dict)
    followers: dict[str, Follower] = field(default_factory=dict)
    settings: dict[str, FollowerSettings] = field(default_factory=dict)
    auditors: dict[str, Auditor] = field(default_factory=dict)  # started by the daemon
    heads: list[HeadWatcher] = field(default_factory=list)
    # The watchlists in force (loaded and reloaded by the daemon: `refresh` + `run`); the
    # followers count against them and the API flags with them.
    watchlists: WatchlistService | None = None

    def update_totals(self) -> None:
        """usd1_supply_total over every chain this process follows."""
        head = sum(s.supply_head * 10 ** (18 - s.decimals) for s in self.statuses.values())
        fin = sum(s.supply_finalized * 10 ** (18 - s.decimals) for s in self.statuses.values())
        self.metrics.supply_total.labels("head").set(head / 1e18)
        self.metrics.supply_total.labels("finalized").set(fin / 1e18)


@dataclass(frozen=True)
class ChainParts:
    """What a chain of one kind is made of: its source, follower settings, the token (contract or
    mint) its rows belong to, its newHeads URL, and its control monitor (None: no controls)."""

    source: ChainSource
    settings: FollowerSettings
    token: str
    ws: str | None
    controls: ControlsMonitor | None
    audit_range_blocks: int  # heights per range-audit re-read (chains[].audit.range_blocks)


SIGNATURE_CHUNK_SLOTS = 8192  # slots per backfill fetch with `backfill_source: signatures`


def audit_range(chain: ChainConfig, default: int) -> int:
    """Heights per range-audit re-read: the configured value, else the kind's default (500 blocks,
    at most a backfill range, on EVM; 64 slots on Solana)."""
    return chain.audit.range_blocks if chain.audit.range_blocks is not None else default


def chain_parts(
    chain: ChainConfig,
    session: aiohttp.ClientSession,
    metrics: Metrics,
    store: Store,
    status: ChainStatus,
    decoder: DecodePool | None = None,
) -> ChainParts:
    """THE place a chain kind is chosen (`match` + `assert_never`): a new kind is a new case here
    and nowhere else; an eth-compatible chain with quirks is a dialect (chains/dialects.py)."""
    pool = RpcPool(
        chain.name,
        chain.rpc,
        session,
        metrics,
        timeout=chain.request_timeout,
        max_in_flight=max(4, chain.max_concurrency * 2),
        max_rps=chain.max_requests_per_second,
    )
    match chain:
        case EvmChainConfig():
            src = EvmSource(chain, pool, decoder=decoder)
            monitor = (
                EvmControls(chain, src, store, metrics, status)
                if src.dispatch.specs(Family.CONTROLS)
                else None
            )
            settings = FollowerSettings(
                start=chain.start_block,
                poll_interval=chain.poll_interval,
                backfill_chunk=chain.max_block_range,
                live_batch=chain.live_batch_blocks,
                concurrency=chain.max_concurrency,
                defer_indexes=chain.defer_indexes,
                large_event_raw=chain.large_event_raw,
                target_results=chain.target_logs_per_request,
            )
            return ChainParts(
                src,
                settings,
                chain.token,
                chain.ws,
                monitor,
                audit_range(chain, min(500, chain.max_block_range)),
            )
        case SolanaChainConfig():
            from indexer.chains.solana import SolanaSource

            settings = FollowerSettings(
                start=chain.start_slot,
                poll_interval=chain.poll_interval,
                # A signature-driven backfill reads per transaction, not per slot: large ranges.
                backfill_chunk=64 if chain.backfill_source == "blocks" else SIGNATURE_CHUNK_SLOTS,
                live_batch=64,
                concurrency=chain.max_concurrency,
                defer_indexes=chain.defer_indexes,
                large_event_raw=chain.large_event_raw,
            )
            sol = SolanaSource(chain, pool)
            controls = SolanaControls(chain, sol, store, metrics, status) if chain.controls else None
            return ChainParts(sol, settings, chain.mint, None, controls, audit_range(chain, 64))
        case _:
            assert_never(chain)


def select_chains(cfg: Config, names: Sequence[str] | None) -> list[ChainConfig]:
    if not names:
        return list(cfg.chains)
    known = {c.name for c in cfg.chains}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            [f"--chains: unknown chain {n!r} (configured: {', '.join(sorted(known))})" for n in unknown]
        )
    return [c for c in cfg.chains if c.name in names]


def keeper_settings(cfg: Config) -> KeeperSettings:
    return KeeperSettings(
        unavailable_limit=cfg.database.unavailable_limit,
        exit_on_unavailable=cfg.database.exit_on_unavailable,
    )


@contextlib.asynccontextmanager
async def database(
    cfg: Config,
    metrics: Metrics | None = None,
    *,
    dsn: str | None = None,
    run_migrations: bool = True,
) -> AsyncIterator[DatabaseKeeper]:
    """A migrated pool on the configured DSN, or on the embedded PostgreSQL under data_dir, with
    its keeper (not yet running: long-lived processes start `keeper.run`)."""
    embedded: EmbeddedPostgres | None = None
    dsn = dsn if dsn is not None else cfg.database.dsn
    if not dsn:
        embedded = EmbeddedPostgres(cfg.data_dir)
        dsn = await embedded.start()
    try:
        pool = await create_pool(dsn, min_size=cfg.database.pool_min, max_size=cfg.database.pool_max)
        try:
            if run_migrations:
                async with pool.acquire() as conn:
                    await migrate(conn)
            yield DatabaseKeeper(pool, dsn, metrics, keeper_settings(cfg), embedded)
        finally:
            await close_pool(pool)
    finally:
        if embedded is not None:
            await embedded.stop()


@contextlib.asynccontextmanager
async def kept(db: DatabaseKeeper, stop: asyncio.Event) -> AsyncIterator[DatabaseKeeper]:
    """`db.run(stop)` in a task for the duration of the block."""
    task = asyncio.create_task(db.run(stop), name="database-keeper")
    try:
        yield db
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


GC_THRESHOLDS = (50_000, 50, 100)  # CPython's default is (700, 10, 10)


def tune_gc() -> None:
    """The indexer allocates millions of short-lived, acyclic objects (parsed logs, events). With
    CPython's defaults a young collection runs every 700 net allocations and a full one walks every
    live container every ~70k; freezing what start-up built and raising the thresholds cut parse +
    decode CPU by about a quarter (measured: 10.0 -> 7.3 us/event). Cycles, rare here, are still
    collected, in bigger steps."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


@contextlib.asynccontextmanager
async def open_runtime(
    cfg: Config,
    chain_names: Sequence[str] | None = None,
    stop: asyncio.Event | None = None,
    config_dir: Path | None = None,
) -> AsyncIterator[Runtime]:
    """Everything a run needs, the database kept alive throughout; with `stop`, the keeper sets it
    when the database stays unreachable past its limit and `database.exit_on_unavailable` is on.
    `config_dir`: where relative watchlist paths resolve (default: the working directory)."""
    chains = select_chains(cfg, chain_names)
    metrics = Metrics()
    metrics.build_info.labels(__version__).set(1)
    async with (
        database(cfg, metrics) as db,
        kept(db, stop or asyncio.Event()),
        aiohttp.ClientSession() as session,
    ):
        pool = db.pool
        store = Store(pool)
        rt = Runtime(cfg, metrics, store, pool, session, chains, db)
        rt.watchlists = WatchlistService.configured(
            cfg, metrics, session, config_dir, [c.name for c in chains]
        )
        # Workers start on the first large reply: none for a process without EVM backfill.
        decoder = DecodePool(cfg.decode_processes) if cfg.decode_processes else None
        try:
            for chain in chains:
                status = ChainStatus(
                    chain.name,
                    chain.kind,
                    chain.decimals,
                    lag_budget=chain.lag_budget,
                    stall_after=max(30.0, 10 * chain.poll_interval, 3 * chain.request_timeout),
                )
                parts = chain_parts(chain, session, metrics, store, status, decoder)
                src = parts.source
                rt.sources[chain.name] = src
                rt.statuses[chain.name] = status
                rt.settings[chain.name] = parts.settings
                await store.register_chain(
                    chain.name,
                    chain.kind,
                    parts.token,
                    chain.decimals,
                    start=chain.first_height,
                    families=chain.family_configs(),
                )
                metrics.init_chain(chain.name, chain.lag_budget, STATES)
                for ep in getattr(getattr(src, "rpc", None), "endpoints", []):
                    metrics.rpc_endpoint_up.labels(chain.name, ep.label).set(1)
                heads = None
                if parts.ws:
                    heads = await HeadWatcher(chain.name, parts.ws).start()
                    rt.heads.append(heads)
                rt.followers[chain.name] = Follower(
                    src,
                    store,
                    metrics,
                    status,
                    parts.settings,
                    on_update=rt.update_totals,
                    lease=ChainLease(pool, chain.name),
                    heads=heads,
                    controls=parts.controls,
                    db=db,
                    watchlists=rt.watchlists.current if rt.watchlists is not None else None,
                )
                rt.auditors[chain.name] = Auditor(
                    src,
                    store,
                    metrics,
                    status,
                    chain.audit,
                    start=parts.settings.start,
                    range_blocks=parts.audit_range_blocks,
                )
            tune_gc()
            yield rt
        finally:
            for watcher in rt.heads:
                await watcher.close()
            for src in rt.sources.values():
                await src.close()
            if decoder is not None:
                await decoder.close()
