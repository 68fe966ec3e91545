"""The proof-of-reserve feed read from Chainlink's own MockV3Aggregator (npm @chainlink/contracts,
indexer/devnet/chainlink.py) on a real anvil (finalized = head - 4), through the chain's EvmSource
and RpcPool: the answer read exactly at the finalized block, an update reflected once final, a
stale round flagged (valid, still up), bad answers (0, negative), a reverting and a code-less
address refused with `up` 0, one log line per outage, the last good round kept; the comparisons
with the attestation and the circulating supply exact; `/api/v1/reserves` shows it all."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from indexer.api.app import create_app
from indexer.chains import tron as tron_address
from indexer.chains.dialects import DIALECTS
from indexer.chains.evm import EvmSource
from indexer.chains.rpc import RpcPool
from indexer.config import EvmChainConfig, OracleConfig
from indexer.daemon import serve_http
from indexer.devnet.anvil import Anvil
from indexer.devnet.chainlink import ChainlinkFeed
from indexer.devnet.token import TestToken
from indexer.metrics import Metrics
from indexer.oracle import EvmFeedReader, OracleService, oracle_json
from indexer.reserves import TotalSupply
from indexer.store.store import Store
from tests.support import api_data

pytestmark = pytest.mark.integration

DECIMALS = 8
FIRST = 2_200_000_000_12345678  # 2,200,000,000.12345678 USD
ATTESTED = Decimal("2180450000.25")
CIRCULATING = TotalSupply(2_150_000_000 * 10**18 + 1, 18)  # one base unit above 2.15 bn tokens
FINALITY_DEPTH = 4  # slots_in_an_epoch=2


class Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def _add(self, level: str, event: str, **kw: Any) -> None:
        self.events.append((level, event, kw))

    def warning(self, event: str, **kw: Any) -> None:
        self._add("warning", event, **kw)

    def info(self, event: str, **kw: Any) -> None:
        self._add("info", event, **kw)

    def named(self, event: str) -> list[dict[str, Any]]:
        return [kw for _, e, kw in self.events if e == event]


def gauge(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    assert value is not None, name
    return value


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def reader(
    anvil: Anvil, session: aiohttp.ClientSession, metrics: Metrics, dialect: str = "ethereum"
) -> EvmFeedReader:
    cfg = EvmChainConfig.model_validate(
        {"name": "devnet", "kind": "evm", "rpc": [anvil.url], "token": "0x" + "11" * 20, "dialect": dialect}
    )
    return EvmFeedReader(EvmSource(cfg, RpcPool("devnet", [anvil.url], session, metrics, attempts=2)))


def service(
    address: str, anvil: Anvil, session: aiohttp.ClientSession, log: Log, **over: Any
) -> tuple[OracleService, Metrics]:
    metrics = Metrics()
    cfg = OracleConfig.model_validate({"chain": "devnet", "address": address, **over})
    svc = OracleService(
        cfg, metrics, reader(anvil, session, metrics), lambda: ATTESTED, lambda: CIRCULATING, logger=log
    )
    return svc, metrics


async def finalize(anvil: Anvil) -> None:
    await anvil.mine(FINALITY_DEPTH)


async def test_feed_read_exactly_at_finalized_update_stale_and_bad_answers(
    anvil: Anvil, session: aiohttp.ClientSession, pool: Any, dsn: str, tmp_path: Path
) -> None:
    feed = await ChainlinkFeed.deploy(anvil, decimals=DECIMALS, initial_answer=FIRST)
    log = Log()
    svc, metrics = service(feed.address, anvil, session, log)
    assert gauge(metrics, "usd1_reserves_oracle_up") == 0
    assert gauge(metrics, "usd1_reserves_oracle_max_age_seconds") == 26 * 3600

    # Just deployed: the finalized block predates the feed (no code there): refused, not zero.
    assert not await svc.refresh()
    snap = svc.snapshot()
    assert not snap.up and snap.reading is None
    assert snap.last_error is not None and "no contract at the address" in snap.last_error

    await finalize(anvil)
    assert await svc.refresh()
    snap = svc.snapshot()
    truth = await feed.latest_round_data(await anvil.block_number("finalized"))
    assert snap.up and snap.reading is not None
    assert snap.reading.round.round_id == truth.round_id == 1
    assert snap.reading.round.answer == truth.answer == FIRST
    assert snap.reading.round.updated_at == truth.updated_at
    assert snap.reading.decimals == await feed.decimals() == DECIMALS
    assert snap.reading.answer == "2200000000.12345678"
    assert snap.reading.block == await anvil.block_number("finalized")
    assert not snap.stale
    value = Fraction(FIRST, 10**DECIMALS)
    assert snap.vs_attestation == value / Fraction(ATTESTED)
    assert snap.coverage == value / Fraction(CIRCULATING.raw, 10**18)
    assert gauge(metrics, "usd1_reserves_oracle_up") == 1
    assert gauge(metrics, "usd1_reserves_oracle_usd") == float(value)
    assert gauge(metrics, "usd1_reserves_oracle_updated_timestamp_seconds") == truth.updated_at
    assert gauge(metrics, "usd1_reserves_oracle_vs_attestation_ratio") == float(value / Fraction(ATTESTED))
    assert gauge(metrics, "usd1_reserves_oracle_coverage") == pytest.approx(1.0232558, rel=1e-7)
    assert [e for _, e, _ in log.events] == ["reserves_oracle_down", "reserves_oracle_recovered"]

    # An update: not read until final (the head has it, the finalized block does not) ...
    second = 2_100_000_000 * 10**DECIMALS
    await feed.update_answer(second)
    assert (await feed.latest_round_data()).answer == second
    assert await svc.refresh()
    assert svc.snapshot().reading.round.answer == FIRST  # type: ignore[union-attr]
    # (a dialect without past state, tron, reads at `latest`: it sees the update at once)
    tron = OracleService(
        OracleConfig(chain="devnet", address=feed.address),
        Metrics(),
        reader(anvil, session, Metrics(), dialect="tron"),
        lambda: ATTESTED,
        lambda: CIRCULATING,
        logger=Log(),
        shown_address=DIALECTS["tron"].show_address(feed.address.lower()),
    )
    assert await tron.refresh()
    latest = tron.snapshot().reading
    assert latest is not None and latest.round.answer == second
    assert latest.block == await anvil.block_number()  # the node did not move during the batch
    shown = oracle_json(tron.snapshot())["address"]
    assert shown.startswith("T") and tron_address.to_hex(shown) == feed.address.lower()
    # ... then reflected, exactly, in the metric, the comparisons and the API.
    await finalize(anvil)
    assert await svc.refresh()
    snap = svc.snapshot()
    assert snap.reading is not None and snap.reading.round.round_id == 2
    assert snap.reading.answer == "2100000000"
    assert gauge(metrics, "usd1_reserves_oracle_usd") == 2_100_000_000.0
    assert snap.coverage is not None and snap.coverage < 1  # below the circulating supply
    assert snap.vs_attestation == Fraction(2_100_000_000) / Fraction(ATTESTED)

    # A stale round (updated 27 h ago, beyond max_age 26 h): valid, up, flagged stale, logged once.
    old = int(time.time()) - 27 * 3600
    await feed.update_round_data(7, second, updated_at=old, started_at=old)
    await finalize(anvil)
    assert await svc.refresh() and await svc.refresh()
    snap = svc.snapshot()
    assert snap.up and snap.stale and snap.reading is not None and snap.reading.round.round_id == 7
    assert snap.age_seconds is not None and snap.age_seconds > 26 * 3600
    assert gauge(metrics, "usd1_reserves_oracle_updated_timestamp_seconds") == old
    stale_logs = log.named("reserves_oracle_stale")
    assert len(stale_logs) == 1 and stale_logs[0]["round_id"] == 7

    # Bad answers: 0, then negative: up 0, one log line for the outage, the last good round kept.
    await feed.update_answer(0)
    await finalize(anvil)
    assert not await svc.refresh()
    await feed.update_answer(-5)
    await finalize(anvil)
    assert not await svc.refresh()
    snap = svc.snapshot()
    assert not snap.up and snap.reading is not None and snap.reading.round.round_id == 7
    assert snap.last_error == "round 9: answer -5 is not positive"
    assert gauge(metrics, "usd1_reserves_oracle_up") == 0
    assert gauge(metrics, "usd1_reserves_oracle_usd") == 2_100_000_000.0
    downs = log.named("reserves_oracle_down")
    assert len(downs) == 2 and downs[1]["kept_round"] == 7
    assert "round 8: answer 0 is not positive" in downs[1]["error"]

    app = create_app(api_data.config(dsn, tmp_path), Store(pool), metrics, oracle=svc.snapshot)
    bare = create_app(api_data.config(dsn, tmp_path), Store(pool), Metrics())
    async with serve_http(app, "127.0.0.1", 0) as port, serve_http(bare, "127.0.0.1", 0) as port2:
        async with session.get(f"http://127.0.0.1:{port}/api/v1/reserves") as r:
            assert r.status == 200
            body = orjson.loads(await r.read())["oracle"]
        async with session.get(f"http://127.0.0.1:{port2}/api/v1/reserves") as r:
            unconfigured = orjson.loads(await r.read())["oracle"]
        async with session.get(f"http://127.0.0.1:{port}/") as r:
            assert r.status == 200
            html = await r.text()
        async with session.get(f"http://127.0.0.1:{port2}/") as r:
            bare_html = await r.text()
    # the page shows the same figures as the API, in its reserves section
    assert '<td id="oracle-answer">2,100,000,000.00</td>' in html
    assert '<td id="oracle-vs-attestation">96.31 %</td>' in html
    assert '<td id="oracle-coverage">97.67 %</td>' in html
    assert "7, updated " in html and '<span class="warn">(stale)</span>' in html
    assert "latest round could not be read or was refused" in html
    assert 'id="oracle-table"' not in bare_html
    assert body["configured"] and not body["up"] and body["stale"]
    assert body["answer"] == "2100000000" and body["decimals"] == DECIMALS and body["round_id"] == "7"
    assert body["address"] == feed.address.lower() and body["chain"] == "devnet"
    assert body["last_error"] == "round 9: answer -5 is not positive"
    assert body["vs_attestation"] == "0.963103946323"  # 2,100,000,000 / 2,180,450,000.25
    assert body["coverage"] == "0.976744186047"  # 2,100,000,000 / (2,150,000,000 + 1e-18)
    assert unconfigured["configured"] is False and unconfigured["answer"] is None

    # Recovery: a valid answer again, logged once.
    await feed.update_answer(FIRST)
    await finalize(anvil)
    assert await svc.refresh()
    assert svc.snapshot().reading.round.round_id == 10  # type: ignore[union-attr]
    assert len(log.named("reserves_oracle_recovered")) == 2
    assert gauge(metrics, "usd1_reserves_oracle_up") == 1


async def test_a_reverting_contract_is_refused(
    anvil: Anvil, token: TestToken, session: aiohttp.ClientSession
) -> None:
    """A contract without latestRoundData (the TestToken ERC-20): the eth_call reverts."""
    await finalize(anvil)
    log = Log()
    svc, metrics = service(token.address, anvil, session, log)
    assert not await svc.refresh()
    assert not await svc.refresh()
    snap = svc.snapshot()
    assert not snap.up and snap.reading is None and snap.last_error is not None
    assert "revert" in snap.last_error.lower()
    assert len(log.named("reserves_oracle_down")) == 1
    assert gauge(metrics, "usd1_reserves_oracle_up") == 0
