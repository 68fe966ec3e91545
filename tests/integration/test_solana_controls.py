"""Solana control instructions through the whole path (issue #14 sections 3 and 4): the LiteSVM
devnet runs the real SPL Token / Token-2022 programs; the daemon indexes SetAuthority (mint, freeze
and a token account's close authority), InitializeMint2, FreezeAccount / ThawAccount and Token-2022
Pause / Resume, folds the mint's state, checks it against the mint account at the finalized
commitment, exports it and serves it. Ground truth: the operations the test performed (each one
checked to have landed) and the devnet's own accounts."""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from solders.account import Account
from solders.pubkey import Pubkey

from indexer.config import Config
from indexer.controls import decode_mint_account
from indexer.devnet.solana_devnet import SolanaDevnet
from indexer.devnet.solana_traffic import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID, SolanaTraffic
from tests.integration.test_solana_pipeline import token_amount, until
from tests.support import daemon_run

pytestmark = pytest.mark.integration
CHAIN = "sol"


class Running(daemon_run.Running):
    async def controls(self) -> dict[str, Any]:
        body = await self.get("/api/v1/controls")
        (c,) = body["chains"]
        return c  # type: ignore[no-any-return]


def running(cfg: Config) -> contextlib.AbstractAsyncContextManager[Running]:
    return daemon_run.running(cfg, CHAIN, Running)


def config(dn: SolanaDevnet, mint: str, dsn: str, tmp: Path) -> Config:
    return Config.model_validate(
        {
            "database": {"dsn": dsn},
            "data_dir": str(tmp),
            "chains": [
                {
                    "name": CHAIN,
                    "kind": "solana",
                    "rpc": [dn.url],
                    "mint": mint,
                    "decimals": 6,
                    "finality": {"commitment": "finalized"},
                    "poll_interval": "50ms",
                    "control_check_interval": "50ms",
                }
            ],
        }
    )


async def settle(run: Running, dn: SolanaDevnet) -> int:
    """Finalize everything sent so far; wait for the index and a control check at that slot."""
    dn.advance(dn.ledger.finality_depth + 2)
    fin = dn.ledger.commitment_slot("finalized")
    st = run.rt.statuses[CHAIN]
    await until(lambda: st.indexed_finalized >= fin, 20, "finalization")
    await until(
        lambda: st.control_check is not None and st.control_check["block"] >= fin, 20, "a control check"
    )
    return fin


