"""Backfill throughput of usd1-indexer on the cached benchmark chain.

Two figures:
- end to end: `usd1-indexer backfill` as a child process from block 0 to the finalized head into
  a fresh database of the bench's embedded PostgreSQL; wall time, events/s, CPU seconds of the
  indexer (wait4 rusage) and of PostgreSQL (postmaster tree delta), peak RSS of the indexer.
- insert path only: logs pre-fetched into memory, then only `decode_logs` + `Store.commit` timed,
  in the same batches the follower would commit.

    .venv/bin/python -m bench.backfill [--events 1000000] [--max-block-range 20] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import dataclasses
import io
import json
import os
import pstats
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import (
    CACHE,
    VENV_BIN,
    BenchPostgres,
    bench_postgres,
    indexer_cmd,
    log,
    rpc_client,
    run_measured,
    use_snapshot,
    write_config,
)
from bench.workload import EVENTS_PER_BLOCK, ChainInfo, Spec, serve
from indexer.chains.evm_decode import TRANSFER_TOPIC
from indexer.chains.evm_families import LogDispatch, decode_logs
from indexer.config import EvmChainConfig
from indexer.model import BlockRef
from indexer.runtime import tune_gc
from indexer.store.copy_binary import encode_event_rows
from indexer.store.db import migrate
from indexer.store.store import Batch, Store
from indexer.sync.follower import FollowerSettings

CHAIN = "bench"
# The daemon runs on its default configuration unless a flag overrides it (None: the default).
DEFAULT_RANGE: int | None = None
DEFAULT_CONCURRENCY: int | None = None
_EVM_DEFAULTS = EvmChainConfig.model_fields


def default(key: str) -> Any:
    """The daemon's default for a chain config key (what a user who sets nothing gets)."""
    return _EVM_DEFAULTS[key].default


def config_text(
    max_block_range: int | None, concurrency: int | None, max_requests_per_second: float | None = None
) -> str:
    """The chain settings a run used, as printed beside its figures."""
    parts = [
        f"target_logs_per_request {default('target_logs_per_request')}",
        f"max_block_range {max_block_range or default('max_block_range')}",
        f"max_concurrency {concurrency or default('max_concurrency')}",
    ]
    if max_requests_per_second is not None:
        parts.append(f"max_requests_per_second {max_requests_per_second:g}")
    tuned = max_block_range is not None or concurrency is not None or max_requests_per_second is not None
    return ("tuned: " if tuned else "default config: ") + ", ".join(parts)


