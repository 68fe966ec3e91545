"""The attestation package's pure rules (indexer/supply_at.py): the refusal above what is final,
not-indexed chains, frozen balances that cannot be derived, and the CSV / Markdown renderings."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from indexer.store.queries import KnownBlock
from indexer.supply_at import (
    ChainAt,
    FrozenStatus,
    NotFinal,
    check_final,
    csv_rows,
    frozen_status,
    markdown,
    payload,
)
from indexer.supply_classes import classify

T = datetime(2025, 6, 30, tzinfo=UTC)
GEN = datetime(2025, 7, 1, tzinfo=UTC)


def chain(
    name: str = "eth",
    *,
    decimals: int = 18,
    block: int | None = 100,
    final: int | None = 120,
    finalized: int | None = 120,
    status: FrozenStatus = "derived",
    transfers_from: int | None = 0,
    total: int = 10**18,
) -> ChainAt:
    def kb(n: int | None) -> KnownBlock | None:
        return None if n is None else KnownBlock(n, f"0x{n:064x}", T + timedelta(seconds=n - 100))

    classes = None
    if block is not None:
        classes = classify(
            total, [("0xtreasury", "treasury")], {"0xtreasury": total // 4}, {"0xf": 5}, ["treasury"]
        )
    return ChainAt(name, decimals, 0, finalized, kb(final), kb(block), transfers_from, 0, status, classes)


def test_refuses_a_time_above_what_is_final() -> None:
    check_final(T, [chain()])
    check_final(T + timedelta(seconds=20), [chain()])  # exactly the final block's time
    with pytest.raises(NotFinal, match=r"on chain sol: its last final block 120 is at 2025-06-30T00:00:20Z"):
        check_final(T + timedelta(seconds=21), [chain(final=130, finalized=130), chain("sol")])
    with pytest.raises(NotFinal, match=r"block 121 .* is not final yet"):  # same-time block above final
        check_final(T, [chain(block=121)])
    with pytest.raises(NotFinal, match="no final block with a known time"):
        check_final(T, [chain(final=None)])
    check_final(T, [chain(), chain("new", block=None, final=None, finalized=None)])  # never indexed


def test_payload_globals_and_flags() -> None:
    eth = chain()
    sol = chain("sol", decimals=6, total=5 * 10**6, status="coverage_incomplete")
    body = payload("USD1", T, [eth, sol, chain("new", block=None, finalized=None)], "1.2.3", GEN)
    c_eth, c_sol, c_new = body["chains"]
    assert c_eth["block"] == {
        "number": 100,
        "hash": f"0x{100:064x}",
        "time": "2025-06-30T00:00:00Z",
        "final": True,
    }
    assert c_eth["classes"]["frozen"] == {"raw": "5", "amount": "0.000000000000000005"}
    assert c_eth["classes"]["circulating"]["raw"] == str(10**18 - 10**18 // 4 - 5)
    assert c_sol["classes"]["frozen"] is None and c_sol["classes"]["circulating_exact"] is False
    assert "backfill --family controls" in c_sol["classes"]["frozen_note"]
    assert c_new["status"] == "not_indexed" and c_new["reason"] == "the chain has not been indexed yet"
    g = body["global"]
    assert g["decimals"] == 18 and g["chains_counted"] == ["eth", "sol"]
    assert int(g["total"]["raw"]) == 10**18 + 5 * 10**18  # sol scaled to 18 decimals, exactly
    assert g["complete"] is False and g["circulating_exact"] is False
    assert body["provenance"]["indexer_version"] == "1.2.3"
    assert body["provenance"]["generated_at"] == "2025-07-01T00:00:00Z"
    assert body["provenance"]["finalized"]["eth"] == {
        "block": 120,
        "known_block": 120,
        "time": "2025-06-30T00:00:20Z",
    }

    columns, rows = csv_rows(body)
    assert columns[-1] == "non_circulating_treasury" and "as_of_block" in columns
    assert [r["chain"] for r in rows] == ["eth", "sol", "new", "global"]
    assert rows[0]["as_of_block"] == 100 and rows[0]["non_circulating_treasury"] == "0.25"
    assert rows[1]["frozen"] is None and rows[2].get("as_of_block") is None
    assert rows[3]["total"] == "6" and rows[3]["index_complete"] is False

    md = markdown(body)
    assert "| eth | indexed | 100 | 2025-06-30T00:00:00Z | yes | 1 | 0.25 | 0.000000000000000005 |" in md
    assert "unknown (coverage_incomplete)" in md and "NOT complete" in md
    assert "- new: not indexed at this time (the chain has not been indexed yet)" in md


def test_index_complete_and_frozen_status() -> None:
    assert (
        chain().complete and not chain(transfers_from=5).complete and not chain(transfers_from=None).complete
    )
    assert frozen_status(False, None, 0) == "not_decoded"
    assert frozen_status(True, None, 0) == "coverage_incomplete"
    assert frozen_status(True, 10, 5) == "coverage_incomplete"
    assert frozen_status(True, 5, 5) == "derived"


def test_payload_bridges_at_the_time() -> None:
    """With bridges configured, global.bridges gives each one's figures at TIME (README "Bridges");
    a bridge whose chain is not counted at TIME has no gap rather than a wrong one."""
    from indexer.bridges import Bridge, ChainRole, Topology
    from indexer.supply_classes import classify

    def locked(name: str, total: int, lock: int) -> ChainAt:
        c = chain(name, total=total)
        return replace(c, classes=classify(total, [("0xpool", "bridge_lock")], {"0xpool": lock}, {}))

    roles = {"eth": ChainRole("native", "ccip"), "mon": ChainRole("bridged", "ccip")}
    topo = Topology((Bridge("ccip", "1"),), roles)
    eth, mon = locked("eth", 10 * 10**18, 4 * 10**18), chain("mon", decimals=6, total=5 * 10**6)
    g = payload("USD1", T, [eth, mon], "1", GEN, topo)["global"]
    assert g["bridges_deduplicated"] is True
    assert g["bridges"]["ccip"]["gap"] == {"raw": str(5 * 10**18 - 4 * 10**18 - 10**18), "amount": "0"}
    assert int(g["circulating"]["raw"]) == 6 * 10**18 + (5 * 10**18 - 5 * 10**18 // 4 - 5 * 10**12)
    assert "Bridge ccip: minted on mon 5, locked on eth 4, allowance 1, gap 0" in markdown(
        payload("USD1", T, [eth, mon], "1", GEN, topo)
    )
    gone = payload("USD1", T, [eth, chain("mon", block=None)], "1", GEN, topo)["global"]
    assert gone["bridges"]["ccip"]["gap"] is None and gone["bridges"]["ccip"]["locked"] is not None
    assert payload("USD1", T, [eth], "1", GEN)["global"]["bridges"] == {}
