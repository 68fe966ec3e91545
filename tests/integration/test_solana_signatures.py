"""Signature-driven backfill (`backfill_source: signatures`, issue #19 section 3) against the block
path on the same LiteSVM devnet: blocks full of unrelated transactions (SOL transfers, another
mint's traffic), the indexed mint in a share of the slots, with every movement kind, inner
transfers out of a nested token account created mid-history, lookup-table transactions, failed
transactions and control instructions. Both sources index the same chain in one run (two chain
names, one mint); the rows must be identical, and both must equal the devnet's own supply and
balances. The signature path must also cost far fewer requests."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from indexer.chains import solana_signatures
from indexer.config import Config
from indexer.devnet.solana_devnet import SolanaDevnet
from indexer.devnet.solana_traffic import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID, NoiseTraffic, SolanaTraffic
from indexer.runtime import open_runtime
from tests.integration.test_solana_pipeline import mint_supply, token_amount

pytestmark = pytest.mark.integration
SOURCES = ("blocks", "signatures")
EVENT_COLS = "block_number, block_hash, tx_hash, log_index, kind, from_addr, to_addr, amount, block_unix"
CONTROL_COLS = (
    "block_number, block_hash, tx_hash, log_index, kind, event, address, subject, previous, actor, role"
)


@pytest.mark.parametrize("program", [TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID], ids=["token", "token2022"])
async def test_signature_backfill_equals_block_backfill(
    program: object, dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(solana_signatures, "PAGE", 4)  # every address's list spans several pages
    rng = random.Random(7)
    async with SolanaDevnet(finality_depth=8, confirmed_depth=1, seed=21) as dn:
        t = SolanaTraffic(dn.ledger, seed=21, owners=6, program_id=program)  # type: ignore[arg-type]
        noise = NoiseTraffic(dn.ledger, seed=77)
        noise.setup()
        dn.advance(3)  # slots before the mint exists
        t.setup()
        dn.advance(1)
        ops = 0
        for slot in range(120):
            for _ in range(rng.randint(2, 6)):
                noise.step(rng)
            if rng.random() < 0.25:
                t.step(rng)
                ops += 1
            if slot == 40:
                assert t.freeze(1)
            if slot == 70:
                assert t.freeze(1, thaw=True) and t.set_mint_authority(t.new_key("m2"))
            if slot == 90:
                assert t.freeze(2) and t.set_close_authority(3, t.new_key("c"))
            dn.advance(1, skip=rng.random() < 0.1)
        for i in range(len(t.owners)):  # plain transfers between accounts (no mint named)
            if t.balance(t.atas[i]) and i not in t.frozen:
                assert t.transfer(
                    i, (i + 1) % len(t.owners) if (i + 1) % len(t.owners) not in t.frozen else 0, 1
                )
        dn.advance(12)
        fin = dn.ledger.commitment_slot("finalized")
        assert ops >= 15

        chains = [
            {
                "name": f"sol_{s}",
                "kind": "solana",
                "rpc": [dn.url],
                "mint": t.mint_address,
                "decimals": 6,
                "backfill_source": s,
                "poll_interval": "50ms",
            }
            for s in SOURCES
        ]
        cfg = Config.model_validate({"database": {"dsn": dsn}, "data_dir": str(tmp_path), "chains": chains})
        async with open_runtime(cfg) as rt:
            stop = asyncio.Event()
            # Two backfills (half, then the rest): each address's list is extended, not re-read.
            for upto in (fin // 2, fin):
                await asyncio.gather(*(f.run(stop, to_block=upto) for f in rt.followers.values()))
            rows = {}
            for s in SOURCES:
                chain = f"sol_{s}"
                assert rt.statuses[chain].indexed == fin
                events = await rt.pool.fetch(
                    f"SELECT {EVENT_COLS} FROM events WHERE chain = $1 ORDER BY block_number, tx_hash, log_index",
                    chain,
                )
                controls = await rt.pool.fetch(
                    f"SELECT {CONTROL_COLS} FROM control_events WHERE chain = $1 ORDER BY block_number, log_index",
                    chain,
                )
                supply = (await rt.store.supply_at(chain, fin)).supply
                balances = {str(a): await rt.store.balance(chain, str(a), fin) for a in t.atas}
                rows[s] = ([tuple(r) for r in events], [tuple(r) for r in controls], supply, balances)
            blocks, sigs = rows["blocks"], rows["signatures"]
            assert len(blocks[0]) >= 30 and {r[4] for r in blocks[0]} == {"mint", "burn", "transfer"}
            assert {r[4] for r in blocks[1]} >= {
                "mint_authority_changed",
                "frozen",
                "unfrozen",
                "authority_changed",
            }
            assert sigs[0] == blocks[0]
            assert sigs[1] == blocks[1]
            assert sigs[2] == blocks[2] == mint_supply(dn, t.mint, "finalized")
            assert sigs[3] == blocks[3] == {str(a): token_amount(dn, a, "finalized") for a in t.atas}

            used = {s: rt.sources[f"sol_{s}"].requests for s in SOURCES}  # type: ignore[attr-defined]
            # The block path reads every block; the signature path only the mint's transactions
            # and one signatures-only block per slot with events.
            assert used["blocks"]["getBlock"] >= len(dn.ledger.block_slots(0, fin)) - 1
            assert used["signatures"]["getSignaturesForAddress"] >= 2 * (len(t.atas) + 1)  # paged
            assert used["signatures"]["getBlock"] < used["blocks"]["getBlock"] / 2
