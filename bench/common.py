"""Shared helpers for the benchmarks: cache paths, a bench-owned embedded PostgreSQL, process
CPU/RSS accounting, a batched JSON-RPC helper and indexer config files.

Benchmarks are not tests: nothing here asserts on time.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
import yaml

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
CACHE = BENCH_DIR / ".cache"
VENV_BIN = REPO_ROOT / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
SNAPSHOT_ENV = "BENCH_INDEXER_SNAPSHOT"


def indexer_cmd(*args: str) -> list[str]:
    """`usd1-indexer ARGS` as `python -m indexer` so a PYTHONPATH snapshot (see `use_snapshot`)
    takes precedence over the editable install."""
    return [str(PYTHON), "-m", "indexer", *args]


def use_snapshot(argv: list[str]) -> None:
    """Re-exec this benchmark with the committed `indexer` package (git archive HEAD) first on
    PYTHONPATH: the working tree is shared with engineers editing it mid-run. Read-only git."""
    if os.environ.get(SNAPSHOT_ENV):
        return
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    dest = CACHE / "snapshots" / commit
    if not (dest / "indexer" / "__init__.py").is_file():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", "HEAD", "indexer"], cwd=REPO_ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        # The devnet helpers find anvil and solc relative to the package's repo root.
        (dest / "node_modules").symlink_to(REPO_ROOT / "node_modules")
    env = dict(os.environ)
    env[SNAPSHOT_ENV] = commit
    env["PYTHONPATH"] = os.pathsep.join([str(dest), str(REPO_ROOT)])
    log(f"using the committed indexer package {commit} from {dest}")
    os.chdir(dest)  # `python -m` puts the cwd first on sys.path: keep the working tree off it
    os.execve(str(PYTHON), [str(PYTHON), *argv], env)


def indexer_version() -> str:
    """Which indexer code is measured: a HEAD snapshot, or the working tree (dirty or not)."""
    snap = os.environ.get(SNAPSHOT_ENV)
    if snap:
        return f"commit {snap} (snapshot)"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "indexer"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"working tree on {commit}" + (" (uncommitted changes under indexer/)" if dirty else "")


TOKEN_ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- CPU accounting ------------------------------------------------------------------------------
def tree_cpu(pid: int) -> float:
    """CPU seconds (user+sys) used by a process, its live descendants and its reaped children.

    For the PostgreSQL postmaster this covers backends that already exited (reaped children)."""
    try:
        root = psutil.Process(pid)
        t = root.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                ct = child.cpu_times()
                total += ct.user + ct.system
        return total
    except psutil.Error:
        return 0.0


def tree_usage(proc: psutil.Process) -> tuple[float, float]:
    """CPU seconds and RSS (MB) of a process and its descendants, now."""
    cpu = rss = 0.0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0.0, 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            cpu += t.user + t.system + t.children_user + t.children_system
            rss += p.memory_info().rss
        except psutil.Error:
            pass
    return cpu, rss / 2**20


def _hwm_mb(pid: int) -> float:
    """A live process's peak RSS since its exec (VmHWM, MB); 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    kb = next((line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")), "0")
    return int(kb) / 1024


@dataclass
class ChildUsage:
    """What a finished child process used: CPU from wait4(); `max_rss_mb` is the child's own peak
    RSS since its exec (VmHWM); `peak_tree_rss_mb` the highest sum of RSS over the child and its
    descendants (e.g. the indexer's decode worker), sampled every 100 ms, and at least
    `max_rss_mb`. Not ru_maxrss: it counts the pre-exec copy of the parent, so a bench process
    that grew to 3 GB building a chain made every child it started "3 GB"."""

    wall: float
    cpu_user: float
    cpu_sys: float
    max_rss_mb: float
    returncode: int
    peak_tree_rss_mb: float = 0.0

    @property
    def cpu(self) -> float:
        return self.cpu_user + self.cpu_sys


