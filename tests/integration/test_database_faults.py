"""The database under fault, on real parts (anvil, the embedded PostgreSQL, the real daemon):

- the embedded server killed with SIGKILL while the daemon follows the head, and during a
  backfill: the daemon restarts it by itself and the index ends exact; the API answers 200 or 503
  JSON meanwhile, never a 500;
- a daemon killed with SIGKILL leaves its server running: the next daemon adopts it, and its clean
  stop leaves no PostgreSQL process behind;
- a configured DSN that stays down past `database.unavailable_limit` with exit_on_unavailable:
  the daemon stops with DatabaseGaveUp (the CLI exits 3).
(`test_reliability.test_postgres_restart_mid_run` covers a DSN that comes back: 503s, /healthz.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import psutil
import pytest

from indexer.daemon import run_daemon
from indexer.devnet.anvil import Anvil, free_port
from indexer.devnet.token import TestToken
from indexer.devnet.traffic import Traffic
from indexer.errors import DatabaseGaveUp
from indexer.runtime import Runtime
from indexer.store.db import PostmasterState, postmaster
from tests.integration.test_cli_daemon import CHAIN, cli, write_config
from tests.integration.test_evm_pipeline import make_config
from tests.integration.test_reliability import until
from tests.support.chain_truth import assert_index_exact

pytestmark = pytest.mark.integration


def postgres_processes(pgdata: Path) -> list[psutil.Process]:
    """The live postmaster(s) of this data directory and their children."""
    out: list[psutil.Process] = []
    for p in psutil.process_iter(["name", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if p.info["name"] == "postgres" and str(pgdata) in (p.info["cmdline"] or []):
                out += [q for q in [p, *p.children()] if q.status() != psutil.STATUS_ZOMBIE]
    return out


def embedded_uri(pgdata: Path) -> str:
    socket_dir = (pgdata / "postmaster.pid").read_text().splitlines()[4]
    return f"postgresql://postgres:@/postgres?host={socket_dir}"


def kill_postmaster(pgdata: Path) -> int:
    pm = postmaster(pgdata)
    assert pm.state == PostmasterState.RUNNING and pm.pid is not None, pm
    os.kill(pm.pid, signal.SIGKILL)
    return pm.pid


class Prober:
    """Reads API routes in a loop and records every answer (a 500 or non-JSON fails the test)."""

    def __init__(self, base: str, paths: list[str]) -> None:
        self.base, self.paths = base, paths
        self.seen: list[tuple[str, int]] = []
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            while True:
                for p in self.paths:
                    try:
                        async with http.get(self.base + p) as r:
                            body = await r.read()
                            status = r.status
                    except (aiohttp.ClientError, TimeoutError):
                        continue
                    self.seen.append((p, status))
                    assert status in (200, 503), (p, status, body[:300])
                    if status == 503:
                        assert orjson.loads(body) == {"error": "database unavailable; try again shortly"}
                    elif r.content_type == "application/json":
                        orjson.loads(body)
                await asyncio.sleep(0.05)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Prober]:
        self._task = asyncio.create_task(self._loop())
        try:
            yield self
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task  # re-raises the loop's assertion, if any

    def statuses(self) -> set[int]:
        return {s for _, s in self.seen}


async def _state(http: aiohttp.ClientSession, base: str) -> dict[str, Any] | None:
    try:
        async with http.get(f"{base}/api/v1/status", timeout=aiohttp.ClientTimeout(total=2)) as r:
            return dict((await r.json())["chains"][0]) if r.status == 200 else None
    except (aiohttp.ClientError, TimeoutError):
        return None


async def test_embedded_postgres_killed_while_following_and_stale_server_after_killed_daemon(
    anvil: Anvil, token: TestToken, traffic: Traffic, pg_tmp: Path
) -> None:
    tmp_path = pg_tmp
    await traffic.run(8)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cfg = write_config(tmp_path / "c.yaml", anvil.url, token.address, "", port=port, lag_budget="30s")
    pgdata = tmp_path / "data" / "pg"
    logs = [(tmp_path / f"d{i}.log").open("wb") for i in range(2)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        async with aiohttp.ClientSession() as http:

            async def live() -> bool:
                st = await _state(http, base)
                return bool(st and st["state"] == "live" and st["indexed"] == await anvil.block_number())

            # A first daemon, killed: its embedded server keeps running (bug 4's start).
            procs.append(subprocess.Popen(cli("run", "--config", str(cfg)), stderr=logs[0]))
            await until(live, 40, "the first daemon to follow the head")
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait(timeout=10)
            assert postmaster(pgdata).state == PostmasterState.RUNNING
            assert procs[0].pid in orjson.loads((pgdata / ".handle_pids.json").read_bytes())

            # The next daemon adopts it, then its server is killed while it follows the head.
            procs.append(subprocess.Popen(cli("run", "--config", str(cfg)), stderr=logs[1]))
            await until(live, 40, "the second daemon to follow the head")
            prober = Prober(base, ["/api/v1/supply", "/api/v1/status", f"/api/v1/transfers?chain={CHAIN}"])
            async with prober.running():
                await traffic.run(4)
                kill_postmaster(pgdata)
                await traffic.run(6)

                async def restarted() -> bool:
                    async with http.get(f"{base}/metrics") as r:
                        text = await r.text()
                    return "usd1_database_restarts_total 1.0" in text and "usd1_database_up 1.0" in text

                await until(restarted, 40, "the embedded server to be restarted")
                await anvil.mine(6)
                await until(live, 40, "indexing to resume")
            assert 200 in prober.statuses() and prober.statuses() <= {200, 503}
            fin = int((await _state(http, base) or {})["finalized"])
            pool = await asyncpg.create_pool(embedded_uri(pgdata), min_size=1, max_size=2)
            try:
                await assert_index_exact(pool, CHAIN, token, traffic.holders, fin)
            finally:
                await pool.close()

        # A clean stop stops the server, although the killed daemon never deregistered.
        procs[1].send_signal(signal.SIGTERM)
        assert procs[1].wait(timeout=30) == 0
        assert postmaster(pgdata).state in (PostmasterState.ABSENT, PostmasterState.DEAD)
        assert postgres_processes(pgdata) == []
        for f in logs:
            f.flush()
        second = [
            orjson.loads(line) for line in Path(logs[1].name).read_bytes().splitlines() if line[:1] == b"{"
        ]
        events = [e["event"] for e in second]
        assert "embedded_postgres_adopted" in events
        assert events.count("database_unavailable") == 1 and events.count("database_recovered") == 1
        assert "embedded_postgres_stopped" in events
        assert not [e for e in second if e.get("level") == "error" or "exception" in e], second
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for f in logs:
            f.close()
        for p in postgres_processes(pgdata):  # never leave a server behind, even on failure
            with contextlib.suppress(psutil.Error):
                p.kill()


async def test_embedded_postgres_killed_during_backfill(
    anvil: Anvil, token: TestToken, traffic: Traffic, pg_tmp: Path
) -> None:
    tmp_path = pg_tmp
    await traffic.run(12)
    await anvil.mine(240)
    await traffic.run(6)
    await anvil.mine(6)
    cfg = make_config(anvil.url, token.address, "", tmp_path, max_block_range=2, max_concurrency=1)
    port = free_port()
    cfg = cfg.model_copy(update={"http": cfg.http.model_copy(update={"listen": f"127.0.0.1:{port}"})})
    pgdata = tmp_path / "pg"
    stop = asyncio.Event()
    holder: dict[str, Runtime] = {}
    task = asyncio.create_task(run_daemon(cfg, stop, on_ready=lambda rt, _p: holder.setdefault("rt", rt)))
    try:
        await until(lambda: _true("rt" in holder), 30, "daemon start")
        rt = holder["rt"]
        status = rt.statuses[CHAIN]
        await until(lambda: _true(status.indexed >= 40), 30, "the backfill to be under way")
        assert status.phase.value == "backfill"
        prober = Prober(f"http://127.0.0.1:{port}", ["/api/v1/supply", "/"])
        async with prober.running():
            kill_postmaster(pgdata)
            killed_at = status.indexed
            head = await anvil.block_number()
            await until(lambda: _true(status.indexed == head), 60, "the backfill to finish")
        assert killed_at < head - 20, "the kill came too late to interrupt the backfill"
        assert rt.metrics.registry.get_sample_value("usd1_database_restarts_total") == 1
        assert rt.metrics.registry.get_sample_value("usd1_database_up") == 1
        await assert_index_exact(rt.pool, CHAIN, token, traffic.holders, status.indexed_finalized)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert postgres_processes(pgdata) == []


async def test_dsn_down_past_the_limit_stops_the_daemon(anvil: Anvil, token: TestToken, pg_tmp: Path) -> None:
    tmp_path = pg_tmp
    import pgserver

    server = await asyncio.to_thread(pgserver.get_server, tmp_path / "pg", cleanup_mode="stop")
    cfg = make_config(anvil.url, token.address, str(server.get_uri()), tmp_path)
    cfg = cfg.model_copy(
        update={
            "http": cfg.http.model_copy(update={"listen": f"127.0.0.1:{free_port()}"}),
            "database": cfg.database.model_copy(
                update={"unavailable_limit": 1.5, "exit_on_unavailable": True}
            ),
        }
    )
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(run_daemon(cfg, stop, on_ready=lambda _rt, _p: ready.set()))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        down_at = time.monotonic()
        await asyncio.to_thread(server.cleanup)
        with pytest.raises(DatabaseGaveUp, match=r"unreachable for \d+ s \(limit 1.5 s\)"):
            await asyncio.wait_for(task, 30)
        assert 1.5 <= time.monotonic() - down_at < 15
    finally:
        stop.set()
        if not task.done():
            await asyncio.wait_for(task, 30)
        await asyncio.to_thread(server.cleanup)


async def _true(value: bool) -> bool:
    return value


async def test_stale_postmaster_pid_of_another_process_is_cleared(pg_tmp: Path) -> None:
    """A killed server's postmaster.pid whose pid now belongs to another process: PostgreSQL
    itself would refuse to start ("lock file already exists"); start-up clears it."""
    from indexer.store.db import EmbeddedPostgres

    embedded = EmbeddedPostgres(pg_tmp)
    await embedded.start()
    await embedded.stop()
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        lines = [
            str(stranger.pid),
            str(embedded.pgdata),
            "1700000000",
            "5432",
            str(embedded.pgdata),
            "",
            "0 0",
            "ready",
        ]
        (embedded.pgdata / "postmaster.pid").write_text("\n".join(lines) + "\n")
        assert postmaster(embedded.pgdata).state == PostmasterState.FOREIGN
        uri = await embedded.start()
        try:
            assert postmaster(embedded.pgdata).state == PostmasterState.RUNNING
            conn = await asyncpg.connect(uri)
            assert await conn.fetchval("SELECT 1") == 1
            await conn.close()
        finally:
            await embedded.stop()
        assert postgres_processes(embedded.pgdata) == []
    finally:
        stranger.kill()
        stranger.wait()
