"""Benchmark peers on the same cached chain, same block range, same run:

- ethereum-etl 2.4.2 `export_token_transfers` (its own venv under bench/.cache/etl-venv; writes
  CSV, no database);
- Ponder 1.0.0 (bench/ponder: a minimal app storing every Transfer and updating balances, into a
  fresh database of the bench's PostgreSQL, or PGlite with `--ponder-db pglite`).

    .venv/bin/python -m bench.peers [--events N] [--only etl|ponder]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass

import asyncpg
import psutil

from bench.common import BENCH_DIR, CACHE, BenchPostgres, bench_postgres, log, run_measured, tree_usage
from bench.workload import ChainInfo, Spec, serve
from indexer.devnet.anvil import free_port

ETL_VENV = CACHE / "etl-venv"
ETL_BIN = ETL_VENV / "bin" / "ethereumetl"
PONDER_DIR = BENCH_DIR / "ponder"
PONDER_BIN = PONDER_DIR / "node_modules" / ".bin" / "ponder"


@dataclass
class PeerResult:
    peer: str
    ok: bool
    events: int = 0
    wall_s: float = 0.0
    events_per_s: float = 0.0
    cpu_s: float = 0.0
    cpu_postgres_s: float = 0.0
    peak_rss_mb: float = 0.0
    settings: str = ""
    error: str = ""


# ---- installs ------------------------------------------------------------------------------------
def ensure_etl() -> str | None:
    """Install ethereum-etl into its own venv (cached); returns an error text or None."""
    if ETL_BIN.is_file():
        return None
    log("peers: installing ethereum-etl 2.4.2 into bench/.cache/etl-venv")
    steps = [
        [sys.executable, "-m", "venv", str(ETL_VENV)],
        [str(ETL_VENV / "bin" / "pip"), "install", "-q", "ethereum-etl==2.4.2"],
        # ethereum-etl 2.4.2 pins parsimonious<0.9 (via eth-abi 2), which breaks on Python 3.11.
        [str(ETL_VENV / "bin" / "pip"), "install", "-q", "parsimonious==0.9.0"],
    ]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            return f"{' '.join(cmd[-2:])}: exit {proc.returncode}: {proc.stderr[-800:]}"
    return None


def ensure_ponder() -> str | None:
    if PONDER_BIN.is_file():
        return None
    log("peers: npm ci in bench/ponder")
    proc = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=PONDER_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return f"npm ci: exit {proc.returncode}: {proc.stderr[-800:]}"
    return None


# ---- ethereum-etl --------------------------------------------------------------------------------
def run_etl(anvil_url: str, info: ChainInfo, *, batch_size: int = 20, workers: int = 4) -> PeerResult:
    settings = f"--batch-size {batch_size} --max-workers {workers}"
    err = ensure_etl()
    if err:
        return PeerResult("ethereum-etl 2.4.2", False, settings=settings, error=err)
    from eth_utils import to_checksum_address

    fin = info.head - 4
    workdir = CACHE / "runs" / "etl"
    out = workdir / "token_transfers.csv"
    workdir.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    cmd = [
        str(ETL_BIN),
        "export_token_transfers",
        "--start-block", "0",
        "--end-block", str(fin),
        "--batch-size", str(batch_size),
        "--max-workers", str(workers),
        "--provider-uri", anvil_url,
        "--tokens", to_checksum_address(info.token),
        "--output", str(out),
    ]  # fmt: skip
    usage = run_measured(cmd, log_path=workdir / "etl.log")
    if usage.returncode != 0 or not out.is_file():
        tail = (workdir / "etl.log").read_text()[-800:]
        return PeerResult(
            "ethereum-etl 2.4.2", False, settings=settings, error=f"exit {usage.returncode}: {tail}"
        )
    with out.open("rb") as fh:
        rows = sum(1 for _ in fh) - 1
    return PeerResult(
        "ethereum-etl 2.4.2",
        rows == info.events,
        events=rows,
        wall_s=round(usage.wall, 2),
        events_per_s=round(rows / usage.wall),
        cpu_s=round(usage.cpu, 2),
        peak_rss_mb=round(usage.peak_tree_rss_mb, 1),
        settings=settings + " (CSV output, no database)",
        error="" if rows == info.events else f"exported {rows} rows, expected {info.events}",
    )


# ---- Ponder --------------------------------------------------------------------------------------
async def run_ponder(
    anvil_url: str,
    info: ChainInfo,
    pg: BenchPostgres,
    *,
    db: str = "postgres",
    timeout: float = 3600,
    max_rps: int = 10_000,
) -> PeerResult:
    name = "Ponder 1.0.0"
    err = ensure_ponder()
    if err:
        return PeerResult(name, False, error=err)
    fin = info.head - 4
    workdir = CACHE / "runs" / "ponder"
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(os.environ)
    env.update(
        PONDER_RPC_URL=anvil_url,
        PONDER_END_BLOCK=str(fin),
        PONDER_TOKEN=info.token,
        DATABASE_SCHEMA="bench",
        PONDER_TELEMETRY_DISABLED="true",
        NODE_ENV="production",
        PONDER_MAX_RPS=str(max_rps),
    )
    env.pop("DATABASE_URL", None)
    if db == "postgres":
        dbname = "bench_ponder"
        dsn = pg.fresh_database(dbname)
        env["DATABASE_URL"] = f"postgresql://postgres@localhost/{dbname}?host={pg.socket_dir}"
        settings = f"same PostgreSQL (fresh database), maxRequestsPerSecond {max_rps}"
    else:
        pglite = workdir / "pglite"
        subprocess.run(["rm", "-rf", str(pglite)], check=False)
        env["PONDER_PGLITE_DIR"] = str(pglite)
        settings = f"PGlite, maxRequestsPerSecond {max_rps}"
    subprocess.run(["rm", "-rf", str(PONDER_DIR / ".ponder")], check=False)
    logf = (workdir / "ponder.log").open("wb")
    cmd = [str(PONDER_BIN), "start", "--port", str(port), "--log-format", "json", "--log-level", "warn"]
    pg_before = pg.cpu()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=PONDER_DIR, env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
    ps = psutil.Process(proc.pid)
    peak_rss = cpu = 0.0
    ready = False
    try:
        deadline = started + timeout
        while time.perf_counter() < deadline and proc.poll() is None:
            c, r = tree_usage(ps)
            cpu, peak_rss = max(cpu, c), max(peak_rss, r)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as resp:
                    if resp.status == 200:
                        ready = True
                        break
            except (urllib.error.URLError, OSError, TimeoutError):
                pass
            await asyncio.sleep(0.2)
        wall = time.perf_counter() - started
        c, r = tree_usage(ps)
        cpu, peak_rss = max(cpu, c), max(peak_rss, r)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        logf.close()
    pg_cpu = pg.cpu() - pg_before
    if not ready:
        tail = (workdir / "ponder.log").read_text(errors="replace")[-1500:]
        return PeerResult(name, False, settings=settings, error=f"not ready (exit {proc.returncode}): {tail}")
    rows = -1
    if db == "postgres":
        conn = await asyncpg.connect(dsn)
        try:
            rows = int(await conn.fetchval("SELECT count(*) FROM bench.transfer_event"))
        finally:
            await conn.close()
    ok = rows in (-1, info.events)
    return PeerResult(
        name,
        ok,
        events=rows if rows >= 0 else info.events,
        wall_s=round(wall, 2),
        events_per_s=round(info.events / wall),
        cpu_s=round(cpu, 2),
        cpu_postgres_s=round(pg_cpu, 2) if db == "postgres" else 0.0,
        peak_rss_mb=round(peak_rss, 1),
        settings=settings + "; wall = start to /ready (includes its build and RPC cache writes)",
        error="" if ok else f"stored {rows} transfers, expected {info.events}",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=Spec().events)
    ap.add_argument("--only", choices=["etl", "ponder"], default=None)
    ap.add_argument("--ponder-db", choices=["postgres", "pglite"], default="postgres")
    args = ap.parse_args()

    async def go() -> None:
        async with serve(Spec(events=args.events)) as (anvil, info):
            with bench_postgres() as pg:
                if args.only in (None, "etl"):
                    print(json.dumps(asdict(await asyncio.to_thread(run_etl, anvil.url, info)), indent=2))
                if args.only in (None, "ponder"):
                    res = await run_ponder(anvil.url, info, pg, db=args.ponder_db)
                    print(json.dumps(asdict(res), indent=2))

    asyncio.run(go())


if __name__ == "__main__":
    main()