@pytest.mark.parametrize("program", [TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID], ids=["token", "token2022"])
async def test_solana_authorities_freeze_thaw_pause_through_a_fork(
    program: Pubkey, dsn: str, tmp_path: Path
) -> None:
    pausable = program == TOKEN_2022_PROGRAM_ID
    async with SolanaDevnet(finality_depth=6, confirmed_depth=1, seed=11) as dn:
        t = SolanaTraffic(dn.ledger, seed=11, owners=4, program_id=program, pausable=pausable)
        t.setup()
        dn.advance(1)
        want: Counter[str] = Counter(mint_authority_changed=1, freeze_authority_changed=1)  # InitializeMint2
        if pausable:
            want["authority_changed"] += 1  # InitializePausableConfig
        async with running(config(dn, t.mint_address, dsn, tmp_path)) as run:
            for i in range(4):
                assert t.mint_to(i, (i + 1) * 10**6)
            dn.advance(1)
            assert t.freeze(0)
            assert not t.transfer(0, 1, 1), "a frozen account moved tokens"
            dn.advance(1)
            new_mint_auth, new_freeze_auth = t.new_key("mint"), t.new_key("freeze")
            assert t.set_mint_authority(new_mint_auth) and t.mint_to(1, 5 * 10**6)
            assert t.set_freeze_authority(new_freeze_auth)
            assert t.freeze(1) and t.freeze(0, thaw=True)
            assert t.set_close_authority(2, new_mint_auth)
            want.update(mint_authority_changed=1, freeze_authority_changed=1, frozen=2, unfrozen=1)
            want["authority_changed"] += 1
            if pausable:
                assert t.pause() and not t.transfer(2, 3, 1), "a paused mint moved tokens"
                assert t.pause(resume=True)
                want.update(paused=1, unpaused=1)
            dn.advance(1)
            fin = await settle(run, dn)

            # State at head and finalized, from the events, as the chain has it.
            mint = decode_mint_account(bytes(dn.ledger.account(t.mint, "finalized").data))  # type: ignore[union-attr]
            assert mint.mint_authority == str(new_mint_auth.pubkey())
            c = await run.controls()
            assert c["enabled"] and c["coverage"] == {"from_block": 0, "complete": True}
            assert c["contracts"] == [
                {"address": t.mint_address, "label": "token", "families": ["spl_authorities"]}
            ]
            for state in (c["head"], c["finalized"]):
                assert state["mint_authority"] == mint.mint_authority
                assert state["freeze_authority"] == mint.freeze_authority == str(new_freeze_auth.pubkey())
                assert state["paused"] is False
                assert [a["address"] for a in state["frozen"]["accounts"]] == [str(t.atas[1])]
                assert int(state["frozen"]["raw"]) == token_amount(dn, t.atas[1], "finalized") == 7 * 10**6
            check = c["check"]
            assert check["block"] >= fin and check["mismatches"] == {}
            assert set(check["checked"]) == {"mint_authority", "freeze_authority", "paused", "frozen"}
            events = (await run.get("/api/v1/control-events", chain=CHAIN, limit="1000"))["events"]
            assert Counter(e["kind"] for e in events) == want
            of_b = await run.get("/api/v1/control-events", chain=CHAIN, address=str(t.atas[1]))
            assert [e["kind"] for e in of_b["events"]] == ["frozen"]
            by_kind = await run.get("/api/v1/control-events", chain=CHAIN, kind="unfrozen")
            assert [e["subject"] for e in by_kind["events"]] == [str(t.atas[0])]
            close = next(e for e in events if e["role"] == "closeAccount")
            assert close["address"] == str(t.atas[2]) and close["subject"] == str(new_mint_auth.pubkey())
            for kind, n in want.items():
                assert run.metric("usd1_control_events_total", kind=kind) == n, kind
                assert run.metric("usd1_control_head_events", kind=kind) == n, kind
            assert run.metric("usd1_frozen_accounts") == 1 and run.metric("usd1_frozen_tokens") == 7.0
            assert run.metric("usd1_paused") == 0
            info = {"owner": mint.mint_authority, "admin": mint.freeze_authority, "implementation": "none"}
            assert run.metric("usd1_control_info", **info) == 1
            for field in ("mint_authority", "freeze_authority", "paused", "frozen"):
                assert run.metric("usd1_control_mismatch", field=field) == 0, field
            async with run.http.get(run.base + "/") as r:  # the page's "Contract controls" card
                page = await r.text()
            assert f'<td class="mint-authority addr">{mint.mint_authority}</td>' in page
            assert f'<td class="freeze-authority addr">{mint.freeze_authority}</td>' in page

            # Above finality: a freeze (and a pause), indexed at head, then orphaned by a fork.
            assert t.freeze(2)
            if pausable:
                assert t.pause()
            dn.advance(2)
            st = run.rt.statuses[CHAIN]
            tip = dn.ledger.commitment_slot("confirmed")
            await until(lambda: st.indexed >= tip, 20, "the head")
            await until(lambda: run.metric("usd1_frozen_accounts") == 2, 10, "the head freeze")
            head = (await run.controls())["head"]
            assert sorted(a["address"] for a in head["frozen"]["accounts"]) == sorted(
                [str(t.atas[1]), str(t.atas[2])]
            )
            assert head["paused"] is pausable and run.metric("usd1_paused") == (1 if pausable else 0)
            assert run.metric("usd1_control_head_events", kind="frozen") == 3
            assert run.metric("usd1_control_events_total", kind="frozen") == 2  # not final

            assert dn.fork(), "nothing was dropped"  # everything above finalized, the freeze too
            t.frozen.discard(2)
            dn.advance(3)
            await until(lambda: run.metric("usd1_frozen_accounts") == 1, 20, "the fork to orphan the freeze")
            await settle(run, dn)
            c = await run.controls()
            for state in (c["head"], c["finalized"]):
                assert [a["address"] for a in state["frozen"]["accounts"]] == [str(t.atas[1])]
                assert state["paused"] is False
            assert c["check"]["mismatches"] == {}
            events = (await run.get("/api/v1/control-events", chain=CHAIN, limit="1000"))["events"]
            assert Counter(e["kind"] for e in events) == want
            assert str(t.atas[2]) not in {e["subject"] for e in events if e["kind"] == "frozen"}
            assert run.metric("usd1_control_head_events", kind="frozen") == 2
            assert run.metric("usd1_control_events_total", kind="frozen") == 2
            assert run.metric("usd1_paused") == 0
            reorgs = (await run.get("/api/v1/reorgs", chain=CHAIN))["reorgs"]
            assert reorgs and reorgs[0]["orphaned"]["controls"] == (2 if pausable else 1)

            # The chain changes behind the index's back (no instruction): the check says so.
            acct = dn.ledger.account(t.mint, "processed")
            assert acct is not None
            data = bytearray(bytes(acct.data))
            data[50:82] = bytes(t.new_key("rogue").pubkey())  # the freeze authority's key
            dn.ledger.set_account(t.mint, Account(acct.lamports, bytes(data), acct.owner, acct.executable))
            await settle(run, dn)
            await until(
                lambda: run.metric("usd1_control_mismatch", field="freeze_authority") == 1, 10, "mismatch"
            )
            assert run.metric("usd1_control_mismatch", field="mint_authority") == 0
            assert "freeze_authority" in (await run.controls())["check"]["mismatches"]
