"""The Solana devnet's admin methods (`devnet_*`) over HTTP, each checked through the normal Solana
RPC (getSlot, getBlock, getBalance, getTokenAccountBalance, getAccountInfo), and
`usd1-indexer devnet --solana-only` as its own process (admin calls, then SIGTERM: a clean exit)."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from solders.keypair import Keypair
from solders.token.associated import get_associated_token_address

from indexer.chains.solana_parse import parse_transaction
from indexer.devnet.solana_admin import DevnetUnreachable, SolanaAdminClient, SolanaAdminError
from indexer.devnet.solana_devnet import SolanaDevnet
from indexer.devnet.solana_traffic import SolanaTraffic

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


async def rpc(url: str, method: str, params: Any) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(url, data=orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})) as r,
    ):
        reply: dict[str, Any] = orjson.loads(await r.read())
        return reply


@pytest.fixture
async def devnet() -> AsyncIterator[tuple[SolanaDevnet, SolanaTraffic, SolanaAdminClient]]:
    async with SolanaDevnet(finality_depth=6, confirmed_depth=1, admin=True) as dn:
        traffic = SolanaTraffic(dn.ledger, seed=3, owners=4)
        traffic.setup()
        assert dn.admin is not None
        dn.admin.token = traffic
        dn.advance(10)
        async with SolanaAdminClient(dn.url) as client:
            yield dn, traffic, client


async def test_produce_skip_and_fork_seen_through_rpc(
    devnet: tuple[SolanaDevnet, SolanaTraffic, SolanaAdminClient],
) -> None:
    dn, _, admin = devnet
    url = dn.url
    tip = (await rpc(url, "getSlot", [{"commitment": "processed"}]))["result"]
    made = await admin.produce(3)
    assert made == [tip + 1, tip + 2, tip + 3]
    assert (await rpc(url, "getSlot", [{"commitment": "processed"}]))["result"] == tip + 3
    skipped = await admin.skip(2)
    assert skipped == [tip + 4, tip + 5]
    # skipped slots are not blocks: processed stays on the last block until the next one
    assert (await rpc(url, "getSlot", [{"commitment": "processed"}]))["result"] == tip + 3
    after = await admin.produce(2)
    assert after == [tip + 6, tip + 7]
    r = await rpc(url, "getBlock", [skipped[0], {"commitment": "confirmed"}])
    assert r["error"]["code"] == -32007, r
    blocks = (await rpc(url, "getBlocks", [tip, tip + 7, {"commitment": "confirmed"}]))["result"]
    assert blocks == [tip, tip + 1, tip + 2, tip + 3, tip + 6]

    status = await admin.status()
    assert status["tip"] == tip + 7 and status["processed"] == tip + 7
    fin = status["finalized"]
    assert fin == dn.ledger.commitment_slot("finalized") and fin < tip + 3

    # a fork at tip+2 refilling the same slots: the block at tip+3 is replaced (new blockhash)
    old = (await rpc(url, "getBlock", [tip + 3, {"commitment": "confirmed"}]))["result"]["blockhash"]
    dropped = await admin.fork(tip + 2, reuse_slots=True)
    assert dropped == [tip + 3, tip + 6, tip + 7]
    assert (await rpc(url, "getSlot", [{"commitment": "processed"}]))["result"] == tip + 2
    await admin.produce(3)
    new = (await rpc(url, "getBlock", [tip + 3, {"commitment": "confirmed"}]))["result"]
    assert new["blockhash"] != old and new["parentSlot"] == tip + 2
    assert (await admin.status())["forkEpoch"] == 1

    # by depth, without reusing slots: the dropped slots become skipped ones
    top = dn.ledger.tip
    dropped = await admin.fork(depth=1)
    assert dropped == [top]
    await admin.produce(2)
    r = await rpc(url, "getBlock", [top, {"commitment": "confirmed"}])
    assert r["error"]["code"] == -32007
    # no slot nor depth: every block above the finalized slot goes
    fin = dn.ledger.commitment_slot("finalized")
    above = dn.ledger.block_slots(fin + 1, dn.ledger.tip)
    assert above and await admin.fork() == above
    assert (await rpc(url, "getSlot", [{"commitment": "processed"}]))["result"] == fin
    await admin.produce(2)
    # below finalized only on purpose
    fin = dn.ledger.commitment_slot("finalized")
    with pytest.raises(SolanaAdminError) as e:
        await admin.fork(fin - 1 if fin - 1 in dn.ledger.blocks else 0)
    assert e.value.code == -32602 and "below the finalized slot" in e.value.message


async def test_fund_mint_burn_freeze_seen_through_rpc(
    devnet: tuple[SolanaDevnet, SolanaTraffic, SolanaAdminClient],
) -> None:
    dn, traffic, admin = devnet
    url = dn.url
    someone = str(Keypair().pubkey())
    assert await admin.fund(someone, 5_000_000) == 5_000_000
    assert await admin.fund(someone, 7) == 5_000_007
    bal = await rpc(url, "getBalance", [someone, {"commitment": "processed"}])
    assert bal["result"]["value"] == 5_000_007
    await admin.produce(8)  # now final too
    bal = await rpc(url, "getBalance", [someone, {"commitment": "finalized"}])
    assert bal["result"]["value"] == 5_000_007

    # mint to an owner the chain has never seen: its ATA is created in the same transaction
    owner_key = Keypair().pubkey()
    owner = str(owner_key)
    ata = str(get_associated_token_address(owner_key, traffic.mint))
    big = 2**60 + 3  # above 2**53: exact as a string on the wire
    sig1 = await admin.mint(owner, big)
    sig2 = await admin.mint(owner, 5)
    sig3 = await admin.mint(owner, 5)  # the same call twice is two transactions
    assert len({sig1, sig2, sig3}) == 3
    made = await admin.produce(2)
    tx = await rpc(url, "getTransaction", [sig1, {"commitment": "confirmed"}])
    assert tx["result"]["slot"] == made[0] and tx["result"]["meta"]["err"] is None
    tb = await rpc(url, "getTokenAccountBalance", [ata, {"commitment": "confirmed"}])
    assert tb["result"]["value"]["amount"] == str(big + 10)
    # the indexer's own parser reads the admin mint as one mint event to the ATA (its creation and the
    # compute-budget instruction move no tokens)
    block = dn.ledger.blocks[made[0]]
    events = parse_transaction("s", traffic.mint_address, made[0], block.blockhash, 0, tx["result"]).events
    assert [(e.kind, e.amount, e.to_addr) for e in events] == [("mint", big, ata)]

    holder = str(traffic.owners[1].pubkey())
    holder_ata = str(traffic.atas[1])
    await admin.mint(holder, 1_000)
    await admin.burn(holder, 400)
    await admin.produce(2)
    tb = await rpc(url, "getTokenAccountBalance", [holder_ata, {"commitment": "confirmed"}])
    assert tb["result"]["value"]["amount"] == "600"
    with pytest.raises(SolanaAdminError) as e:
        await admin.burn(owner, 1)  # the devnet does not hold this owner's key
    assert e.value.code == -32602 and "owner" in e.value.message
    with pytest.raises(SolanaAdminError) as e:
        await admin.burn(holder, 10**9)  # more than it holds: preflight refuses, nothing lands
    assert e.value.code == -32002 and e.value.data["logs"]

    def state_byte(reply: dict[str, Any]) -> int:
        return base64.b64decode(reply["result"]["value"]["data"][0])[108]  # AccountState

    await admin.freeze(holder_ata)
    await admin.produce(2)
    info = await rpc(url, "getAccountInfo", [holder_ata, {"commitment": "confirmed", "encoding": "base64"}])
    assert state_byte(info) == 2  # Frozen
    with pytest.raises(SolanaAdminError) as e:
        await admin.burn(holder, 1)  # a frozen account cannot burn
    assert e.value.code == -32002
    await admin.freeze(holder_ata, thaw=True)
    await admin.produce(2)
    info = await rpc(url, "getAccountInfo", [holder_ata, {"commitment": "confirmed", "encoding": "base64"}])
    assert state_byte(info) == 1  # Initialized
    with pytest.raises(SolanaAdminError) as e:
        await admin.freeze(someone)
    assert e.value.code == -32602 and "not a token account" in e.value.message


@pytest.mark.parametrize(
    ("method", "params", "names"),
    [
        ("devnet_produceSlots", {"count": 0}, "count"),
        ("devnet_produceSlots", {}, "missing count"),
        ("devnet_skipSlots", {"count": "two"}, "count"),
        ("devnet_skipSlots", {"count": True}, "count"),
        ("devnet_fork", {"slot": 3, "depth": 1}, "slot or depth"),
        ("devnet_fork", {"slot": -1}, "slot"),
        ("devnet_fork", {"depth": 10_000}, "depth"),
        ("devnet_fork", {"keepTxs": "yes"}, "keepTxs"),
        ("devnet_fund", {"pubkey": "not-a-key", "lamports": 1}, "pubkey"),
        ("devnet_fund", {"pubkey": "11111111111111111111111111111112", "lamports": str(2**64)}, "lamports"),
        ("devnet_mint", {"owner": "11111111111111111111111111111112", "amount": 0}, "amount"),
        ("devnet_mint", {"owner": "11111111111111111111111111111112", "amount": 1, "to": "x"}, "'to'"),
        ("devnet_status", {"verbose": True}, "'verbose'"),
        ("devnet_setProducing", {"enabled": 1}, "enabled"),
        ("devnet_freeze", {}, "missing account"),
    ],
)
async def test_bad_params_are_invalid_params_naming_the_param(
    devnet: tuple[SolanaDevnet, SolanaTraffic, SolanaAdminClient], method: str, params: Any, names: str
) -> None:
    dn, _, _ = devnet
    tip = dn.ledger.tip
    r = await rpc(dn.url, method, params)
    assert r["error"]["code"] == -32602, r
    assert names in r["error"]["message"]
    assert dn.ledger.tip == tip and dn.ledger.fork_epoch == 0  # nothing happened


async def test_params_shapes_and_admin_off() -> None:
    async with SolanaDevnet(admin=True) as dn:
        # an object, a list holding one object, or nothing
        for params in ({"count": 1}, [{"count": 1}]):
            assert "result" in await rpc(dn.url, "devnet_produceSlots", params)
        assert (await rpc(dn.url, "devnet_status", []))["result"]["mint"] is None
        r = await rpc(dn.url, "devnet_produceSlots", [1])
        assert r["error"]["code"] == -32602
        r = await rpc(dn.url, "devnet_mint", {"owner": "11111111111111111111111111111112", "amount": 1})
        assert r["error"]["code"] == -32000 and "holds no mint" in r["error"]["message"]
        r = await rpc(dn.url, "devnet_setProducing", {"enabled": False})
        assert r["error"]["code"] == -32000  # no producer: slots come from devnet_produceSlots
    async with SolanaDevnet() as dn:
        r = await rpc(dn.url, "devnet_status", {})
        assert r["error"]["code"] == -32601
        async with SolanaAdminClient(dn.url) as admin:
            with pytest.raises(SolanaAdminError) as e:
                await admin.skip(1)
            assert e.value.code == -32601
    with pytest.raises(ValueError, match="loopback"):
        SolanaDevnet(host="0.0.0.0", admin=True)
    async with SolanaAdminClient("http://127.0.0.1:9", timeout=5) as admin:
        with pytest.raises(DevnetUnreachable, match=r"127\.0\.0\.1:9"):
            await admin.status()


async def test_devnet_solana_only_process_answers_admin_and_stops_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "indexer",
        "devnet",
        "--solana-only",
        "--solana-port",
        "0",
        "--reorg-every",
        "0",
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        url = None
        async with asyncio.timeout(60):
            while url is None:
                line = (await proc.stderr.readline()).decode()
                assert line, f"the devnet exited early: {''.join(lines)}"
                lines.append(line)
                m = re.match(r"solana devnet\s+(http://127\.0\.0\.1:\d+)\s+admin methods on\s+(\w+)", line)
                if m:
                    url = m.group(1)
        async with SolanaAdminClient(url) as admin:
            status = await admin.status()
            assert status["producing"] is True and status["mint"] and len(status["owners"]) == 12
            # the producer makes slots on its own; pausing it stops them
            assert await admin.set_producing(False) is False
            frozen_tip = (await admin.status())["tip"]
            await asyncio.sleep(1.0)
            assert (await admin.status())["tip"] == frozen_tip
            skipped = await admin.skip(2)
            made = await admin.produce(3)
            assert skipped == [frozen_tip + 1, frozen_tip + 2] and made[0] == frozen_tip + 3
            r = await rpc(url, "getBlock", [skipped[0], {"commitment": "confirmed"}])
            assert r["error"]["code"] == -32007
            assert await admin.set_producing(True) is True
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            rest = (await proc.stderr.read()).decode()
            code = await proc.wait()
        assert code == 0, rest
        assert "solana_devnet_stopped" in rest
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_devnet_process_on_a_busy_port_is_one_error_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "indexer",
            "devnet",
            "--solana-only",
            "--solana-port",
            str(port),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(60):
            _, err = await proc.communicate()
    text = err.decode()
    assert proc.returncode == 1, text
    assert (
        f"Error: the devnet could not start: [Errno 98] error while attempting to bind on address ('127.0.0.1', {port})"
        in text
    )
    assert "Traceback" not in text


def test_devnet_solana_only_excludes_no_solana() -> None:
    from click.testing import CliRunner

    from indexer.cli import main

    result = CliRunner().invoke(main, ["devnet", "--solana-only", "--no-solana"])
    assert result.exit_code == 2
    assert "--solana-only and --no-solana exclude each other" in result.output