def run_measured(
    cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, log_path: Path
) -> ChildUsage:
    """Run a command to completion with output to `log_path`; its own rusage via wait4 (the child
    and the descendants it waited for; not PostgreSQL or anvil)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            list(cmd), env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
        peak = [0.0, 0.0]  # [the tree's RSS sum, the child's own VmHWM], MB
        done = threading.Event()

        def sample() -> None:
            with contextlib.suppress(psutil.Error):
                ps = psutil.Process(proc.pid)
                while not done.wait(0.1):
                    peak[0] = max(peak[0], tree_usage(ps)[1])
                    peak[1] = max(peak[1], _hwm_mb(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, ru = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    return ChildUsage(
        wall=wall,
        cpu_user=ru.ru_utime,
        cpu_sys=ru.ru_stime,
        max_rss_mb=peak[1],
        returncode=proc.returncode,
        peak_tree_rss_mb=max(peak),
    )


# ---- embedded PostgreSQL owned by the benchmark --------------------------------------------------
class BenchPostgres:
    """One pgserver instance under bench/.cache/pg; every run gets a fresh database in it."""

    def __init__(self, pgdata: Path | None = None) -> None:
        self.pgdata = pgdata or CACHE / "pg"
        self._server: Any = None

    def start(self) -> BenchPostgres:
        import pgserver

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        return self

    @property
    def pid(self) -> int:
        return int(self._server.get_pid())

    @property
    def socket_dir(self) -> str:
        return str(self._server.get_postmaster_info().socket_dir)

    def uri(self, database: str = "postgres") -> str:
        return str(self._server.get_uri(database))

    def fresh_database(self, prefix: str) -> str:
        """Drop-and-create a database; returns its DSN."""
        name = re.sub(r"[^a-z0-9_]", "_", prefix.lower())
        self._server.psql(f"DROP DATABASE IF EXISTS {name};")
        self._server.psql(f"CREATE DATABASE {name};")
        return self.uri(name)

    def drop_database(self, name: str) -> None:
        self._server.psql(f"DROP DATABASE IF EXISTS {name};")

    def cpu(self) -> float:
        return tree_cpu(self.pid)

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


@contextlib.contextmanager
def bench_postgres() -> Iterator[BenchPostgres]:
    pg = BenchPostgres().start()
    try:
        yield pg
    finally:
        pg.stop()


# ---- JSON-RPC -----------------------------------------------------------------------------------
class Rpc:
    """JSON-RPC over HTTP with batches (the devnet helper only does single calls)."""

    def __init__(self, url: str, timeout: float = 300.0) -> None:
        self.url = url
        self._ids = itertools.count(1)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))

    async def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        return (await self.batch([(method, params or [])]))[0]

    async def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        body = [{"jsonrpc": "2.0", "id": next(self._ids), "method": m, "params": p} for m, p in calls]
        async with self._session.post(
            self.url, data=orjson.dumps(body), headers={"Content-Type": "application/json"}
        ) as resp:
            raw = await resp.read()
        replies = orjson.loads(raw)
        if isinstance(replies, dict):  # some servers answer a 1-item batch with an object
            replies = [replies]
        by_id = {r["id"]: r for r in replies}
        out = []
        for req in body:
            r = by_id[req["id"]]
            if r.get("error"):
                raise RuntimeError(f"{req['method']}: {r['error']}")
            out.append(r.get("result"))
        return out

    async def close(self) -> None:
        await self._session.close()


@contextlib.asynccontextmanager
async def rpc_client(url: str) -> AsyncIterator[Rpc]:
    client = Rpc(url)
    try:
        yield client
    finally:
        await client.close()


# ---- indexer config ------------------------------------------------------------------------------
def write_config(
    path: Path,
    *,
    rpc_url: str,
    dsn: str,
    data_dir: Path,
    listen: str = "127.0.0.1:0",
    max_block_range: int | None = None,
    max_concurrency: int | None = None,
    poll_interval: str = "1s",
    live_batch_blocks: int = 100,
    chain: str = "bench",
    finality: dict[str, Any] | None = None,
    ws: str | None = None,
    max_requests_per_second: float | None = None,
) -> Path:
    cfg = {
        "token": {"symbol": "USD1", "peg_usd": 1.0},
        "database": {"dsn": dsn},
        "data_dir": str(data_dir),
        "http": {"listen": listen},
        "log": {"level": "warning", "format": "json"},
        "chains": [
            {
                "name": chain,
                "kind": "evm",
                "rpc": [rpc_url],
                "token": TOKEN_ADDRESS,
                "decimals": 18,
                "start_block": 0,
                "finality": finality or {"tag": "finalized"},
                "poll_interval": poll_interval,
                "ws": ws,
                "live_batch_blocks": live_batch_blocks,
                "request_timeout": "120s",
            }
        ],
    }
    # Only what the caller sets: anything else is the daemon's default, as a user gets it.
    tuned = {
        "max_block_range": max_block_range,
        "max_concurrency": max_concurrency,
        "max_requests_per_second": max_requests_per_second,
    }
    cfg["chains"][0].update({k: v for k, v in tuned.items() if v is not None})  # type: ignore[index]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]
