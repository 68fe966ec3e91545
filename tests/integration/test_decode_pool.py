"""Large eth_getLogs replies decoded in a worker process (`indexer.chains.decode_pool`), on real
parts: anvil behind FaultProxies, read through RpcPool + EvmSource. The worker must give exactly
the events the daemon's own process decodes, report a broken body as a malformed reply of its
endpoint, and lose nothing when it is killed."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import aiohttp
import pytest

from indexer.chains.decode_pool import DecodePool
from indexer.chains.evm import EvmSource
from indexer.chains.rpc import RpcPool
from indexer.daemon import backfill
from indexer.devnet.anvil import Anvil
from indexer.devnet.faultproxy import FaultProxy
from indexer.devnet.token import TestToken
from indexer.devnet.traffic import Traffic
from indexer.metrics import Metrics
from indexer.model import TokenEvent
from indexer.runtime import open_runtime
from indexer.store.copy_binary import encode_event_rows
from tests.integration.test_evm_pipeline import CHAIN, make_config
from tests.integration.test_rpc_failover import chain_cfg, outcomes
from tests.support.chain_truth import chain_transfer_events, indexed_events

pytestmark = pytest.mark.integration


async def _events(src: EvmSource, head: int) -> list[TokenEvent]:
    return list((await src.fetch_range(0, head, with_headers=False)).events)


async def test_worker_decodes_exactly_like_the_daemon(
    anvil: Anvil, token: TestToken, traffic: Traffic
) -> None:
    await traffic.run(15)
    head = await anvil.block_number()
    decoder = DecodePool(1, min_bytes=0)  # every reply goes to the worker
    try:
        async with (
            FaultProxy(anvil.url, seed=5) as bad,
            FaultProxy(anvil.url) as good,
            aiohttp.ClientSession() as s,
        ):
            plain = EvmSource(
                chain_cfg([good.url], token.address), RpcPool("devnet", [good.url], s, Metrics())
            )
            expected = await _events(plain, head)
            assert expected, "the traffic made no Transfer events"

            m = Metrics()
            pool = RpcPool("devnet", [bad.url, good.url], s, m, timeout=2, backoff_base=0.01)
            src = EvmSource(chain_cfg([bad.url, good.url], token.address), pool, decoder=decoder)
            data = await src.fetch_range(0, head, with_headers=False)
            got = list(data.events)
            assert got == expected
            assert all(type(e) is TokenEvent for e in got)
            assert decoder.offloaded >= 1
            # anvil's logs carry blockTimestamp, so the worker also encoded the rows for COPY.
            assert data.copy_rows is not None and data.copy_rows == encode_event_rows(got)

            # A body that is not JSON, parsed in the worker, is the endpoint's malformed reply.
            bad.fault_methods = frozenset({"eth_getLogs"})
            for fault in ("garbage", "truncate"):
                setattr(bad, fault, True)
                before = decoder.offloaded
                for ep in pool.endpoints:
                    ep.cooldown_until = ep.limited_until = 0.0
                    ep.error_ewma = 0.0
                assert await _events(src, head) == expected
                setattr(bad, fault, False)
                assert bad.faults[fault] >= 1
                assert decoder.offloaded > before
            assert outcomes(m, pool.labels()[0]).get("malformed", 0) >= 2
    finally:
        await decoder.close()
    assert decoder.worker_pids() == []


async def test_killed_worker_loses_nothing(anvil: Anvil, token: TestToken, traffic: Traffic) -> None:
    await traffic.run(10)
    head = await anvil.block_number()
    decoder = DecodePool(1, min_bytes=0)
    try:
        async with aiohttp.ClientSession() as s:
            src = EvmSource(
                chain_cfg([anvil.url], token.address),
                RpcPool("devnet", [anvil.url], s, Metrics()),
                decoder=decoder,
            )
            expected = await _events(src, head)
            (pid,) = decoder.worker_pids()
            os.kill(pid, signal.SIGKILL)
            # The reply the dead worker was given is decoded here; a new worker takes the next.
            assert await _events(src, head) == expected
            assert await _events(src, head) == expected
            assert decoder.worker_pids() and decoder.worker_pids() != [pid]
    finally:
        await decoder.close()


async def test_daemon_backfill_through_the_worker(
    anvil: Anvil,
    token: TestToken,
    traffic: Traffic,
    dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`usd1-indexer backfill` with every eth_getLogs reply decoded and COPY-encoded by the
    worker: exactly the chain's events, and the chain's own totalSupply."""
    import indexer.chains.decode_pool as decode_pool

    monkeypatch.setattr(decode_pool, "OFFLOAD_MIN_BYTES", 0)
    offloaded: list[int] = []
    real_close = DecodePool.close

    async def close(self: DecodePool) -> None:
        offloaded.append(self.offloaded)
        await real_close(self)

    monkeypatch.setattr(DecodePool, "close", close)
    await traffic.run(30)
    await anvil.mine(5)
    cfg = make_config(anvil.url, token.address, dsn, tmp_path, max_block_range=4)
    assert cfg.decode_processes == 1
    fin = (await backfill(cfg, None, None))[CHAIN]
    assert offloaded and offloaded[0] >= 2, "no reply went to the worker"
    truth = await chain_transfer_events(anvil, token.address, fin)
    async with open_runtime(cfg) as rt:
        got = await indexed_events(rt.pool, CHAIN)
        assert len(got) == len(set(got)) and set(got) == truth
        assert (await rt.store.supply_at(CHAIN, fin)).supply == await token.total_supply(fin)
