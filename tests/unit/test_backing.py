"""PURE: reserves against circulating supply at as_of and now (indexer.backing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from indexer import backing as bk
from indexer.reserves import backing_json
from indexer.store.queries import KnownBlock
from indexer.supply_at import ChainAt
from indexer.supply_classes import classify

AS_OF = datetime(2025, 5, 31, 23, 59, 59, tzinfo=UTC)


def chain(
    name: str, decimals: int, total: int, lock: int, *, number: int = 10, transfers_from: int | None = 0
) -> ChainAt:
    classes = classify(total, [("0xpool", "bridge_lock")], {"0xpool": lock}, {})
    block = KnownBlock(number, "0x" + f"{number:x}".rjust(64, "0"), AS_OF - timedelta(seconds=7))
    return ChainAt(name, decimals, 0, 100, block, block, transfers_from, 0, "derived", classes)


def test_at_as_of_sums_circulating_in_the_largest_precision() -> None:
    eth = chain("ethereum", 18, 5 * 10**18 + 1, 2 * 10**18)
    sol = chain("solana", 6, 3_000_001, 0, number=77)
    at = bk.at_as_of(AS_OF, [eth, sol])
    assert at.reason is None and at.exact
    assert at.circulating == bk.TotalSupply(3 * 10**18 + 1 + 3_000_001 * 10**12, 18)
    assert {c: b.number for c, b in at.blocks.items()} == {"ethereum": 10, "solana": 77}


def test_at_as_of_unavailable_reasons() -> None:
    eth = chain("ethereum", 18, 10**18, 0)
    before = ChainAt("base", 18, 5, 100, eth.final, None, 5, 5, "derived")
    never = ChainAt("bsc", 18, 0, None, None, None, None, None, "derived")
    partial = chain("arb", 18, 10**18, 0, transfers_from=3)
    cases = {
        "as_of is before the index of chain base": before,
        "chain bsc has not been indexed yet": never,
        "transfer history of chain arb does not reach its start block 0": partial,
    }
    for fragment, other in cases.items():
        at = bk.at_as_of(AS_OF, [eth, other])
        assert at.circulating is None and at.reason is not None and fragment in at.reason, at.reason
        b = bk.Backing(Decimal("5"), at, bk.TotalSupply(10**18, 18))
        assert b.ratio_at_as_of is None and b.drift is None and b.coverage == 5
    assert bk.at_as_of(AS_OF, []).reason == "no chain is configured"


def test_ratio_coverage_and_drift_exact() -> None:
    at = bk.at_as_of(AS_OF, [chain("ethereum", 18, 4 * 10**18, 0), chain("solana", 6, 1, 0)])
    now = bk.TotalSupply(5 * 10**18 - 3, 18)
    b = bk.Backing(Decimal("4.5"), at, now)
    then = 4 * 10**18 + 10**12
    assert b.ratio_at_as_of == Fraction(45, 10) * Fraction(10**18, then)
    assert b.coverage == Fraction(45, 10) * Fraction(10**18, 5 * 10**18 - 3)
    assert b.drift == bk.TotalSupply(5 * 10**18 - 3 - then, 18)
    # drift in the larger precision, negative after net burns
    assert bk.drift(bk.TotalSupply(1, 6), bk.TotalSupply(2 * 10**12, 18)) == bk.TotalSupply(-(10**12), 18)
    assert bk.ratio(Decimal(1), bk.TotalSupply(0, 18)) is None

    body = backing_json(b)
    assert body["at_as_of"]["circulating"] == {
        "raw": str(then),
        "amount": "4.000001",
        "decimals": 18,
    }
    assert body["at_as_of"]["ratio"] == "1.124999718750"
    assert body["at_as_of"]["blocks"]["solana"]["time"] == "2025-05-31T23:59:52Z"
    assert body["now"]["coverage"] == "0.900000000000"
    assert body["drift"]["amount"] == "0.999998999999999997"
    assert backing_json(None) == {"at_as_of": None, "now": None, "drift": None}
