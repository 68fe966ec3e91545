"""Attestation schema version 2 (custodian per line, maturity, ISIN/CUSIP, market value and
notional), version 1 still accepted; exact custodian concentration; clear errors."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.attestation import (
    AttestationV1,
    AttestationV2,
    ReservesError,
    bucket_of_days,
    parse_attestation,
)

CONFIG = Path(__file__).resolve().parents[2] / "config"
V1 = CONFIG / "reserves.example.json"
V2 = CONFIG / "reserves.v2.example.json"


def v2(**over: Any) -> dict[str, Any]:
    """The v2 example with keys replaced (replaced assets drop the example's total_usd)."""
    d: dict[str, Any] = json.loads(V2.read_text())
    if "assets" in over:
        del d["total_usd"]
    d.update(over)
    return d


def line(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"category": "cash", "custodian": "A", "market_value_usd": "10"}
    d.update(over)
    return d


def test_v2_example_is_exact() -> None:
    att = parse_attestation(V2.read_bytes(), str(V2))
    assert isinstance(att, AttestationV2)
    assert att.reserves_usd == Decimal("2180450000.25")
    assert att.by_custodian() == {
        "Example Trust Company": Decimal("1585550000.00"),
        "Example Bank N.A.": Decimal("519900000.25"),
        "Example Fund Custody LLC": Decimal("75000000.00"),
    }
    assert att.custodian_concentration() == Fraction(158555000000, 218045000025)
    assert att.by_category()["us_treasury_bills"] == Decimal("1830450000.00")
    first = att.assets[0]
    assert first.notional_usd == Decimal("1000000000.00") and first.isin == "US912797KJ59"
    assert [a.maturity for a in att.assets] == ["8-30d", "31-90d", "91-180d", "overnight", None, None]


def test_v1_still_accepted_without_concentration() -> None:
    att = parse_attestation(V1.read_bytes())
    assert isinstance(att, AttestationV1)
    assert att.reserves_usd == Decimal("2200000000.25")
    assert att.by_custodian() is None and att.custodian_concentration() is None
    # "version" may be omitted in v1 documents
    d = json.loads(V1.read_text())
    del d["version"]
    assert isinstance(parse_attestation(json.dumps(d)), AttestationV1)


def test_single_custodian_is_fully_concentrated_and_numbers_are_exact() -> None:
    d = v2(assets=[line(market_value_usd=0.1), line(market_value_usd=0.2)], total_usd=0.3)
    att = parse_attestation(json.dumps(d))
    assert att.reserves_usd == Decimal("0.3") and att.custodian_concentration() == 1
    zero = parse_attestation(json.dumps(v2(assets=[line(market_value_usd="0")], total_usd="0")))
    assert zero.custodian_concentration() is None


@pytest.mark.parametrize(
    ("days", "bucket"),
    [
        (0, "overnight"),
        (1, "overnight"),
        (2, "1-7d"),
        (30, "8-30d"),
        (31, "31-90d"),
        (365, "181-365d"),
        (366, "1-2y"),
        (731, "over_2y"),
    ],
)
def test_bucket_of_days(days: int, bucket: str) -> None:
    assert bucket_of_days(days) == bucket


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        (v2(assets=[{"category": "cash", "market_value_usd": "1"}]), "assets.0.custodian: Field required"),
        (v2(assets=[line(custodian="")]), "assets.0.custodian: String should have at least 1 character"),
        (v2(assets=[{"category": "cash", "custodian": "A"}]), "assets.0.market_value_usd: Field required"),
        (v2(assets=[line(amount_usd="1")]), "assets.0.amount_usd: unknown key"),
        (v2(assets=[line(market_value_usd=True)]), "assets.0.market_value_usd: amount must be a decimal"),
        (
            v2(assets=[line(notional_usd="-1")]),
            "assets.0.notional_usd: amount must be a finite, non-negative",
        ),
        (
            v2(assets=[line(maturity_days=-1)]),
            "assets.0.maturity_days: Input should be greater than or equal to 0",
        ),
        (v2(assets=[line(maturity_days="30")]), "assets.0.maturity_days: Input should be a valid integer"),
        (v2(assets=[line(maturity_bucket="2-3w")]), "assets.0.maturity_bucket: Input should be 'overnight'"),
        (
            v2(assets=[line(maturity_days=3, maturity_bucket="1-7d")]),
            "give maturity_days or maturity_bucket, not both",
        ),
        (v2(assets=[line(isin="US912797KJ58")]), "assets.0.isin: invalid ISIN 'US912797KJ58'"),
        (v2(assets=[line(cusip="912797KJ4")]), "assets.0.cusip: invalid CUSIP '912797KJ4'"),
        (v2(assets=[line(isin="US912797KJ59", cusip="912797LB1")]), "does not contain cusip 912797LB1"),
        (v2(total_usd="1"), "total_usd 1 does not equal the sum of assets 2180450000.25"),
        (v2(version=3), "version: unsupported schema version 3 (supported: 1, 2)"),
        (v2(version="2"), "version: unsupported schema version '2'"),
        (v2(version=True), "version: unsupported schema version True"),
    ],
)
def test_v2_errors_name_the_field(doc: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ReservesError) as info:
        parse_attestation(json.dumps(doc), "file://r.json")
    assert any(fragment in p for p in info.value.problems), info.value.problems


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
_line = st.fixed_dictionaries(
    {},
    optional={
        "category": st.sampled_from(["cash", "us_treasury_bills", "Bad"]) | _json,
        "custodian": st.sampled_from(["A", "B", ""]) | _json,
        "market_value_usd": st.sampled_from(["1", "-1", "x", "1e400"]) | _json,
        "notional_usd": _json,
        "maturity_days": st.integers(-5, 40000) | _json,
        "maturity_bucket": st.sampled_from(["overnight", "2-3w"]) | _json,
        "isin": st.sampled_from(["US912797KJ59", "US912797KJ58"]) | _json,
        "cusip": st.sampled_from(["912797KJ5", "912797KJ4"]) | _json,
    },
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {"version": st.sampled_from([1, 2, 3, "2"]) | _json, "assets": st.lists(_line, max_size=3) | _json},
        optional={"as_of": st.sampled_from(["2025-06-30T00:00:00Z", "2025"]) | _json, "attestor": _json},
    )
)
def test_any_document_parses_or_names_its_problems(doc: dict[str, Any]) -> None:
    """Hostile documents: an Attestation or a ReservesError with `path: message` lines, nothing else."""
    try:
        att = parse_attestation(json.dumps(doc))
    except ReservesError as exc:
        assert exc.problems and all(": " in p for p in exc.problems)
    else:
        assert att.reserves_usd >= 0
        conc = att.custodian_concentration()
        assert conc is None or 0 < conc <= 1
