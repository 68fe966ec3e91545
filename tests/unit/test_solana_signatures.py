"""Bad replies on the signature-driven backfill path: a clear error naming what is wrong, never a
silent gap. The RPC is a scripted stand-in (the devnet test covers the good path end to end)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from solders.pubkey import Pubkey
from spl.token import instructions as spl
from spl.token.models import FreezeAccountParams

from indexer.chains.solana import SolanaSource
from indexer.config import SolanaChainConfig
from indexer.errors import DataConsistencyError, MalformedReply
from tests.unit.test_solana_parse import AUTH, IDX, MINT, TOKEN_PROGRAM_ID, A, b58, json_tx

SIG = "5" * 88


class Scripted:
    """`JsonRpc` answering each method from a table (a callable gets the params)."""

    def __init__(self, replies: dict[str, Any]) -> None:
        self.replies = replies

    async def call(self, method: str, params: list[Any]) -> Any:
        r = self.replies[method]
        return r(params) if callable(r) else copy.deepcopy(r)

    def labels(self) -> list[str]:
        return ["scripted"]

    def pinned(self, label: str) -> Scripted:
        return self

    def penalize(self, label: str, reason: str) -> None:
        pass

    def throttled(self) -> bool:
        return False


def freeze_tx(slot: int) -> dict[str, Any]:
    ix = spl.freeze_account(
        FreezeAccountParams(
            program_id=Pubkey.from_string(TOKEN_PROGRAM_ID),
            account=Pubkey.from_string(A),
            mint=Pubkey.from_string(MINT),
            authority=Pubkey.from_string(AUTH),
        )
    )
    raw = {
        "programIdIndex": IDX[TOKEN_PROGRAM_ID],
        "accounts": [IDX[str(m.pubkey)] for m in ix.accounts],
        "data": b58(bytes(ix.data)),
    }
    tx = json_tx([raw], balances=[(A, MINT)])
    tx["transaction"]["signatures"] = [SIG]
    return {**tx, "slot": slot, "blockTime": 100}


def source(**replies: Any) -> SolanaSource:
    base: dict[str, Any] = {
        "getSlot": 50,
        "getSignaturesForAddress": lambda p: (
            [{"signature": SIG, "slot": 10, "err": None}] if p[0] == MINT else []
        ),
        "getTransaction": freeze_tx(10),
        "getBlocks": [10],
        "getBlock": {
            "blockhash": "H" * 43,
            "previousBlockhash": "P" * 43,
            "parentSlot": 9,
            "blockTime": 100,
            "signatures": [SIG],
        },
    }
    cfg = SolanaChainConfig.model_validate(
        {
            "name": "sol",
            "kind": "solana",
            "rpc": ["http://127.0.0.1:1"],
            "mint": MINT,
            "backfill_source": "signatures",
        }
    )
    return SolanaSource(cfg, Scripted({**base, **replies}))  # type: ignore[arg-type]


async def test_good_script_reads_the_freeze() -> None:
    data = await source().fetch_range(10, 20, with_headers=False)
    assert [(c.kind.value, c.subject, c.block_hash) for c in data.controls] == [("frozen", A, "H" * 43)]
    assert data.end_ref.number == 10 and data.follows == (9, "P" * 43)


@pytest.mark.parametrize(
    ("replies", "error", "message"),
    [
        ({"getSignaturesForAddress": [{"signature": SIG}]}, MalformedReply, "lacks signature/slot"),
        ({"getSignaturesForAddress": {"oops": 1}}, MalformedReply, "is not a list"),
        ({"getTransaction": None}, DataConsistencyError, "for a listed signature"),
        ({"getTransaction": freeze_tx(11)}, DataConsistencyError, "getSignaturesForAddress listed 10"),
        (
            {
                "getBlock": {
                    "blockhash": "H" * 43,
                    "previousBlockhash": "P" * 43,
                    "parentSlot": 9,
                    "blockTime": 100,
                    "signatures": ["6" * 88],
                }
            },
            DataConsistencyError,
            "is not in block 10",
        ),
    ],
)
async def test_bad_replies_are_clear_errors(
    replies: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await source(**replies).fetch_range(10, 20, with_headers=False)


async def test_above_the_finalized_slot_reads_blocks() -> None:
    src = source(getSlot=5)  # finalized (and confirmed) slot 5, the range ends at 6: read by blocks
    with pytest.raises(MalformedReply, match=r"getBlocks\(0, 5\)"):  # the block path's listing
        await src.fetch_range(0, 6, with_headers=False)
    assert src.requests["getSignaturesForAddress"] == 0