def insert_batch_blocks(max_block_range: int | None) -> int:
    """Blocks per pre-fetched batch on the insert path: the daemon's default sizing on the bench
    chain (about target_logs_per_request events per batch), or the given range."""
    if max_block_range is not None:
        return max_block_range
    return max(1, default("target_logs_per_request") // EVENTS_PER_BLOCK)


@dataclass
class BackfillResult:
    events: int
    blocks: int
    wall_s: float
    events_per_s: float
    cpu_indexer_s: float
    cpu_postgres_s: float
    cpu_anvil_s: float
    peak_rss_mb: float
    max_block_range: int | None  # None: the daemon's default (sized by target_logs_per_request)
    concurrency: int | None
    verified: bool
    note: str = ""


@dataclass
class InsertPathResult:
    events: int
    batches: int
    decode_s: float  # summed decode time
    commit_s: float  # summed time awaiting Store.commit (decoding of the next batch overlaps it)
    wall_s: float  # first decode to the last commit (and the deferred index build)
    events_per_s: float  # events / wall_s
    commit_events_per_s: float
    cpu_postgres_s: float
    statements: dict[str, float] = dataclasses.field(default_factory=dict)  # seconds per SQL, summed
    index_build_s: float = 0.0  # deferred index build + balance fold at the end (in commit_s)
    variant: str = ""


async def _verify(dsn: str, info: ChainInfo) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        n = int(await conn.fetchval("SELECT count(*) FROM events WHERE chain = $1", CHAIN))
        row = await conn.fetchrow(
            "SELECT minted - burned AS s FROM supply WHERE chain = $1 ORDER BY block_number DESC LIMIT 1",
            CHAIN,
        )
        return n, int(row["s"]) if row else 0
    finally:
        await conn.close()


def _anvil_cpu(pid: int) -> float:
    from bench.common import tree_cpu

    return tree_cpu(pid)


async def run_daemon_backfill(
    anvil_url: str,
    anvil_pid: int,
    info: ChainInfo,
    pg: BenchPostgres,
    *,
    max_block_range: int | None = DEFAULT_RANGE,
    concurrency: int | None = DEFAULT_CONCURRENCY,
    profile: Path | None = None,
    tag: str = "backfill",
    max_requests_per_second: float | None = None,
) -> BackfillResult:
    """`usd1-indexer backfill` end to end into a fresh database."""
    dsn = pg.fresh_database(f"bench_{tag}")
    workdir = CACHE / "runs" / tag
    cfg = write_config(
        workdir / "config.yaml",
        rpc_url=anvil_url,
        dsn=dsn,
        data_dir=workdir / "data",
        max_block_range=max_block_range,
        max_concurrency=concurrency,
        max_requests_per_second=max_requests_per_second,
    )
    cmd = indexer_cmd("backfill", "--config", str(cfg), "--no-progress")
    if profile is not None:
        cmd = [
            str(VENV_BIN / "py-spy"),
            "record",
            "--format",
            "raw",
            "-r",
            "200",
            "-o",
            str(profile),
            "--",
            *cmd,
        ]
    # Migrations run inside the measured process; that is part of the end-to-end figure.
    pg_before, anvil_before = pg.cpu(), _anvil_cpu(anvil_pid)
    usage = await asyncio.to_thread(run_measured, cmd, cwd=workdir, log_path=workdir / "indexer.log")
    pg_cpu, anvil_cpu = pg.cpu() - pg_before, _anvil_cpu(anvil_pid) - anvil_before
    if usage.returncode != 0:
        tail = (workdir / "indexer.log").read_text()[-2000:]
        raise RuntimeError(f"usd1-indexer backfill exited {usage.returncode}:\n{tail}")
    n, supply = await _verify(dsn, info)
    ok = n == info.events and supply == info.supply
    if not ok:
        log(f"backfill: VERIFY FAILED: {n} events (want {info.events}), supply {supply} (want {info.supply})")
    return BackfillResult(
        events=n,
        blocks=info.head,
        wall_s=round(usage.wall, 3),
        events_per_s=round(n / usage.wall),
        cpu_indexer_s=round(usage.cpu, 2),
        cpu_postgres_s=round(pg_cpu, 2),
        cpu_anvil_s=round(anvil_cpu, 2),
        peak_rss_mb=round(usage.peak_tree_rss_mb, 1),
        max_block_range=max_block_range,
        concurrency=concurrency,
        verified=ok,
        note="profiled with py-spy (slower)" if profile else "",
    )


async def prefetch(anvil_url: str, info: ChainInfo, max_block_range: int) -> list[tuple[list[Any], BlockRef]]:
    """Raw logs per batch (as orjson parsed them) and each batch's end header."""
    fin = info.head - 4
    out: list[tuple[list[Any], BlockRef]] = []
    async with rpc_client(anvil_url) as rpc:
        for start in range(0, fin + 1, max_block_range):
            end = min(fin, start + max_block_range - 1)
            logs, hdr = await rpc.batch(
                [
                    (
                        "eth_getLogs",
                        [
                            {
                                "fromBlock": hex(start),
                                "toBlock": hex(end),
                                "address": info.token,
                                "topics": [TRANSFER_TOPIC],
                            }
                        ],
                    ),
                    ("eth_getBlockByNumber", [hex(end), False]),
                ]
            )
            ref = BlockRef(int(hdr["number"], 16), hdr["hash"], hdr["parentHash"], int(hdr["timestamp"], 16))
            out.append((logs, ref))
    return out


async def run_insert_path(
    anvil_url: str,
    info: ChainInfo,
    pg: BenchPostgres,
    *,
    max_block_range: int | None = DEFAULT_RANGE,
    profile_out: Path | None = None,
    statements: bool = False,
    defer_indexes: bool = True,
    sequential: bool = False,
    encode_rows: bool = False,
    batches: list[tuple[list[Any], BlockRef]] | None = None,
) -> InsertPathResult:
    """Decode + Store.commit only, on pre-fetched logs, in follower-sized batches.

    `statements`: sum asyncpg's per-query elapsed time by SQL text (COPY is not a logged query:
    it is in the remainder). `defer_indexes`: as the follower does on a first backfill, drop the
    chain's secondary event indexes first, then at the end build them and fold balances
    concurrently (timed, in commit_s); False maintains them row by row and folds every 250k
    events, to show what deferring saves. `encode_rows`: the decode step also encodes the rows
    for binary COPY (`copy_binary`), as the daemon's decode worker does; by default asyncpg does,
    as in the daemon's own process. Everything runs in this one process (no decode worker): in
    one process asyncpg's encoder is the faster (measured at 1M: 47.6k events/s with
    `copy_binary` vs 61k with asyncpg)."""
    if batches is None:
        batches = await prefetch(anvil_url, info, insert_batch_blocks(max_block_range))
    dsn = pg.fresh_database("bench_insert_path")
    per_sql: collections.Counter[str] = collections.Counter()

    def on_query(q: Any) -> None:
        per_sql[" ".join(q.query.split())[:70]] += q.elapsed

    async def init(conn: asyncpg.Connection) -> None:
        if statements:
            conn.add_query_logger(on_query)

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=init)
    assert pool is not None
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            per_sql.clear()
        store = Store(pool)
        await store.register_chain(CHAIN, "evm", info.token.lower(), 18)
        if defer_indexes:
            await store.drop_event_indexes(CHAIN)
        tune_gc()  # as the daemon does once it has started
        prof = cProfile.Profile() if profile_out is not None else None
        decode_s = commit_s = 0.0
        cursor: BlockRef | None = None
        fin = info.head - 4
        total = 0
        pg_before = pg.cpu()
        if prof is not None:
            prof.enable()
        fold_every = FollowerSettings.fold_balances_every  # as the follower's backfill does
        unfolded = 0
        # As in the daemon, the next batch is decoded while the current commit waits on
        # PostgreSQL (a bounded queue of decoded batches); `sequential` decodes only between commits.
        decoded: asyncio.Queue[tuple[list[Any], bytes | None]] = asyncio.Queue(maxsize=2)

        dispatch = LogDispatch.build(info.token)

        def decode(logs: list[Any]) -> tuple[list[Any], bytes | None]:
            nonlocal decode_s
            t0 = time.perf_counter()
            events = decode_logs(CHAIN, logs, dispatch).events
            rows = encode_event_rows(events) if encode_rows else None
            decode_s += time.perf_counter() - t0
            return events, rows

        async def produce() -> None:
            for logs, _ in batches:
                await decoded.put(decode(logs))
                await asyncio.sleep(0)  # let the commit's replies in between batches

        started = time.perf_counter()
        producer = asyncio.create_task(produce()) if not sequential else None
        for i, (logs, ref) in enumerate(batches):
            events, rows = decode(logs) if producer is None else await decoded.get()
            t1 = time.perf_counter()
            unfolded += len(events)
            fold = not defer_indexes and (i == len(batches) - 1 or unfolded >= fold_every)
            if fold:
                unfolded = 0
            await store.commit(
                Batch(
                    CHAIN,
                    expected=cursor,
                    cursor=ref,
                    finalized=fin,
                    events=events,
                    copy_rows=rows,
                    refs=(ref,),
                    fold_balances=fold,
                )
            )
            commit_s += time.perf_counter() - t1
            cursor = ref
            total += len(events)
        if producer is not None:
            await producer
        index_build_s = 0.0
        if defer_indexes:
            t0 = time.perf_counter()
            await asyncio.gather(store.build_event_indexes(CHAIN), store.fold_balances(CHAIN))
            index_build_s = time.perf_counter() - t0
            commit_s += index_build_s
        wall_s = time.perf_counter() - started
        if prof is not None:
            prof.disable()
        pg_cpu = pg.cpu() - pg_before
    finally:
        await pool.close()
    n, supply = await _verify(dsn, info)
    if n != info.events or supply != info.supply:
        raise RuntimeError(
            f"insert path stored {n} events / supply {supply}; want {info.events} / {info.supply}"
        )
    if prof is not None and profile_out is not None:
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(25)
        profile_out.write_text(s.getvalue())
    return InsertPathResult(
        events=total,
        batches=len(batches),
        decode_s=round(decode_s, 3),
        commit_s=round(commit_s, 3),
        wall_s=round(wall_s, 3),
        events_per_s=round(total / wall_s),
        commit_events_per_s=round(total / commit_s),
        cpu_postgres_s=round(pg_cpu, 2),
        statements={k: round(v, 3) for k, v in per_sql.most_common(8)},
        index_build_s=round(index_build_s, 3),
        variant=", ".join(
            v
            for v in (
                "" if defer_indexes else "secondary indexes maintained per row",
                "decode and commit in turn" if sequential else "",
                "rows encoded by copy_binary in this process" if encode_rows else "",
            )
            if v
        ),
    )


