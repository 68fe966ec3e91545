"""End to end: devnet -> daemon -> real Prometheus -> dashboards and alert rules.

One scenario, with real parts only:

- Devnet: two anvil chains (interval mining, 1 s blocks) with the TestToken and random traffic
  (`start_evm_devnet`); devnet-a also gets the real Uniswap V2 USD1/USDC pool at its deterministic
  address (`indexer.devnet.pools`). devnet-b's RPC goes through a `FaultProxy`.
- Daemon: `run_daemon` in-process on a fresh PostgreSQL database (`dsn`), with the pool venue
  (1 s interval) and a reserve attestation file, so every metric family has series.
- Prometheus: the Debian binary scraping the daemon every 1 s as job `usd1-indexer`, evaluating a
  copy of alerts/usd1.rules.yml every 1 s in which every `for:` is 5s and every range window and
  `offset` is divided by 30 (min 10 s): [10m] -> [20s], [15m] -> [30s], [1h] -> [2m],
  [6h] -> [12m], offset 30m -> offset 1m (`tests.support.prometheus.shorten_rules`). Thresholds,
  labels, joins and annotation templates are the real ones.

Phase 1 (healthy, after >= 10 scrapes with both chains live): every dashboard panel expression
(`expressions(..., DEFAULT_VARIABLES)`) and every alert expression of the unmodified
alerts/usd1.rules.yml evaluates through /api/v1/query without error. Every panel expression
returns data. An alert condition is empty on a healthy system, so for alerts the metrics they are
built from (`source_metrics(expr)`: recorded series expanded to their rules' metrics) must each
have series instead. The one exception: a metric in `PENDING_METRICS` (tests/support/rules.py:
control, large-event and watchlist metrics that other work adds to the daemon) that has no series
at all in this run: its expressions must evaluate, but may be empty. Every loaded rule (recording
and alerting) reports health "ok", and no page-severity alert is pending or firing.

Phase 2 (faults): one large swap moves the pool 1000 bps below the peg, and devnet-b's RPC proxy
goes down (503). Then USD1PegDeviationCritical fires for the venue (its depth is above the venue's
`page_depth_floor_usd`, so it may page alone; Warning at least pending),
USD1RpcAllEndpointsDown fires for devnet-b, USD1IndexerStalled goes pending/firing for devnet-b
(the follower reports `stalled` after its 30 s stall_after), devnet-a gets neither, and every
annotation renders without a template error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from indexer.config import Config
from indexer.daemon import run_daemon
from indexer.dashboards import DEFAULT_VARIABLES, expressions
from indexer.devnet.evm_devnet import DevnetChainSpec, EvmDevnet, start_evm_devnet
from indexer.devnet.faultproxy import FaultProxy
from indexer.devnet.pools import DEVNET_POOL_ADDRESS, DevnetPool, v2_pair_address
from indexer.devnet.token import DETERMINISTIC_TOKEN_ADDRESS
from indexer.runtime import Runtime
from tests.support.prometheus import Prometheus, shorten_rules, wait_for
from tests.support.rules import NOT_ON_DEVNET, PENDING_METRICS, all_rules, source_metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "alerts" / "usd1.rules.yml"
DASHBOARDS = sorted((ROOT / "dashboards" / "build").glob("*.json"))
VENUE = "devnet-univ2-usd1-usdc"
PAGE_ALERTS_FOR_RPC_OUTAGE = {"USD1RpcAllEndpointsDown", "USD1IndexerStalled"}

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed (Debian)"),
]


def _alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def _write_attestation(path: Path, total_usd: str) -> None:
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "token": "USD1",
                "as_of": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "custodian": "e2e test custodian (illustrative)",
                "attestor": "e2e test attestor",
                "assets": [{"category": "cash", "amount_usd": total_usd}],
            }
        )
    )


def _config(dsn: str, data_dir: Path, rpc_a: str, rpc_b: str, reserves: Path) -> Config:
    chain: dict[str, Any] = {
        "kind": "evm",
        "token": DETERMINISTIC_TOKEN_ADDRESS,
        "decimals": 18,
        "start_block": 0,
        "poll_interval": "500ms",
        "request_timeout": "2s",
        "lag_budget": "30s",
    }
    return Config.model_validate(
        {
            "token": {"symbol": "USD1", "peg_usd": 1.0},
            "database": {"dsn": dsn},
            "data_dir": str(data_dir),
            "http": {"listen": "127.0.0.1:0"},
            "chains": [
                {**chain, "name": "devnet-a", "rpc": [rpc_a], "finality": {"tag": "finalized"}},
                {**chain, "name": "devnet-b", "rpc": [rpc_b], "finality": {"confirmations": 3}},
            ],
            "market": {"bands_bps": [10, 50, 100]},
            "venues": [
                {
                    "name": VENUE,
                    "kind": "uniswap_v2",
                    "chain": "devnet-a",
                    "pool": DEVNET_POOL_ADDRESS,
                    "quote_usd": 1.0,
                    "interval": "1s",
                    "page_depth_floor_usd": 100,
                }
            ],
            "reserves": {"url": reserves.as_uri(), "interval": "2s"},
        }
    )


@dataclass
class Stack:
    devnet: EvmDevnet
    pool: DevnetPool
    proxy: FaultProxy
    prom: Prometheus
    daemon_port: int


@contextlib.asynccontextmanager
async def running_stack(dsn: str, tmp: Path) -> AsyncIterator[Stack]:
    """Devnet + fault proxy + daemon + Prometheus; everything stopped (and reaped) on exit."""
    specs = [
        DevnetChainSpec(name="devnet-a", port=0, chain_id=31337, seed=1, holders=8, pool=True),
        DevnetChainSpec(name="devnet-b", port=0, chain_id=31338, seed=2, holders=8),
    ]
    devnet = await start_evm_devnet(specs, reorg_every=None, ops_per_second=3.0, log_dir=tmp / "logs")
    stop = asyncio.Event()
    daemon: asyncio.Task[None] | None = None
    prom: Prometheus | None = None
    proxy = FaultProxy(devnet.chain("devnet-b").url)
    try:
        await proxy.start()
        pool = devnet.chain("devnet-a").pool
        assert pool is not None
        reserves = tmp / "reserves.json"
        # Large enough that the backing ratio stays above 1 whatever the traffic mints.
        _write_attestation(reserves, "1000000000000.00")
        cfg = _config(dsn, tmp / "data", devnet.chain("devnet-a").url, proxy.url, reserves)
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_ready(rt: Runtime, port: int) -> None:
            if not ready.done():
                ready.set_result(port)

        daemon = asyncio.create_task(run_daemon(cfg, stop, on_ready=on_ready), name="e2e-daemon")
        waiters: set[asyncio.Future[Any]] = {daemon, ready}
        done, _ = await asyncio.wait(waiters, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if daemon in done:
            daemon.result()  # raises the daemon's start-up error
        assert ready in done, "daemon did not start within 30 s"
        port = ready.result()
        rules = tmp / "usd1.rules.short.yml"
        rules.write_text(shorten_rules(RULES.read_text(), for_="5s", window_divisor=30, min_window=10))
        prom = Prometheus(tmp / "prometheus", targets=[f"127.0.0.1:{port}"], rule_files=[rules])
        await prom.start()
        yield Stack(devnet, pool, proxy, prom, port)
    finally:
        if prom is not None:
            await prom.stop()
        stop.set()
        if daemon is not None:
            try:
                await asyncio.wait_for(daemon, 20)
            except BaseException:
                daemon.cancel()
                with contextlib.suppress(BaseException):
                    await daemon
        await proxy.stop()
        await devnet.stop()


async def _healthy_and_scraped(prom: Prometheus) -> bool:
    """Both chains live, the venue up, reserves read, supply reconciled, >= 10 scrapes."""
    checks = {
        'count(usd1_chain_state{state="live"} == 1)': 2.0,
        f'usd1_venue_up{{venue="{VENUE}"}}': 1.0,
        "usd1_reserves_up": 1.0,
        "count(usd1_supply_check_block > 0)": 2.0,
    }
    for expr, want in checks.items():
        if await prom.value(expr) != want:
            return False
    scrapes = await prom.value('count_over_time(up{job="usd1-indexer"}[1m])')
    return scrapes is not None and scrapes >= 10


def _alerts_by(alerts: list[dict[str, Any]], name: str, **labels: str) -> list[dict[str, Any]]:
    return [
        a
        for a in alerts
        if a["labels"].get("alertname") == name and all(a["labels"].get(k) == v for k, v in labels.items())
    ]


async def test_dashboards_and_alerts_on_real_metrics(dsn: str, tmp_path: Path) -> None:
    started = time.monotonic()
    # The pinned pool address is what the factory's CREATE2 gives for the pinned inputs.
    from indexer.devnet.pools import DEVNET_QUOTE_ADDRESS, DEVNET_V2_FACTORY_ADDRESS

    assert (
        v2_pair_address(DEVNET_V2_FACTORY_ADDRESS, DETERMINISTIC_TOKEN_ADDRESS, DEVNET_QUOTE_ADDRESS)
        == DEVNET_POOL_ADDRESS
    )
    async with running_stack(dsn, tmp_path) as s:
        assert s.pool.address == DEVNET_POOL_ADDRESS
        prom = s.prom
        try:
            await wait_for(lambda: _healthy_and_scraped(prom), 45, "a healthy, scraped daemon")
        except TimeoutError:
            raise AssertionError(f"not healthy: {await prom.active_targets()}\n{prom.log_tail()}") from None

        # --- phase 1: every expression evaluates and has data ----------------------------------
        problems: list[str] = []

        async def absent_pending(expr: str) -> bool:
            """The expression uses a pending metric that has no series in this run."""
            for name in sorted(source_metrics(expr) & (PENDING_METRICS | NOT_ON_DEVNET)):
                if not await prom.query(f'{name}{{job="usd1-indexer"}}'):
                    return True
            return False

        panel_exprs = {
            e for path in DASHBOARDS for e in expressions(json.loads(path.read_text()), DEFAULT_VARIABLES)
        }
        assert len(panel_exprs) >= 40
        for expr in sorted(panel_exprs):
            try:
                if not await prom.query(expr) and not await absent_pending(expr):
                    problems.append(f"panel expression has no data: {expr}")
            except Exception as exc:
                problems.append(f"panel expression failed: {expr}: {exc}")
        alert_rules = _alert_rules()
        assert len(alert_rules) >= 40
        for rule in alert_rules:
            # An alert condition is legitimately empty on a healthy system: the expression must
            # evaluate, and every metric it is built from must have series.
            try:
                await prom.query(rule["expr"])
            except Exception as exc:
                problems.append(f"{rule['alert']}: expression failed: {exc}")
            for name in sorted(source_metrics(rule["expr"])):
                selector = f'{name}{{job="usd1-indexer"}}'
                if not await prom.query(selector) and name not in PENDING_METRICS | NOT_ON_DEVNET:
                    problems.append(f"{rule['alert']}: no series for {selector}")
        loaded = await prom.rules()
        assert len(loaded) == len(all_rules())
        problems += [
            f"rule {r['name']}: health {r['health']}: {r.get('lastError')}"
            for r in loaded
            if r["health"] != "ok"
        ]
        assert not problems, "\n".join(problems)

        alerts = await prom.alerts()
        pages = [a for a in alerts if a["labels"].get("severity") == "page"]
        assert not pages, f"page alerts on a healthy system: {pages}"
        price = await prom.value(f'usd1_price_usd{{venue="{VENUE}"}}')
        assert price is not None and abs(price - 1.0) < 0.001
        assert (await prom.value(f'sum(usd1_depth_usd{{venue="{VENUE}",band="100bps"}})') or 0) > 100

        # --- phase 2: depeg and an RPC outage on devnet-b --------------------------------------
        s.proxy.down = True
        moved = await s.pool.depeg(-1000)
        assert moved.deviation_bps < -900

        async def scenario_alerts() -> list[dict[str, Any]] | None:
            current = await prom.alerts()
            firing = {
                (a["labels"]["alertname"], a["labels"].get("venue") or a["labels"].get("chain"))
                for a in current
                if a["state"] == "firing"
            }
            active = {
                (a["labels"]["alertname"], a["labels"].get("venue") or a["labels"].get("chain"))
                for a in current
            }
            want_firing = {("USD1PegDeviationCritical", VENUE), ("USD1RpcAllEndpointsDown", "devnet-b")}
            want_active = {("USD1PegDeviationWarning", VENUE), ("USD1IndexerStalled", "devnet-b")}
            return current if want_firing <= firing and want_active <= active else None

        try:
            alerts = await wait_for(scenario_alerts, 55, "peg, RPC-down and stalled alerts", interval=1.0)
        except TimeoutError:
            current = [(a["labels"], a["state"]) for a in await prom.alerts()]
            raise AssertionError(f"alerts now: {current}\n{prom.log_tail()}") from None

        (crit,) = _alerts_by(alerts, "USD1PegDeviationCritical", venue=VENUE)
        assert crit["labels"]["severity"] == "page"
        assert float(crit["value"]) > 900  # abs(deviation)
        assert "price 0.9" in crit["annotations"]["description"], crit["annotations"]
        assert "Depth at the widest band: ask" in crit["annotations"]["description"], crit["annotations"]
        (rpc_down,) = _alerts_by(alerts, "USD1RpcAllEndpointsDown", chain="devnet-b")
        assert "Every one of the 1" in rpc_down["annotations"]["description"], rpc_down["annotations"]
        # The healthy chain gets no outage alert.
        for name in PAGE_ALERTS_FOR_RPC_OUTAGE:
            assert not _alerts_by(alerts, name, chain="devnet-a"), alerts
        # The daemon recorded the depeg as an open episode of the pool venue (and of the aggregate).
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{s.daemon_port}/api/v1/depegs", params={"open": "true"}) as r,
        ):
            assert r.status == 200, await r.text()
            episodes = (await r.json())["episodes"]
        venue_eps = [e for e in episodes if e["venue"] == VENUE]
        assert len(venue_eps) == 1 and float(venue_eps[0]["peak_bps"]) < -900, episodes
        assert [e["scope"] for e in episodes if e["venue"] is None] == ["aggregate"], episodes
        print("alerts after the faults:", sorted((a["labels"]["alertname"], a["state"]) for a in alerts))
        for a in alerts:
            for key, text in a["annotations"].items():
                assert "error expanding template" not in text, (a["labels"], key, text)
    assert time.monotonic() - started < 120
