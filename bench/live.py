"""Live latency of `usd1-indexer run` on anvil (poll_interval 100 ms).

- Head latency: 200 blocks, each with one mint (a Transfer from 0x0, so the supply moves by a
  unique amount). Per block, from the moment anvil returned the mined transaction (automine) to
  (a) `usd1_supply{finality="head"}` on /metrics showing the new supply and (b) `/api/v1/supply`
  showing that block as its head block. Both endpoints are polled every 2 ms by the benchmark (/metrics filtered to `usd1_supply`).
  A random 0-100 ms pause between blocks keeps mining out of phase with the daemon's poll loop.
- Reorg recovery: `anvil_reorg` of depth 1..5 (3 times each), replacing the blocks with ones
  carrying a different mint; time until `/api/v1/supply` reports the new canonical head hash.
- /metrics render time as seen by a client (and the number of series).

Finality for this run is `confirmations: 12`, deeper than the reorgs (anvil's `finalized` tag is
head-4, which a depth-5 reorg would cross: that is a finality violation, by design).

    .venv/bin/python -m bench.live [--blocks 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from bench.common import (
    CACHE,
    BenchPostgres,
    bench_postgres,
    indexer_cmd,
    log,
    percentile,
    use_snapshot,
    write_config,
)
from indexer.devnet.anvil import Anvil, free_port
from indexer.devnet.solc import compile_token
from indexer.devnet.token import DETERMINISTIC_TOKEN_ADDRESS, TestToken

POLL_EVERY = 0.002
HOLDER = "0x00000000000000000000000000000000000b0b01"


@dataclass
class LiveResult:
    blocks: int
    poll_interval_ms: float
    ws: bool
    metrics_p50_ms: float
    metrics_p99_ms: float
    api_p50_ms: float
    api_p99_ms: float
    reorg_ms_by_depth: dict[int, list[float]] = field(default_factory=dict)
    reorg_p50_ms: float = 0.0
    reorg_max_ms: float = 0.0
    metrics_render_p50_ms: float = 0.0
    metrics_render_p99_ms: float = 0.0
    metrics_series: int = 0
    daemon_cpu_s: float = 0.0
    daemon_rss_mb: float = 0.0
    errors: list[str] = field(default_factory=list)


_SUPPLY_RE = re.compile(r'^usd1_supply\{chain="bench",finality="head"\} (\S+)$', re.MULTILINE)


async def _metrics_supply(http: aiohttp.ClientSession, base: str) -> float | None:
    # Only the usd1_supply family (`name[]`), as a targeted scrape would: the poll itself should
    # not load the daemon it measures.
    async with http.get(f"{base}/metrics", params=[("name[]", "usd1_supply")]) as resp:
        text = await resp.text()
    m = _SUPPLY_RE.search(text)
    return float(m.group(1)) if m else None


async def _api_head(http: aiohttp.ClientSession, base: str) -> dict[str, Any] | None:
    async with http.get(f"{base}/api/v1/supply") as resp:
        if resp.status != 200:
            return None
        body = await resp.json()
    chains = body.get("chains") or []
    return chains[0]["head"] if chains else None


async def _until(pred: Any, timeout: float) -> float:
    """Poll `pred()` every POLL_EVERY until true; returns the monotonic time it first was."""
    deadline = time.perf_counter() + timeout
    while True:
        if await pred():
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(POLL_EVERY)


async def measure(pg: BenchPostgres, blocks: int, poll_ms: float = 100, ws: bool = False) -> LiveResult:
    """With `ws`, the daemon subscribes to newHeads (polling stays as the fallback)."""
    workdir = CACHE / "runs" / "live"
    errors: list[str] = []
    async with Anvil(slots_in_an_epoch=2) as anvil:
        token = await TestToken.deploy(
            anvil, await compile_token(), expect_address=DETERMINISTIC_TOKEN_ADDRESS
        )
        await token.mint(HOLDER, 10**24)
        await anvil.mine(20)
        dsn = pg.fresh_database("bench_live")
        port = free_port()
        cfg = write_config(
            workdir / "config.yaml",
            rpc_url=anvil.url,
            dsn=dsn,
            data_dir=workdir / "data",
            listen=f"127.0.0.1:{port}",
            poll_interval=f"{int(poll_ms)}ms",
            finality={"confirmations": 12},
            ws=anvil.url.replace("http://", "ws://") if ws else None,
        )
        base = f"http://127.0.0.1:{port}"
        logf = (workdir / "daemon.log").open("wb")
        proc = subprocess.Popen(
            indexer_cmd("run", "--config", str(cfg)),
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=logf,
        )
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
                supply = await token.total_supply()
                head = await anvil.block_number()

                async def caught_up() -> bool:
                    try:
                        h = await _api_head(http, base)
                    except aiohttp.ClientError:
                        return False
                    return h is not None and h.get("block") == head

                await _until(caught_up, 60)
                log(f"live: daemon caught up at block {head}; mining {blocks} blocks")
                metrics_lat: list[float] = []
                api_lat: list[float] = []
                rng = random.Random(7)
                for i in range(blocks):
                    amount = (i + 1) * 10**18
                    receipt = await token.mint(HOLDER, amount)
                    t0 = time.perf_counter()
                    supply += amount
                    want_supply = supply / 1e18
                    want_block = receipt.block_number

                    async def metrics_ok(want: float = want_supply) -> bool:
                        got = await _metrics_supply(http, base)
                        return got is not None and abs(got - want) < 0.5

                    async def api_ok(want: int = want_block) -> bool:
                        h = await _api_head(http, base)
                        return h is not None and h.get("block") is not None and h["block"] >= want

                    try:
                        t_m, t_a = await asyncio.gather(_until(metrics_ok, 10), _until(api_ok, 10))
                        metrics_lat.append((t_m - t0) * 1000)
                        api_lat.append((t_a - t0) * 1000)
                    except TimeoutError:
                        errors.append(f"block {want_block}: not reflected within 10 s")
                    await asyncio.sleep(rng.uniform(0, 0.1))

                reorgs = await _reorgs(anvil, token, http, base, errors)
                render, series = await _render_times(http, base)
            ps_cpu, ps_rss = _proc_usage(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            logf.close()
    all_reorg = [x for v in reorgs.values() for x in v]
    return LiveResult(
        blocks=blocks,
        poll_interval_ms=poll_ms,
        ws=ws,
        metrics_p50_ms=round(percentile(metrics_lat, 50), 1),
        metrics_p99_ms=round(percentile(metrics_lat, 99), 1),
        api_p50_ms=round(percentile(api_lat, 50), 1),
        api_p99_ms=round(percentile(api_lat, 99), 1),
        reorg_ms_by_depth={d: [round(x, 1) for x in v] for d, v in reorgs.items()},
        reorg_p50_ms=round(percentile(all_reorg, 50), 1),
        reorg_max_ms=round(max(all_reorg), 1) if all_reorg else float("nan"),
        metrics_render_p50_ms=round(percentile(render, 50), 2),
        metrics_render_p99_ms=round(percentile(render, 99), 2),
        metrics_series=series,
        daemon_cpu_s=round(ps_cpu, 2),
        daemon_rss_mb=round(ps_rss, 1),
        errors=errors,
    )


async def _reorgs(
    anvil: Anvil, token: TestToken, http: aiohttp.ClientSession, base: str, errors: list[str]
) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    n = 0
    for depth in range(1, 6):
        for _ in range(3):
            n += 1
            await anvil.mine(depth + 2)  # fresh blocks to reorg, above the finality depth of the last one
            await asyncio.sleep(0.5)
            # Replacement blocks: the first carries a mint of a new amount (supply changes too).
            tx = token.mint_tx(HOLDER, (1000 + n) * 10**18)
            await anvil.rpc("anvil_reorg", [depth, [[tx, 0]]])
            t0 = time.perf_counter()
            new_head = await anvil.rpc("eth_getBlockByNumber", ["latest", False])
            want_hash = str(new_head["hash"]).lower()

            async def recovered(want: str = want_hash) -> bool:
                h = await _api_head(http, base)
                return h is not None and str(h.get("block_hash", "")).lower() == want

            try:
                t1 = await _until(recovered, 10)
                out.setdefault(depth, []).append((t1 - t0) * 1000)
            except TimeoutError:
                errors.append(f"reorg depth {depth}: head hash not reflected within 10 s")
    return out


async def _render_times(http: aiohttp.ClientSession, base: str, n: int = 50) -> tuple[list[float], int]:
    times = []
    text = ""
    for _ in range(n):
        t0 = time.perf_counter()
        async with http.get(f"{base}/metrics") as resp:
            text = await resp.text()
        times.append((time.perf_counter() - t0) * 1000)
        await asyncio.sleep(0.02)
    series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    return times, series


def _proc_usage(pid: int) -> tuple[float, float]:
    import psutil

    try:
        p = psutil.Process(pid)
        t = p.cpu_times()
        return t.user + t.system, p.memory_info().rss / 2**20
    except psutil.Error:
        return 0.0, 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, default=200)
    ap.add_argument("--ws", action="store_true", help="Subscribe to newHeads instead of polling only.")
    ap.add_argument("--snapshot", action="store_true", help="Measure the committed indexer (git HEAD).")
    args = ap.parse_args()
    if args.snapshot:
        use_snapshot(["-m", "bench.live", *sys.argv[1:]])

    async def go() -> None:
        with bench_postgres() as pg:
            res = await measure(pg, args.blocks, ws=args.ws)
        print(json.dumps(asdict(res), indent=2))

    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(go())


if __name__ == "__main__":
    main()