def top_functions(raw_profile: Path, limit: int = 20) -> list[tuple[str, float, float]]:
    """(function, self %, inclusive %) from a py-spy `--format raw` (collapsed stacks) file."""
    self_count: collections.Counter[str] = collections.Counter()
    incl_count: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw_profile.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = stack.split(";")
        total += count
        self_count[_short(frames[-1])] += count
        for f in {_short(f) for f in frames}:
            incl_count[f] += count
    if total == 0:
        return []
    return [
        (name, round(100 * c / total, 1), round(100 * incl_count[name] / total, 1))
        for name, c in self_count.most_common(limit)
    ]


def _short(frame: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py:123)"
    name, _, loc = frame.partition(" (")
    return f"{name} ({os.path.basename(loc.rstrip(')')).split(':')[0]})" if loc else name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=Spec().events)
    ap.add_argument("--max-block-range", type=int, default=DEFAULT_RANGE)
    ap.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    ap.add_argument("--profile", action="store_true", help="Also run once under py-spy and cProfile.")
    ap.add_argument("--skip-insert-path", action="store_true")
    ap.add_argument("--skip-daemon", action="store_true")
    ap.add_argument(
        "--experiments",
        action="store_true",
        help="Insert path: per-SQL times; secondary indexes maintained per row instead of deferred.",
    )
    ap.add_argument("--snapshot", action="store_true", help="Measure the committed indexer (git HEAD).")
    args = ap.parse_args()
    if args.snapshot:
        use_snapshot(["-m", "bench.backfill", *sys.argv[1:]])
    spec = Spec(events=args.events)

    async def go() -> None:
        async with serve(spec) as (anvil, info):
            assert anvil._proc is not None
            with bench_postgres() as pg:
                if not args.skip_daemon:
                    res = await run_daemon_backfill(
                        anvil.url,
                        anvil._proc.pid,
                        info,
                        pg,
                        max_block_range=args.max_block_range,
                        concurrency=args.concurrency,
                    )
                    print(json.dumps(asdict(res), indent=2))
                if args.experiments:
                    pre = await prefetch(anvil.url, info, insert_batch_blocks(args.max_block_range))
                    variants = (
                        {"statements": True},
                        {"defer_indexes": False},
                        {"sequential": True},
                        {"encode_rows": True},
                    )
                    for kw in variants:
                        r = await run_insert_path(anvil.url, info, pg, batches=pre, **kw)  # type: ignore[arg-type]
                        print(json.dumps(asdict(r), indent=2))
                if not args.skip_insert_path:
                    ins = await run_insert_path(
                        anvil.url,
                        info,
                        pg,
                        max_block_range=args.max_block_range,
                        profile_out=CACHE / "insert_path.cprofile.txt" if args.profile else None,
                    )
                    print(json.dumps(asdict(ins), indent=2))
                if args.profile:
                    raw = CACHE / "backfill.pyspy.txt"
                    await run_daemon_backfill(
                        anvil.url,
                        anvil._proc.pid,
                        info,
                        pg,
                        max_block_range=args.max_block_range,
                        concurrency=args.concurrency,
                        profile=raw,
                        tag="backfill_profiled",
                    )
                    for name, self_pct, incl_pct in top_functions(raw, 30):
                        print(f"{self_pct:6.1f}% self {incl_pct:6.1f}% incl  {name}")

    asyncio.run(go())


if __name__ == "__main__":
    main()
