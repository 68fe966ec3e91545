"""End to end: two drills -> daemon -> real Prometheus -> real Alertmanager -> a webhook receiver.

Real parts only:

- Devnet: devnet-a (TestToken, the real Uniswap V2 USD1/USDC pool) and devnet-usd1 (the REAL USD1
  behind its proxy and ProxyAdmin, deployment two hours old in block time), 1 s blocks, traffic.
- Daemon: `run_daemon` on a fresh PostgreSQL database, the pool venue with a paging depth floor of
  100 USD (so a depeg of this one deep venue may page), devnet-usd1 with profile usd1.
- Prometheus (Debian binary): scrapes the daemon every 1 s, evaluates alerts/usd1.rules.yml
  shortened (`for:` 5s, windows / 30: tests/support/prometheus.py) and sends to the Alertmanager.
- Alertmanager (Debian binary): alerts/alertmanager.yml's routes and inhibit rules as they are,
  receivers replaced by webhooks to an aiohttp server of the test (usd1-pager -> /pager,
  usd1-chat -> /chat), grouping timers in seconds (tickets wait longer than pages, as in production).

The drills run through the same code as `usd1-indexer drill` (`plan_drill` on the daemon's config,
`run_drill` against the devnet's RPC): `depeg` (-1000 bps) and `upgrade`. Then:

- the pager receives exactly the plans' pages, once each: USD1PegDeviationCritical{venue} and
  USD1ImplementationUpgraded{chain="devnet-usd1",kind="upgraded"}, with severity page and their
  runbook annotations: one page per root cause;
- the same depeg's single-venue tickets (USD1PegWick, USD1PegDeviationWarning) fire in Prometheus
  and reach the Alertmanager, which holds them as suppressed, inhibited by the critical page; none of
  them reaches the chat receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from indexer.config import Config
from indexer.daemon import run_daemon
from indexer.devnet.drill_actions import run_drill
from indexer.devnet.evm_devnet import DevnetChainSpec, EvmDevnet, start_evm_devnet
from indexer.drills import DrillOptions, DrillPlan, plan_drill, target_from_config
from indexer.runtime import Runtime
from tests.support.alertmanager import (
    AM_BINARY,
    WebhookSink,
    alertmanager_process,
    http_json,
    webhook_routing,
)
from tests.support.e2e_stack import USD1_CHAIN, VENUE, devnet_config, write_attestation
from tests.support.prometheus import Prometheus, shorten_rules, wait_for

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "alerts" / "usd1.rules.yml"
AM_CONFIG = ROOT / "alerts" / "alertmanager.yml"
DEPEG_TICKETS = ("USD1PegWick", "USD1PegDeviationWarning")
RIG_PAGES = {"USD1IndexerDown"}  # a scrape of the in-process daemon timed out: not a drill's

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed (Debian)"),
    pytest.mark.skipif(AM_BINARY is None, reason="alertmanager not installed (prometheus-alertmanager)"),
]


@dataclass
class Stack:
    devnet: EvmDevnet
    cfg: Config
    prom: Prometheus
    am: str
    sink: WebhookSink


@contextlib.asynccontextmanager
async def running_stack(dsn: str, tmp: Path) -> AsyncIterator[Stack]:
    sink = await WebhookSink().start()
    routing = webhook_routing(
        yaml.safe_load(AM_CONFIG.read_text()),
        {"usd1-pager": sink.url("pager"), "usd1-chat": sink.url("chat")},
        group_wait="1s",
        ticket_group_wait="4s",
        group_interval="2s",
    )
    am_config = tmp / "alertmanager.yml"
    am_config.write_text(yaml.safe_dump(routing, sort_keys=False))
    specs = [
        DevnetChainSpec(name="devnet-a", port=0, chain_id=31337, seed=1, holders=6, pool=True),
        DevnetChainSpec(name=USD1_CHAIN, port=0, chain_id=31339, seed=3, holders=6, token="usd1"),
    ]
    stop = asyncio.Event()
    daemon: asyncio.Task[None] | None = None
    prom: Prometheus | None = None
    with alertmanager_process(am_config, tmp / "am") as am:
        devnet = await start_evm_devnet(specs, reorg_every=None, ops_per_second=2.0, log_dir=tmp / "logs")
        try:
            reserves = tmp / "reserves.json"
            write_attestation(reserves, "1000000000000.00", "e2e drills")
            cfg = devnet_config(
                dsn,
                tmp / "data",
                rpc_a=devnet.chain("devnet-a").url,
                rpc_usd1=devnet.chain(USD1_CHAIN).url,
                reserves=reserves,
            )
            ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()

            def on_ready(rt: Runtime, port: int) -> None:
                if not ready.done():
                    ready.set_result(port)

            daemon = asyncio.create_task(run_daemon(cfg, stop, on_ready=on_ready), name="e2e-drills-daemon")
            done, _ = await asyncio.wait({daemon, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            if daemon in done:
                daemon.result()
            assert ready in done, "daemon did not start within 30 s"
            rules = tmp / "usd1.rules.short.yml"
            rules.write_text(shorten_rules(RULES.read_text(), for_="5s", window_divisor=30, min_window=10))
            prom = Prometheus(
                tmp / "prometheus",
                targets=[f"127.0.0.1:{ready.result()}"],
                rule_files=[rules],
                scrape_interval="2s",  # a 1 s scrape timeout is too tight for /metrics on a loaded machine
                alertmanagers=[am.removeprefix("http://")],
            )
            await prom.start()
            yield Stack(devnet, cfg, prom, am, sink)
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
            await devnet.stop()
            await sink.stop()


async def _healthy(prom: Prometheus) -> bool:
    checks = {
        'count(usd1_chain_state{state="live"} == 1)': 2.0,
        f'usd1_venue_up{{venue="{VENUE}"}}': 1.0,
        f'count(usd1_control_check_block{{chain="{USD1_CHAIN}"}} > 0)': 1.0,
    }
    for expr, want in checks.items():
        if await prom.value(expr) != want:
            return False
    scrapes = await prom.value('count_over_time(up{job="usd1-indexer"}[1m])')
    return scrapes is not None and scrapes >= 5


def _key(alert: dict[str, Any]) -> tuple[str, str]:
    labels = alert["labels"]
    return labels["alertname"], labels.get("venue") or labels.get("chain", "")


async def test_two_drills_page_once_per_root_cause(dsn: str, tmp_path: Path) -> None:
    started = time.monotonic()
    async with running_stack(dsn, tmp_path) as s:
        await wait_for(lambda: _healthy(s.prom), 60, "a healthy, scraped daemon")
        # Healthy: nothing pages before the drills (the deployment's control events are 2 h old),
        # except, on a loaded machine, a missed scrape of the daemon (USD1IndexerDown: the test rig's
        # own health, left out of the counts below).
        assert {_key(a)[0] for a in s.sink.alerts("pager")} <= RIG_PAGES, s.sink.received

        target = target_from_config(s.cfg)
        depeg = plan_drill("depeg", target, DrillOptions(bps=-1000))
        upgrade = plan_drill("upgrade", target)
        plans: list[DrillPlan] = [depeg, upgrade]
        expected_pages = {
            (a.name, a.labels.get("venue") or a.labels["chain"]) for p in plans for a in p.pages
        }
        assert expected_pages == {
            ("USD1PegDeviationCritical", VENUE),
            ("USD1ImplementationUpgraded", USD1_CHAIN),
        }
        muted = {(a.name, a.labels["venue"]): a.muted_by for a in depeg.alerts if a.muted_by}
        assert {n for n, _ in muted} >= set(DEPEG_TICKETS)
        said: list[str] = []
        for plan in plans:
            await run_drill(plan, say=said.append)
        assert any("0.90" in line for line in said) and any("upgraded" in line for line in said), said

        def drill_pages() -> list[dict[str, Any]]:
            return [a for a in s.sink.alerts("pager") if a["labels"]["alertname"] not in RIG_PAGES]

        async def paged() -> set[tuple[str, str]] | None:
            got = {_key(a) for a in drill_pages()}
            return got if got >= expected_pages else None

        try:
            await wait_for(paged, 60, "both drills' pages at the webhook")
        except TimeoutError:
            raise AssertionError(
                f"pages: {s.sink.received.get('pager')}\nprometheus: {await s.prom.alerts()}"
            ) from None

        # The depeg's single-venue tickets fire in Prometheus and reach the Alertmanager, which
        # holds them as inhibited by the critical page of the same deployment.
        async def suppressed() -> list[dict[str, Any]] | None:
            alerts = await asyncio.to_thread(http_json, f"{s.am}/api/v2/alerts")
            held = [a for a in alerts if _key(a) in {(n, VENUE) for n in DEPEG_TICKETS}]
            if {_key(a) for a in held} != {(n, VENUE) for n in DEPEG_TICKETS}:
                return None
            return held if all(a["status"]["state"] == "suppressed" for a in held) else None

        held = await wait_for(suppressed, 30, "the depeg tickets held as inhibited in Alertmanager")
        alerts = await asyncio.to_thread(http_json, f"{s.am}/api/v2/alerts")
        critical = [a for a in alerts if _key(a) == ("USD1PegDeviationCritical", VENUE)]
        assert len(critical) == 1 and critical[0]["status"]["state"] == "active"
        for a in held:
            assert a["status"]["inhibitedBy"] == [critical[0]["fingerprint"]], a
            assert muted[_key(a)] == "USD1PegDeviationCritical"
        # Past the tickets' group wait: still none of them notified; one page per root cause.
        await asyncio.sleep(6)
        chat = {_key(a) for a in s.sink.alerts("chat")}
        assert not chat & {(n, VENUE) for n in DEPEG_TICKETS}, s.sink.received.get("chat")
        pages = drill_pages()
        assert {_key(a) for a in pages} == expected_pages, pages
        fingerprints: dict[tuple[str, str], set[str]] = {}
        for a in pages:
            fingerprints.setdefault(_key(a), set()).add(a["fingerprint"])
            assert a["labels"]["severity"] == "page"
            assert a["annotations"]["runbook_url"].endswith(f"{a['labels']['alertname']}.md")
        assert all(len(f) == 1 for f in fingerprints.values()), fingerprints
        up = next(a for a in pages if a["labels"]["alertname"] == "USD1ImplementationUpgraded")
        assert up["labels"]["chain"] == USD1_CHAIN and up["labels"]["kind"] == "upgraded"
        assert up["labels"]["job"] == "usd1-indexer"
    assert time.monotonic() - started < 150
