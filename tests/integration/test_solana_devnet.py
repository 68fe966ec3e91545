"""The LiteSVM-backed Solana devnet: wire format (read by solana-py's AsyncClient), commitment
levels, skipped slots, failing / inner / v0 transactions, and forks by replay."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed, Finalized, Processed
from solana.rpc.models import TxOpts
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction, VersionedTransaction
from spl.token.instructions import mint_to
from spl.token.models import MintToParams

from indexer.chains.solana_parse import parse_block, parse_transaction
from indexer.devnet.solana_devnet import SolanaDevnet, SolanaLedger, render_tx
from indexer.devnet.solana_traffic import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID, SolanaTraffic, devnet_mint
from indexer.devnet.solana_wire import decode_mint

pytestmark = pytest.mark.integration


async def rpc(url: str, method: str, params: list[Any]) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(url, data=orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})) as r,
    ):
        reply: dict[str, Any] = orjson.loads(await r.read())
        return reply


@pytest.fixture
async def devnet() -> AsyncIterator[tuple[SolanaDevnet, SolanaTraffic]]:
    async with SolanaDevnet(finality_depth=8, confirmed_depth=1) as dn:
        traffic = SolanaTraffic(dn.ledger, seed=7, owners=8)
        traffic.setup()
        dn.advance(1)
        rng = random.Random(7)
        for _ in range(40):
            traffic.step(rng)
            traffic.step(rng)
            dn.advance(1, skip=rng.random() < 0.15)
        dn.advance(10)
        yield dn, traffic


def supply_from_blocks(ledger: SolanaLedger, mint: str) -> int:
    total = 0
    for slot in ledger.block_slots(0, ledger.tip):
        block = ledger.blocks[slot]
        for rec in block.txs:
            tx = orjson.loads(orjson.dumps(render_tx(rec, parsed=False, with_version=True)))
            for e in parse_transaction("s", mint, slot, block.blockhash, 0, tx).events:
                total += e.amount if e.kind == "mint" else -e.amount if e.kind == "burn" else 0
    return total


def mint_supply(ledger: SolanaLedger, mint: Pubkey) -> int:
    acct = ledger.svm.get_account(mint)
    assert acct is not None
    dm = decode_mint(bytes(acct.data))
    assert dm is not None
    return dm[0]


async def test_asyncclient_reads_the_wire_format(devnet: tuple[SolanaDevnet, SolanaTraffic]) -> None:
    dn, traffic = devnet
    async with AsyncClient(dn.url) as client:
        processed = (await client.get_slot(Processed)).value
        confirmed = (await client.get_slot(Confirmed)).value
        finalized = (await client.get_slot(Finalized)).value
        assert processed >= confirmed >= finalized > 0
        blocks = (await client.get_blocks(0, confirmed)).value  # default commitment: finalized
        assert blocks == dn.ledger.block_slots(0, finalized)
        full = [s for s in blocks if dn.ledger.blocks[s].txs]
        for encoding in ("json", "jsonParsed"):
            for slot in full[:15]:
                got = (
                    await client.get_block(
                        slot, encoding, max_supported_transaction_version=0, commitment=Confirmed
                    )
                ).value
                assert str(got.blockhash) == dn.ledger.blocks[slot].blockhash
                assert got.transactions is not None
                assert len(got.transactions) == len(dn.ledger.blocks[slot].txs)
        rec = dn.ledger.blocks[full[0]].txs[0]
        tx = (
            await client.get_transaction(
                Signature.from_string(rec.signature), max_supported_transaction_version=0
            )
        ).value
        assert tx is not None and tx.slot == full[0]
        supply = (await client.get_token_supply(traffic.mint, Finalized)).value
        assert supply.decimals == 6
        bal = (await client.get_token_account_balance(traffic.atas[0], Processed)).value
        assert int(bal.amount) == traffic.balance(traffic.atas[0])
        assert (await client.get_balance(traffic.payer.pubkey(), Processed)).value > 0
        sigs = (await client.get_signatures_for_address(traffic.mint, limit=5, commitment=Confirmed)).value
        assert 0 < len(sigs) <= 5
        # a client-built transaction lands through sendTransaction
        blockhash = (await client.get_latest_blockhash(Processed)).value.blockhash
        ix = mint_to(
            MintToParams(
                program_id=TOKEN_PROGRAM_ID,
                mint=traffic.mint,
                dest=traffic.atas[1],
                mint_authority=traffic.payer.pubkey(),
                amount=424242,
            )
        )
        before = traffic.balance(traffic.atas[1])
        sent = await client.send_transaction(
            VersionedTransaction.from_legacy(
                Transaction(
                    [traffic.payer],
                    Message.new_with_blockhash([ix], traffic.payer.pubkey(), blockhash),
                    blockhash,
                )
            ),
            opts=TxOpts(skip_preflight=False),
        )
        dn.advance(2)
        assert traffic.balance(traffic.atas[1]) == before + 424242
        status = (await client.get_signature_statuses([sent.value])).value[0]
        assert status is not None and status.err is None


async def test_commitments_skipped_slots_and_errors(devnet: tuple[SolanaDevnet, SolanaTraffic]) -> None:
    dn, _ = devnet
    led = dn.ledger
    skipped = dn.advance(3, skip=True)
    assert skipped == []
    made = dn.advance(2)
    conf = led.commitment_slot("confirmed")
    gap = [s for s in range(1, conf) if s not in led.blocks]
    assert gap, "the fixture skips some slots"
    r = await rpc(dn.url, "getBlock", [gap[0], {"commitment": "confirmed"}])
    assert r["error"]["code"] == -32007
    r = await rpc(dn.url, "getBlock", [made[-1], {"commitment": "confirmed"}])
    assert r["error"]["code"] == -32004  # processed only: not available at confirmed
    r = await rpc(dn.url, "getBlock", [made[-1], {"commitment": "processed"}])
    assert r["error"]["code"] == -32602
    r = await rpc(dn.url, "getBlocks", [0, conf + 50, {"commitment": "confirmed"}])
    assert r["result"] == led.block_slots(0, conf) and gap[0] not in r["result"]
    # a block with a v0 transaction needs maxSupportedTransactionVersion
    v0 = next(s for s in led.block_slots(0, conf) if any(t.version == 0 for t in led.blocks[s].txs))
    r = await rpc(dn.url, "getBlock", [v0, {"commitment": "confirmed"}])
    assert r["error"]["code"] == -32015
    r = await rpc(dn.url, "getBlock", [v0, {"commitment": "confirmed", "maxSupportedTransactionVersion": 0}])
    tx = next(t for t in r["result"]["transactions"] if t["version"] == 0)
    assert tx["meta"]["loadedAddresses"]["writable"], "token accounts come from the lookup table"
    # batch requests
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            dn.url, data=orjson.dumps([{"jsonrpc": "2.0", "id": i, "method": "getSlot"} for i in range(3)])
        ) as resp,
    ):
        assert [x["result"] for x in orjson.loads(await resp.read())] == [
            led.commitment_slot("finalized")
        ] * 3


async def test_traffic_covers_failures_inner_and_both_programs() -> None:
    led = SolanaLedger()
    tr = [
        SolanaTraffic(led, seed=3, owners=6, program_id=p) for p in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)
    ]
    for t in tr:
        t.setup()
    rng = random.Random(3)
    for _ in range(25):
        for t in tr:
            t.mint_to(rng.randrange(6), rng.randint(1, 10**9))
            t.failing(rng.randrange(6), rng.randrange(6))
            t.nested_recover(rng.randrange(6), rng.randint(1, 10**6))
            t.step(rng)
        led.advance(1)
    assert devnet_mint(3, TOKEN_2022_PROGRAM_ID) == tr[1].mint_address
    recs = [r for s in led.block_slots(0, led.tip) for r in led.blocks[s].txs]
    failed = [r for r in recs if r.err is not None]
    assert len(failed) >= 50 and all("InstructionError" in r.err for r in failed)
    for t in tr:
        for parsed in (False, True):
            inner = 0
            total = 0
            for slot in led.block_slots(0, led.tip):
                block = orjson.loads(
                    orjson.dumps(
                        {
                            "blockhash": led.blocks[slot].blockhash,
                            "previousBlockhash": led.blocks[slot].previous_blockhash,
                            "parentSlot": led.blocks[slot].parent_slot,
                            "blockTime": 0,
                            "transactions": [
                                render_tx(r, parsed=parsed, with_version=True) for r in led.blocks[slot].txs
                            ],
                        }
                    )
                )
                _, events, unattributed = parse_block("s", t.mint_address, slot, block)
                assert unattributed == 0
                inner += sum(1 for e in events if e.log_index % 1000)
                total += sum(
                    e.amount if e.kind == "mint" else -e.amount if e.kind == "burn" else 0 for e in events
                )
            assert inner >= 25, "RecoverNested moves tokens by CPI (inner transferChecked)"
            assert total == mint_supply(led, t.mint)


@pytest.mark.parametrize("reuse_slots", [False, True])
async def test_fork_replays_to_a_consistent_state(reuse_slots: bool) -> None:
    led = SolanaLedger(finality_depth=6)
    t = SolanaTraffic(led, seed=11, owners=5)
    t.setup()
    rng = random.Random(11)
    for _ in range(30):
        t.step(rng)
        t.step(rng)
        led.advance(1)
    fin = led.commitment_slot("finalized")
    old = {s: led.blocks[s].blockhash for s in led.block_slots(fin + 1, led.tip)}
    assert len(old) >= 5
    fin_supply_before = supply_from_blocks(led, t.mint_address)
    dropped = led.fork(fin, reuse_slots=reuse_slots)
    assert sorted(old) == dropped
    assert led.commitment_slot("finalized") == fin
    # state equals the replayed visible chain
    assert mint_supply(led, t.mint) == supply_from_blocks(led, t.mint_address) != fin_supply_before
    for _ in range(12):
        t.step(rng)
        led.advance(1)
    assert mint_supply(led, t.mint) == supply_from_blocks(led, t.mint_address)
    for s in dropped:
        if s in led.blocks:
            assert led.blocks[s].blockhash != old[s]
    assert all(led.blocks[s].parent_slot in led.blocks for s in led.block_slots(1, led.tip))


async def test_fork_keep_txs_moves_them_to_a_new_block() -> None:
    led = SolanaLedger(finality_depth=4)
    t = SolanaTraffic(led, seed=5, owners=4)
    t.setup()
    led.advance(6)
    t.mint_to(0, 1234)
    led.advance(1)
    sig = led.blocks[led.tip].txs[0].signature
    old_slot = led.tip
    led.fork(led.commitment_slot("finalized"), keep_txs=True)
    assert led.find_tx(sig) is None
    led.advance(1)
    found = led.find_tx(sig)
    assert found is not None and found[0].slot > old_slot
