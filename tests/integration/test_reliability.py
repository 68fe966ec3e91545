"""Reliability on real parts: two daemons for one chain (hot standby takes over on SIGKILL), a
PostgreSQL restart mid-run (retried whole, /metrics keeps serving, the API answers 503 JSON and
/healthz fails past the configured limit, nothing half-written)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from indexer.daemon import run_daemon
from indexer.devnet.anvil import Anvil, free_port
from indexer.devnet.token import TestToken
from indexer.devnet.traffic import Traffic
from indexer.runtime import Runtime
from tests.integration.test_cli_daemon import CHAIN, cli, write_config
from tests.integration.test_evm_pipeline import make_config
from tests.support.chain_truth import chain_transfer_events, indexed_events

pytestmark = pytest.mark.integration


async def _status(http: aiohttp.ClientSession, port: int) -> dict[str, Any] | None:
    try:
        async with http.get(
            f"http://127.0.0.1:{port}/api/v1/status", timeout=aiohttp.ClientTimeout(total=2)
        ) as r:
            body = await r.json()
            return dict(body["chains"][0])
    except (aiohttp.ClientError, TimeoutError):
        return None


async def until(cond: Callable[[], Any], limit: float, what: str) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = await cond()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {limit}s waiting for {what}")


async def test_hot_standby_takes_over_when_owner_is_killed(
    anvil: Anvil, token: TestToken, traffic: Traffic, dsn: str, tmp_path: Path
) -> None:
    await traffic.run(10)
    ports = [free_port(), free_port()]
    procs = []
    logs = []
    for i, port in enumerate(ports):
        cfg = write_config(tmp_path / f"c{i}.yaml", anvil.url, token.address, dsn, port=port)
        logs.append((tmp_path / f"d{i}.log").open("wb"))
        procs.append(subprocess.Popen(cli("run", "--config", str(cfg)), stderr=logs[-1]))
    try:
        async with aiohttp.ClientSession() as http:

            async def states() -> list[str] | None:
                got = [await _status(http, p) for p in ports]
                if any(g is None for g in got):
                    return None
                s = sorted(str(g["state"]) for g in got if g)
                return s if s == ["live", "standby"] else None

            try:
                await until(states, 30, "one live owner and one standby")
            except AssertionError as exc:
                for f in logs:
                    f.flush()
                tails = [Path(f.name).read_text(errors="replace")[-3000:] for f in logs]
                raise AssertionError(f"{exc}; daemon logs:\n" + "\n----\n".join(tails)) from None
            owner = [(await _status(http, p) or {}).get("state") for p in ports].index("live")
            standby = 1 - owner
            await traffic.run(10)
            procs[owner].send_signal(signal.SIGKILL)
            procs[owner].wait(timeout=10)
            killed_at = time.monotonic()

            async def took_over() -> bool:
                st = await _status(http, ports[standby])
                return bool(st and st["state"] == "live")

            await until(took_over, 15, "the standby to take over")
            takeover = time.monotonic() - killed_at
            await traffic.run(10)
            await anvil.mine(6)
            head = await anvil.block_number()

            async def caught_up() -> bool:
                st = await _status(http, ports[standby])
                return bool(st and st["indexed"] == head and st["finalized"] >= head - 4)

            await until(caught_up, 20, "the new owner to catch up")
        assert takeover < 10
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            got = await indexed_events(pool, CHAIN)
        finally:
            await pool.close()
        assert len(got) == len(set(got))
        assert set(got) == await chain_transfer_events(anvil, token.address, head)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        for f in logs:
            f.close()


async def test_postgres_restart_mid_run(
    anvil: Anvil, token: TestToken, traffic: Traffic, pg_tmp: Path
) -> None:
    tmp_path = pg_tmp
    import pgserver

    pgdata = tmp_path / "pg"
    server = await asyncio.to_thread(pgserver.get_server, pgdata, cleanup_mode="stop")
    dsn = str(server.get_uri())
    port = free_port()
    cfg = make_config(anvil.url, token.address, dsn, tmp_path)
    cfg = cfg.model_copy(
        update={
            "http": cfg.http.model_copy(update={"listen": f"127.0.0.1:{port}"}),
            "database": cfg.database.model_copy(update={"unavailable_limit": 2.0}),
        }
    )
    stop = asyncio.Event()
    holder: dict[str, Runtime] = {}
    task = asyncio.create_task(run_daemon(cfg, stop, on_ready=lambda rt, _p: holder.setdefault("rt", rt)))
    try:
        await until(lambda: _ready(holder), 30, "daemon start")
        rt = holder["rt"]
        status = rt.statuses[CHAIN]
        await traffic.run(15)
        await until(lambda: _true(status.indexed >= 15), 20, "initial indexing")

        await asyncio.to_thread(server.cleanup)  # PostgreSQL goes away
        await traffic.run(15)
        async with aiohttp.ClientSession() as http:

            async def degraded() -> bool:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                    text = await r.text()
                return r.status == 200 and "usd1_database_up 0.0" in text

            await until(degraded, 20, "/metrics to report the database down")
            # Every route that reads the database: 503 JSON, never a 500 or a traceback.
            for path in ("/api/v1/status", "/api/v1/supply", f"/api/v1/transfers?chain={CHAIN}", "/"):
                async with http.get(f"http://127.0.0.1:{port}{path}") as r:
                    assert r.status == 503, path
                    assert await r.json() == {"error": "database unavailable; try again shortly"}
            async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                assert r.status == 503 and (await r.json())["database"] == "unavailable"

            async def unhealthy() -> bool:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    body = await r.json()
                return r.status == 503 and body["status"] == "database_unavailable"

            await until(unhealthy, 10, "/healthz to fail past database.unavailable_limit")

        server = await asyncio.to_thread(pgserver.get_server, pgdata, cleanup_mode="stop")
        assert str(server.get_uri()) == dsn
        await traffic.run(5)
        await anvil.mine(6)
        head = await anvil.block_number()
        await until(
            lambda: _true(status.indexed == head and status.indexed_finalized >= head - 4), 60, "recovery"
        )
        assert rt.metrics.registry.get_sample_value("usd1_database_up") == 1
        assert rt.metrics.registry.get_sample_value("usd1_database_restarts_total") == 0  # not embedded
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as r:
            assert r.status == 200 and (await r.json())["database"] == "up"
        got = await indexed_events(rt.pool, CHAIN)
        assert len(got) == len(set(got))
        assert set(got) == await chain_transfer_events(anvil, token.address, head)
        fin = status.indexed_finalized
        assert (await rt.store.supply_at(CHAIN, fin)).supply == await token.total_supply(fin)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await asyncio.to_thread(server.cleanup)


async def _ready(holder: dict[str, Runtime]) -> bool:
    return "rt" in holder


async def _true(value: bool) -> bool:
    return value
