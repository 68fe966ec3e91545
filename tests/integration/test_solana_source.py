"""SolanaSource over the LiteSVM devnet (real SPL Token / Token-2022 programs), and over a small
fake server for malformed and truncated replies."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from solders.pubkey import Pubkey

from indexer.chains.base import ChainSource
from indexer.chains.solana import SolanaSource, SupplySlotMismatch
from indexer.config import SolanaChainConfig
from indexer.devnet.solana_devnet import SolanaDevnet
from indexer.devnet.solana_traffic import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID, SolanaTraffic
from indexer.errors import DataConsistencyError, MalformedReply
from indexer.metrics import Metrics
from indexer.model import BlockRef, EventKind, TokenEvent
from indexer.reorg import Reorg, Window, reconcile

pytestmark = pytest.mark.integration


def make_source(
    url: str, mint: str, *, encoding: Any = "json", attempts: int = 5, **cfg: Any
) -> SolanaSource:
    config = SolanaChainConfig.model_validate(
        {"name": "solana", "kind": "solana", "rpc": [url], "mint": mint, "decimals": 6, "max_concurrency": 8}
        | cfg
    )
    return SolanaSource.from_config(config, metrics=Metrics(), encoding=encoding, attempts=attempts)


class Devnet:
    def __init__(self, dn: SolanaDevnet, traffics: list[SolanaTraffic], rng: random.Random) -> None:
        self.dn, self.traffics, self.rng = dn, traffics, rng

    def run(self, slots: int, skip_rate: float = 0.15) -> None:
        for _ in range(slots):
            for t in self.traffics:
                t.step(self.rng)
            self.dn.advance(1, skip=self.rng.random() < skip_rate)


@pytest.fixture
async def net() -> AsyncIterator[Devnet]:
    async with SolanaDevnet(finality_depth=8, confirmed_depth=1, seed=21) as dn:
        traffics = [
            SolanaTraffic(dn.ledger, seed=21, owners=10, program_id=p)
            for p in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)
        ]
        for t in traffics:
            t.setup()
        dn.advance(1)
        yield Devnet(dn, traffics, random.Random(21))


async def walk(src: SolanaSource, start: int, end: int, step: int) -> tuple[list[TokenEvent], list[BlockRef]]:
    events: list[TokenEvent] = []
    refs: list[BlockRef] = []
    s = start
    while s <= end:
        rd = await src.fetch_range(s, min(end, s + step - 1), with_headers=True)
        events += rd.events
        refs += rd.headers
        assert rd.end_ref.number <= rd.end
        assert not rd.headers or rd.end_ref == rd.headers[-1]
        s = rd.end + 1
    return events, refs


@pytest.mark.parametrize(
    ("program", "encoding"),
    [
        (TOKEN_PROGRAM_ID, "json"),
        (TOKEN_PROGRAM_ID, "jsonParsed"),
        (TOKEN_2022_PROGRAM_ID, "json"),
        (TOKEN_2022_PROGRAM_ID, "jsonParsed"),
    ],
)
async def test_walk_all_slots_matches_supply_and_balances(
    net: Devnet, program: Pubkey, encoding: str
) -> None:
    net.run(120)
    net.dn.advance(10)
    traffic = next(t for t in net.traffics if t.program_id == program)
    src = make_source(net.dn.url, traffic.mint_address, encoding=encoding)
    try:
        assert isinstance(src, ChainSource)
        head = await src.head()
        fin = await src.finalized(head)
        assert fin == net.dn.ledger.commitment_slot("finalized") <= head
        events, refs = await walk(src, 0, fin, 17)
        # headers: every existing block, hash-linked, skipped slots absent
        assert [r.number for r in refs] == net.dn.ledger.block_slots(0, fin)
        assert all(b.parent_hash == a.hash for a, b in itertools.pairwise(refs))
        assert len(refs) < fin + 1, "some slots were skipped"
        # identities unique; failed transactions contribute nothing
        assert len({e.identity for e in events}) == len(events)
        failed = {
            r.signature
            for s in net.dn.ledger.block_slots(0, fin)
            for r in net.dn.ledger.blocks[s].txs
            if r.err
        }
        assert failed and not failed & {e.tx_hash for e in events}
        kinds = Counter(e.kind for e in events)
        assert kinds[EventKind.MINT] and kinds[EventKind.BURN] and kinds[EventKind.TRANSFER]
        assert any(e.log_index % 1000 for e in events), "inner (CPI) movements are indexed"
        # minted - burned == the chain's own supply at the finalized slot
        supply = sum(e.amount for e in events if e.kind is EventKind.MINT) - sum(
            e.amount for e in events if e.kind is EventKind.BURN
        )
        assert await src.total_supply(refs[-1]) == supply > 0
        # per token account: net flow == the account's balance (0 once closed)
        flow: Counter[str] = Counter()
        for e in events:
            if e.from_addr:
                flow[e.from_addr] -= e.amount
            if e.to_addr:
                flow[e.to_addr] += e.amount
        for account, net_flow in flow.items():
            acct = net.dn.ledger.account(Pubkey.from_string(account), "finalized")
            balance = (
                0 if acct is None or acct.lamports == 0 else traffic.balance(Pubkey.from_string(account))
            )
            assert net_flow == balance, account
        # measured cost: 1 getBlock per existing block + 2 requests per range
        n_ranges = -(-(fin + 1) // 17)
        assert src.requests["getBlock"] == len(refs)
        assert src.requests["getBlocks"] == n_ranges and src.requests["getSlot"] <= n_ranges + 2
    finally:
        await src.close()


async def test_headers_and_skipped_slots(net: Devnet) -> None:
    net.run(30, skip_rate=0.3)
    led = net.dn.ledger
    before_gap = led.tip
    net.dn.advance(5, skip=True)
    net.dn.advance(3)
    src = make_source(net.dn.url, net.traffics[0].mint_address)
    try:
        head = await src.head()
        numbers = list(range(0, head + 5))
        got = await src.headers(numbers)
        for n, ref in zip(numbers, got, strict=True):
            if n in led.blocks and n <= head:
                blk = led.blocks[n]
                assert ref == BlockRef(n, blk.blockhash, blk.previous_blockhash, blk.block_time)
            else:
                assert ref is None
        # sparse request: single-slot getBlocks each, no getBlock for skipped slots
        skipped = [n for n in range(1, head) if n not in led.blocks][:3]
        calls = src.requests["getBlock"]
        far = await src.headers([*skipped, head, head + 10_000])
        assert far[:-2] == [None] * len(skipped) and far[-2] is not None and far[-1] is None
        assert src.requests["getBlock"] == calls + 1
        # a range with no block: end_ref looks back to the newest earlier block
        rd = await src.fetch_range(before_gap + 1, before_gap + 5, with_headers=True)
        assert rd.events == () and rd.headers == ()
        assert rd.end_ref.number == led.block_slots(0, before_gap)[-1]
        # a range reaching past the confirmed slot is clamped: the cursor never passes unread slots
        rd = await src.fetch_range(head - 2, head + 50, with_headers=False)
        assert rd.end == head and rd.end_ref.number == head and rd.headers == ()
    finally:
        await src.close()


@pytest.mark.parametrize("reuse_slots", [False, True])
async def test_fork_above_finalized_is_a_reorg(net: Devnet, reuse_slots: bool) -> None:
    net.run(40)
    src = make_source(net.dn.url, net.traffics[0].mint_address)
    try:
        head = await src.head()
        fin = await src.finalized(head)
        _, refs = await walk(src, 0, head, 50)
        window = Window(tuple(refs), fin)
        dropped_slots = net.dn.fork(fin, reuse_slots=reuse_slots)
        dropped = tuple(r for r in refs if r.number in dropped_slots)
        assert dropped and all(r.number > fin for r in dropped)
        net.run(12, skip_rate=0.0)
        # the dropped slots now read differently (skipped, or new hashes)
        again = await src.headers([r.number for r in dropped])
        assert all(a is None or a.hash != r.hash for a, r in zip(again, dropped, strict=True))
        new_head = await src.head()
        rd = await src.fetch_range(fin, new_head, with_headers=True)
        decision = reconcile(window, rd.headers)
        assert isinstance(decision, Reorg)
        assert decision.ancestor.number == fin
        assert decision.orphaned == dropped
        assert decision.new == rd.headers[1:]
    finally:
        await src.close()


async def test_total_supply_only_at_the_commitment_slot(net: Devnet) -> None:
    net.run(20)
    src = make_source(net.dn.url, net.traffics[0].mint_address)
    try:
        head = await src.head()
        fin = await src.finalized(head)
        assert fin < head and await src.tips() == (head, fin)  # both slots, read at once
        (ref,) = await src.headers([fin])
        assert ref is not None
        slot, amount = await src.supply_snapshot()
        assert slot == fin and await src.total_supply(ref) == amount
        net.run(3, skip_rate=0.0)
        with pytest.raises(SupplySlotMismatch) as info:
            await src.total_supply(ref)
        assert info.value.slot > fin
        confirmed_src = make_source(
            net.dn.url, net.traffics[0].mint_address, finality={"commitment": "confirmed"}
        )
        try:
            head = await confirmed_src.head()
            assert await confirmed_src.finalized(head) == head
            assert await confirmed_src.tips() == (head, head)
        finally:
            await confirmed_src.close()
    finally:
        await src.close()


# ---- malformed / truncated replies from a fake node ----

GOOD_BLOCK = {
    "blockhash": "GdY1gj7F8vq1nCy4dgCZK42WV19bkfQ4cp2e9evK18ry",
    "previousBlockhash": "7KpgQJdgXdPhzj69gCnyvyBiw9s6DZ5gmfNrhQr3XW1t",
    "parentSlot": 9,
    "blockTime": 1,
    "transactions": [],
}
MINT = "USD1ttGY1N17NEEHLmELoaybftRBUSErhqYiQzvEmuB"


def ok(result: Any) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": "ID", "result": result})


def err(code: int, message: str) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": "ID", "error": {"code": code, "message": message}})


Script = dict[str, Callable[[list[Any]], bytes]]


@pytest.fixture
async def fake() -> AsyncIterator[Callable[[Script], str]]:
    runners: list[web.AppRunner] = []

    async def start(script: Script) -> str:
        async def handle(request: web.Request) -> web.Response:
            body = orjson.loads(await request.read())
            raw = script[body["method"]](body.get("params") or [])
            return web.Response(
                body=raw.replace(b'"ID"', orjson.dumps(body["id"])), content_type="application/json"
            )

        app = web.Application()
        app.router.add_post("/", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield start  # type: ignore[misc]
    for r in runners:
        await r.cleanup()


def block_with(**changes: Any) -> bytes:
    b = dict(GOOD_BLOCK) | changes
    return ok({k: v for k, v in b.items() if v is not ...})


BAD_TX = {
    "transaction": {
        "signatures": ["5ig"],
        "message": {
            "accountKeys": [MINT, "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"],
            "instructions": [{"programIdIndex": 1, "accounts": [0, 0, 0], "data": "8"}],
        },
    },
    "meta": {"err": None, "innerInstructions": [], "preTokenBalances": [], "postTokenBalances": []},
}


@pytest.mark.parametrize(
    ("script", "match"),
    [
        ({"getSlot": lambda p: b'{"jsonrpc":"2.0","id":"ID","result":12'}, "not JSON"),
        ({"getSlot": lambda p: ok("12")}, "getSlot"),
        ({"getSlot": lambda p: ok(-1)}, "getSlot"),
        ({"getSlot": lambda p: b"<html>bad gateway</html>"}, "not JSON"),
        ({"getSlot": lambda p: ok(20), "getBlocks": lambda p: ok({"slots": [10]})}, "not a list"),
        ({"getSlot": lambda p: ok(20), "getBlocks": lambda p: ok([12, 10])}, "ascending"),
        ({"getSlot": lambda p: ok(20), "getBlocks": lambda p: ok([10, 99])}, "ascending"),
        (
            {
                "getSlot": lambda p: ok(20),
                "getBlocks": lambda p: ok([10]),
                "getBlock": lambda p: block_with(blockhash=...),
            },
            "blockhash",
        ),
        (
            {
                "getSlot": lambda p: ok(20),
                "getBlocks": lambda p: ok([10]),
                "getBlock": lambda p: block_with(parentSlot="9"),
            },
            "parentSlot",
        ),
        (
            {
                "getSlot": lambda p: ok(20),
                "getBlocks": lambda p: ok([10]),
                "getBlock": lambda p: block_with(transactions=...),
            },
            "transactions",
        ),
        (
            {"getSlot": lambda p: ok(20), "getBlocks": lambda p: ok([10]), "getBlock": lambda p: ok(None)},
            "null",
        ),
        (
            {
                "getSlot": lambda p: ok(20),
                "getBlocks": lambda p: ok([10]),
                "getBlock": lambda p: block_with(transactions=[BAD_TX]),
            },
            "data bytes",
        ),
        (
            {
                "getSlot": lambda p: ok(20),
                "getBlocks": lambda p: ok([10]),
                "getBlock": lambda p: ok(GOOD_BLOCK)[:-30],
            },
            "not JSON",
        ),
        (
            {
                "getSlot": lambda p: ok(20),
                "getBlocks": lambda p: ok([10]),
                "getBlock": lambda p: b'{"jsonrpc":"2.0","id":"ID"}',
            },
            "neither",
        ),
    ],
)
async def test_malformed_replies_raise(fake: Callable[[Script], Any], script: Script, match: str) -> None:
    url = await fake(script)
    src = make_source(url, MINT, attempts=1)
    try:
        with pytest.raises(MalformedReply, match=match):
            await src.fetch_range(10, 15, with_headers=True)
    finally:
        await src.close()


async def test_malformed_supply_and_long_term_storage_skips(fake: Callable[[Script], Any]) -> None:
    url = await fake(
        {
            "getTokenSupply": lambda p: ok({"context": {"slot": 5}, "value": {"amount": 1.5, "decimals": 6}}),
            "getBlocks": lambda p: ok([p[0]]),  # listed, then gone (a fork in between)
            "getBlock": lambda p: err(-32009, f"Slot {p[0]} was skipped, or missing in long-term storage"),
        }
    )
    src = make_source(url, MINT, attempts=1)
    try:
        with pytest.raises(MalformedReply, match="amount"):
            await src.supply_snapshot()
        assert await src.headers([3, 500_000]) == [None, None]
    finally:
        await src.close()


async def test_unlinked_blocks_in_one_range_are_inconsistent(fake: Callable[[Script], Any]) -> None:
    def block(p: list[Any]) -> bytes:
        slot = p[0]
        return block_with(parentSlot=slot - 1, blockhash=f"h{slot}" * 4, previousBlockhash="zz" * 16)

    url = await fake({"getSlot": lambda p: ok(20), "getBlocks": lambda p: ok([10, 11]), "getBlock": block})
    src = make_source(url, MINT, attempts=1)
    try:
        with pytest.raises(DataConsistencyError):
            await src.fetch_range(10, 15, with_headers=True)
    finally:
        await src.close()
