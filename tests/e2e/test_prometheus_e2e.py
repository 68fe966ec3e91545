"""End to end: devnet -> daemon -> real Prometheus -> dashboards and alert rules.

One scenario, with real parts only:

- Devnet: three anvil chains (interval mining, 1 s blocks) with random traffic
  (`start_evm_devnet`): devnet-a and devnet-b run the TestToken, devnet-a also gets the real
  Uniswap V2 USD1/USDC pool at its deterministic address (`indexer.devnet.pools`); devnet-usd1 runs
  the REAL USD1 (proxy + ProxyAdmin + Stablecoin, `token="usd1"`; deployment two hours old in block
  time), indexed with `profile: usd1` and its ProxyAdmin watched, finalized = head-16 (so a control
  event can be orphaned before finality). devnet-b's RPC goes through a `FaultProxy`.
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
metrics that other work adds to the daemon) or `NOT_ON_DEVNET` (exported, but no chain of this
devnet has them: the watchlist counters, the devnet config listing no watchlist) that has no series at all
in this run: its expressions must evaluate, but may be empty. Every loaded rule (recording and
alerting) reports health "ok", and no page-severity alert is pending or firing: the deployment's
control events (Upgraded, OwnershipTransferred, AdminChanged) are older than the alerts' hour. An
`unfreeze` of an account that is not frozen (an Unfreeze event, which no alert pages on) is
finalized during this phase, so the finalized control counter moves and its panel has data.

Phase 2 (faults): one large swap moves the pool 1000 bps below the peg, and devnet-b's RPC proxy
goes down (503). Then USD1PegDeviationCritical fires for the venue (its depth is above the venue's
`page_depth_floor_usd`, so it may page alone; Warning at least pending),
USD1RpcAllEndpointsDown fires for devnet-b, USD1IndexerStalled goes pending/firing for devnet-b
(the follower reports `stalled` after its 30 s stall_after), devnet-a gets neither, and every
annotation renders without a template error.

Phase 3 (a control action, then a reorg that orphans it): on devnet-usd1 the owner freezes a
holder and the ProxyAdmin upgrades the proxy to a second implementation. USD1AccountFrozen and
USD1ImplementationUpgraded fire for devnet-usd1 through Prometheus (their expressions read
usd1_last_control_event_timestamp_seconds at the head, through the recorded
chain_kind:usd1_control_event_age_seconds:head). Then `anvil_reorg` replaces the blocks from the
one before those transactions to the head, before they are final: the daemon rolls the events
back, the head gauges return to the deployment's (two hours old), usd1_frozen_accounts to 0 and
usd1_control_info to the first implementation, and both alerts resolve.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from indexer.daemon import run_daemon
from indexer.dashboards import DEFAULT_VARIABLES, expressions
from indexer.devnet.contract import wait_receipt
from indexer.devnet.evm_devnet import DevnetChainSpec, EvmDevnet, start_evm_devnet
from indexer.devnet.faultproxy import FaultProxy
from indexer.devnet.pools import DEVNET_POOL_ADDRESS, DevnetPool, v2_pair_address
from indexer.devnet.token import DETERMINISTIC_TOKEN_ADDRESS
from indexer.devnet.usd1 import Usd1Deployment
from indexer.runtime import Runtime
from tests.support.e2e_stack import USD1_CHAIN, VENUE, devnet_config, write_attestation
from tests.support.prometheus import Prometheus, shorten_rules, wait_for
from tests.support.rules import NOT_ON_DEVNET, PENDING_METRICS, all_rules, source_metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "alerts" / "usd1.rules.yml"
DASHBOARDS = sorted((ROOT / "dashboards" / "build").glob("*.json"))
USD1_FINALITY_DEPTH = 16  # slots_in_an_epoch=8: anvil's finalized tag is head-16
NOT_FROZEN = "0x" + "5e" * 20  # unfrozen in phase 1 (never frozen)
PAGE_ALERTS_FOR_RPC_OUTAGE = {"USD1RpcAllEndpointsDown", "USD1IndexerStalled"}

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed (Debian)"),
]


def _alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


@dataclass
class Stack:
    devnet: EvmDevnet
    pool: DevnetPool
    usd1: Usd1Deployment
    proxy: FaultProxy
    prom: Prometheus
    daemon_port: int


@contextlib.asynccontextmanager
async def running_stack(dsn: str, tmp: Path) -> AsyncIterator[Stack]:
    """Devnet + fault proxy + daemon + Prometheus; everything stopped (and reaped) on exit."""
    specs = [
        DevnetChainSpec(name="devnet-a", port=0, chain_id=31337, seed=1, holders=8, pool=True),
        DevnetChainSpec(name="devnet-b", port=0, chain_id=31338, seed=2, holders=8),
        DevnetChainSpec(
            name=USD1_CHAIN,
            port=0,
            chain_id=31339,
            seed=3,
            holders=8,
            token="usd1",
            slots_in_an_epoch=USD1_FINALITY_DEPTH // 2,
        ),
    ]
    devnet = await start_evm_devnet(specs, reorg_every=None, ops_per_second=3.0, log_dir=tmp / "logs")
    stop = asyncio.Event()
    daemon: asyncio.Task[None] | None = None
    prom: Prometheus | None = None
    proxy = FaultProxy(devnet.chain("devnet-b").url)
    try:
        await proxy.start()
        pool = devnet.chain("devnet-a").pool
        usd1 = devnet.chain(USD1_CHAIN).usd1
        assert pool is not None and usd1 is not None
        reserves = tmp / "reserves.json"
        # Large enough that the backing ratio stays above 1 whatever the traffic mints.
        write_attestation(reserves, "1000000000000.00")
        cfg = devnet_config(
            dsn,
            tmp / "data",
            rpc_a=devnet.chain("devnet-a").url,
            rpc_b=proxy.url,
            rpc_usd1=devnet.chain(USD1_CHAIN).url,
            reserves=reserves,
        )
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
        yield Stack(devnet, pool, usd1, proxy, prom, port)
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
    """Every chain live, the venue up, reserves read, supply reconciled, the USD1 chain's control
    state checked and phase 1's Unfreeze finalized, >= 10 scrapes."""
    checks = {
        'count(usd1_chain_state{state="live"} == 1)': 3.0,
        f'usd1_venue_up{{venue="{VENUE}"}}': 1.0,
        "usd1_reserves_up": 1.0,
        "count(usd1_supply_check_block > 0)": 3.0,
        f'count(usd1_control_check_block{{chain="{USD1_CHAIN}"}} > 0)': 1.0,
        f'usd1_control_events_total{{chain="{USD1_CHAIN}",kind="unfrozen"}}': 1.0,
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
        usd1 = s.usd1
        # A control event no alert pages on, finalized while the healthy phase is scraped.
        await usd1.token.unfreeze(NOT_FROZEN)
        v2 = await usd1.deploy_v2()  # the upgrade target of phase 3 (not in use yet)
        try:
            await wait_for(lambda: _healthy_and_scraped(prom), 60, "a healthy, scraped daemon")
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

        # --- phase 3: a freeze and an upgrade on devnet-usd1, then a reorg orphans them ----------
        await _control_alerts_fire_and_a_reorg_resolves_them(s, v2)
    assert time.monotonic() - started < 160


CONTROL_ALERTS = {"USD1AccountFrozen", "USD1ImplementationUpgraded"}


async def _control_alerts_fire_and_a_reorg_resolves_them(s: Stack, v2: str) -> None:
    prom, usd1 = s.prom, s.usd1
    chain = s.devnet.chain(USD1_CHAIN)
    token, anvil = usd1.token, chain.anvil
    v1 = usd1.implementation.lower()
    assert (await prom.value(f'usd1_frozen_accounts{{chain="{USD1_CHAIN}"}}')) == 0
    balances = {h: await token.balance_of(h) for h in chain.traffic.holders}
    holder = max(balances, key=lambda h: balances[h])
    assert balances[holder] > 0, balances
    # Both sent before either is mined: usually one block.
    hashes = [
        await token.submit(token.freeze_tx(holder)),
        await token.submit(usd1.proxy_admin.upgrade_tx(token.address, v2)),
    ]
    receipts = [await wait_receipt(anvil, h) for h in hashes]
    assert all(r.ok for r in receipts), receipts
    first = min(r.block_number for r in receipts)
    assert await token.is_frozen(holder) and (await token.implementation()).lower() == v2.lower()

    async def control_alerts(state: str) -> list[dict[str, Any]] | None:
        current = [a for a in await prom.alerts() if a["labels"].get("chain") == USD1_CHAIN]
        names = {a["labels"]["alertname"] for a in current if a["state"] == state}
        return current if CONTROL_ALERTS <= names else None

    try:
        alerts = await wait_for(lambda: control_alerts("firing"), 20, "the control alerts", interval=0.5)
    except TimeoutError:
        current = [(a["labels"], a["state"]) for a in await prom.alerts()]
        raise AssertionError(f"alerts now: {current}\n{prom.log_tail()}") from None
    (frozen,) = _alerts_by(alerts, "USD1AccountFrozen", chain=USD1_CHAIN)
    assert frozen["labels"]["severity"] == "ticket" and frozen["labels"]["kind"] == "frozen"
    assert "now 1 frozen account(s)" in frozen["annotations"]["description"], frozen["annotations"]
    (upgraded,) = _alerts_by(alerts, "USD1ImplementationUpgraded", chain=USD1_CHAIN)
    assert upgraded["labels"]["severity"] == "page" and upgraded["labels"]["kind"] == "upgraded"
    assert f"implementation {v2.lower()}" in upgraded["annotations"]["description"], upgraded["annotations"]
    for a in (frozen, upgraded):
        for key, text in a["annotations"].items():
            assert "error expanding template" not in text, (a["labels"], key, text)
    reorgs_before = await prom.value(f'usd1_reorgs_total{{chain="{USD1_CHAIN}"}}') or 0.0

    # The reorg: the blocks from the one before the control transactions to the head, replaced by
    # empty ones, while none of them is final (one block of margin for a block mined meanwhile).
    head = await anvil.block_number()
    assert await anvil.block_number("finalized") < first - 1, "the control block is final already"
    await anvil.rpc("anvil_reorg", [head - first + 2, []])
    token.forget_accounts()  # gas money given above the fork point is gone with it
    for h in hashes:
        assert await anvil.rpc("eth_getTransactionReceipt", [h]) is None, "a control tx survived the reorg"
    assert not await token.is_frozen(holder) and (await token.implementation()).lower() == v1

    async def resolved() -> bool:
        current = [a for a in await prom.alerts() if a["labels"].get("chain") == USD1_CHAIN]
        if {a["labels"]["alertname"] for a in current} & CONTROL_ALERTS:
            return False
        info = await prom.query(f'usd1_control_info{{chain="{USD1_CHAIN}"}}')
        return await prom.value(f'usd1_frozen_accounts{{chain="{USD1_CHAIN}"}}') == 0 and [
            i["metric"]["implementation"] for i in info
        ] == [v1]

    try:
        await wait_for(resolved, 20, "the control alerts to resolve after the reorg", interval=0.5)
    except TimeoutError:
        current = [(a["labels"], a["state"]) for a in await prom.alerts()]
        raise AssertionError(f"alerts now: {current}\n{prom.log_tail()}") from None
    assert (await prom.value(f'usd1_reorgs_total{{chain="{USD1_CHAIN}"}}') or 0.0) > reorgs_before
    # The finalized counter never saw the orphaned events.
    for kind in ("frozen", "upgraded"):
        counted = await prom.value(f'usd1_control_events_total{{chain="{USD1_CHAIN}",kind="{kind}"}}')
        assert counted == (1.0 if kind == "upgraded" else 0.0), (kind, counted)
