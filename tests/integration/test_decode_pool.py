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

from indexer.chains.decode_pool import DecodedLogs, DecodePool
from indexer.chains.evm import EvmSource
from indexer.chains.evm_families import LogDispatch
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


def _synthetic_reply(n: int, token: str) -> bytes:
    import orjson

    from indexer.chains.evm_decode import TRANSFER_TOPIC

    logs = [
        {
            "address": token,
            "topics": [TRANSFER_TOPIC, "0x" + "0" * 24 + f"{i + 1:040x}", "0x" + "0" * 24 + f"{i + 2:040x}"],
            "data": f"0x{i * 10**12:064x}",
            "blockHash": f"0x{i // 100 + 1:064x}",
            "blockNumber": hex(i // 100 + 1),
            "blockTimestamp": hex(1_700_000_000 + i // 100),
            "transactionHash": f"0x{i // 10 + 1:064x}",
            "transactionIndex": hex(i % 100 // 10),
            "logIndex": hex(i % 100),
            "removed": False,
        }
        for i in range(n)
    ]
    return orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": logs})


async def test_cancelled_requests_leave_the_pipe_in_step() -> None:
    """Requests cancelled half-way (a follower stopping) never leave a half-read reply to be taken
    for the next request's: a reply whose caller is gone is dropped, a request cancelled while
    being written kills its worker. Later requests get exactly their own answers, and close()
    leaves no process."""
    import asyncio

    token = "0x" + "ab" * 20
    raws = [_synthetic_reply(n, token) for n in (20_000, 3_000)]
    decoder = DecodePool(1, min_bytes=0)

    def same(a: DecodedLogs, b: DecodedLogs) -> bool:
        return a.rows == b.rows and a.error == b.error and a.copy in (None, b.copy)

    try:
        want = [(await decoder.decode(raw, "devnet", LogDispatch.build(token)))["result"] for raw in raws]
        for delay in (0.0, 0.002, 0.005, 0.02, 0.05):
            tasks = [
                asyncio.create_task(decoder.decode(raw, "devnet", LogDispatch.build(token))) for raw in raws
            ]
            await asyncio.sleep(delay)
            tasks[0].cancel()
            done = await asyncio.gather(*tasks, return_exceptions=True)
            # A request whose worker was killed under it is decoded here (rows only, no COPY bytes).
            assert isinstance(done[0], asyncio.CancelledError) or same(done[0]["result"], want[0])
            assert same(done[1]["result"], want[1])
            got = [(await decoder.decode(raw, "devnet", LogDispatch.build(token)))["result"] for raw in raws]
            assert got == want
        assert len(want[0].events()) == 20_000 and want[0].copy == encode_event_rows(want[0].events())
        assert decoder.offloaded >= 12
    finally:
        pids = decoder.worker_pids()
        await decoder.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    # After close, replies are decoded in this process.
    after = (await decoder.decode(raws[1], "devnet", LogDispatch.build(token)))["result"]
    assert same(after, want[1]) and after.copy is None
