"""The proof-of-reserve feed's pure core (indexer.oracle): ABI replies of `latestRoundData()` and
`decimals()` decoded exactly, every refused anomaly named, the comparisons exact, and the config
(`reserves.oracle`) validated with the key named. Encodings come from eth_abi (the reference
encoder), not from the decoder under test."""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction

import pytest
from eth_abi import encode

from indexer.config import load_config_text
from indexer.errors import ConfigError
from indexer.oracle import (
    DECIMALS,
    LATEST_ROUND_DATA,
    OracleError,
    Reading,
    Round,
    check_round,
    decode_decimals,
    decode_round,
    ratio,
    supply_tokens,
)
from indexer.reserves import TotalSupply

TYPES = ["uint80", "int256", "uint256", "uint256", "uint80"]
NOW = 1_764_806_400  # 2025-12-04T00:00:00Z


def reply(*values: int) -> str:
    return "0x" + encode(TYPES, list(values)).hex()


def test_selectors_are_the_aggregator_v3_ones() -> None:
    from eth_utils import keccak

    assert LATEST_ROUND_DATA == "0x" + keccak(text="latestRoundData()")[:4].hex()
    assert DECIMALS == "0x" + keccak(text="decimals()")[:4].hex()


def test_round_decodes_exactly_even_for_huge_answers() -> None:
    big = 2**255 - 1  # int256 max: far beyond a float or a 28-digit Decimal context
    rid = (1 << 64) + 7  # a phase-aggregated round id (phase 1, round 7)
    r = decode_round(reply(rid, big, NOW - 10, NOW - 5, rid))
    assert r == Round(rid, big, NOW - 10, NOW - 5, rid)
    reading = Reading(r, 18, 123, float(NOW))
    assert reading.value == Fraction(big, 10**18)
    whole, frac = divmod(big, 10**18)
    assert reading.answer == f"{whole}.{frac:018d}".rstrip("0")


def test_answer_string_is_exact_decimal() -> None:
    r = Reading(Round(1, 2_150_000_000_12345678, 0, NOW, 1), 8, None, float(NOW))
    assert r.answer == "2150000000.12345678"
    assert Decimal(r.answer) * 10**8 == 2_150_000_000_12345678


def test_negative_answer_decodes_then_is_refused() -> None:
    r = decode_round(reply(3, -1, NOW, NOW, 3))
    assert r.answer == -1
    with pytest.raises(OracleError, match="answer -1 is not positive"):
        check_round(r, NOW)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("0x", "returned 0 bytes, expected 160 (no contract at the address?)"),
        ("0x" + "00" * 128, "returned 128 bytes, expected 160"),
        ("0x" + "00" * 192, "returned 192 bytes, expected 160"),
        ("0xzz", "not hex data"),
        ("deadbeef", "not hex data"),
        # a uint80 word with bits above 80 set: not a valid ABI encoding of the interface
        ("0x" + "ff" * 32 + "00" * 128, "does not decode"),
    ],
)
def test_bad_round_replies_are_named(data: str, message: str) -> None:
    with pytest.raises(OracleError, match=re.escape(message)):
        decode_round(data)


def test_decimals() -> None:
    assert decode_decimals("0x" + encode(["uint8"], [8]).hex()) == 8
    with pytest.raises(OracleError, match="decimals\\(\\) returned 0 bytes"):
        decode_decimals("0x")
    with pytest.raises(OracleError, match="does not decode"):
        decode_decimals("0x" + encode(["uint256"], [256]).hex())
    with pytest.raises(OracleError, match="decimals\\(\\) is 40, more than 36"):
        decode_decimals("0x" + encode(["uint8"], [40]).hex())


@pytest.mark.parametrize(
    ("r", "message"),
    [
        (Round(5, 0, NOW, NOW, 5), "round 5: answer 0 is not positive"),
        (Round(5, 10, NOW, 0, 5), "round 5: updatedAt is 0"),
        (Round(5, 10, NOW, NOW + 3600, 5), "is in the future"),
        (Round(5, 10, NOW, NOW, 4), "answeredInRound 4 < roundId"),
    ],
)
def test_anomalies_are_refused(r: Round, message: str) -> None:
    with pytest.raises(OracleError, match=message):
        check_round(r, NOW)


def test_valid_and_old_rounds_pass_the_checks() -> None:
    check_round(Round(5, 10, NOW, NOW, 5), NOW)
    check_round(Round(5, 10, NOW, NOW + 60, 5), NOW)  # within the clock slack
    check_round(Round(5, 10, 0, 1, 6), NOW)  # ancient, answered later: stale, not invalid


def test_comparisons_are_exact() -> None:
    value = Fraction(2_200_000_000_00000001, 10**8)
    assert ratio(value, Decimal("2200000000.25")) == value / Fraction("2200000000.25")
    assert ratio(value, None) is None and ratio(value, Decimal(0)) is None
    supply = TotalSupply(2_200_000_000 * 10**18 - 1, 18)
    tokens = supply_tokens(supply)
    assert tokens == Fraction(2_200_000_000 * 10**18 - 1, 10**18)
    assert ratio(value, tokens) == value * Fraction(10**18, 2_200_000_000 * 10**18 - 1)


BASE = """
chains:
  - {name: ethereum, kind: evm, rpc: ["http://127.0.0.1:8545"], token: "0x8d0D000Ee44948FC98c9B98A4FA4921476f08B0d"}
  - {name: solana, kind: solana, rpc: ["http://127.0.0.1:8899"], mint: "USD1ttGY1N17NEEHLmELoaybftRBUSErhqYiQzvEmuB"}
reserves:
  url: "file://reserves.json"
"""


def test_config_defaults_and_address_lowercased() -> None:
    cfg = load_config_text(BASE + '  oracle: {chain: ethereum, address: "0x' + "AB" * 20 + '"}\n')
    assert cfg.reserves is not None and cfg.reserves.oracle is not None
    o = cfg.reserves.oracle
    assert (o.chain, o.address, o.interval, o.max_age) == ("ethereum", "0x" + "ab" * 20, 60.0, 26 * 3600.0)
    cfg = load_config_text(
        BASE + '  oracle: {chain: ethereum, address: "0x' + "ab" * 20 + '", interval: 5m, max_age: 2d}\n'
    )
    assert cfg.reserves is not None and cfg.reserves.oracle is not None
    assert (cfg.reserves.oracle.interval, cfg.reserves.oracle.max_age) == (300.0, 172800.0)


@pytest.mark.parametrize(
    ("oracle", "message"),
    [
        (
            '{chain: polygon, address: "0x' + "ab" * 20 + '"}',
            "reserves.oracle.chain: 'polygon' is not a configured chain",
        ),
        (
            '{chain: solana, address: "0x' + "ab" * 20 + '"}',
            "reserves.oracle.chain: 'solana' is a Solana chain",
        ),
        ("{chain: ethereum, address: 0x1234}", "reserves.oracle.address:"),
        (
            '{chain: ethereum, address: "nope"}',
            "reserves.oracle.address: invalid feed address 'nope'",
        ),
        ('{chain: ethereum, address: "0x' + "ab" * 20 + '", max_age: -1s}', "reserves.oracle.max_age:"),
        ('{chain: ethereum, address: "0x' + "ab" * 20 + '", surprise: 1}', "reserves.oracle.surprise:"),
        ("{chain: ethereum}", "reserves.oracle.address:"),
    ],
)
def test_config_errors_name_the_key(oracle: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(BASE + f"  oracle: {oracle}\n")
    assert any(message in p for p in info.value.problems), info.value.problems


class FailingReader:
    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)

    async def read(self, address: str, calls: Sequence[str]) -> tuple[int | None, list[str]]:
        raise self.errors.pop(0)


class Log:
    def __init__(self) -> None:
        self.events: list[str] = []

    def warning(self, event: str, **kw: object) -> None:
        self.events.append(event)

    def info(self, event: str, **kw: object) -> None:
        self.events.append(event)


async def test_rpc_and_finality_failures_set_up_0_and_log_once() -> None:
    from indexer.config import OracleConfig
    from indexer.errors import FinalityViolation, RpcError
    from indexer.metrics import Metrics
    from indexer.oracle import OracleService

    metrics, log = Metrics(), Log()
    reader = FailingReader(RpcError("all endpoints failed"), FinalityViolation("ethereum", 9, 9))
    svc = OracleService(
        OracleConfig(chain="ethereum", address="0x" + "ab" * 20),
        metrics,
        reader,
        lambda: Decimal(1),
        lambda: None,
        logger=log,
        clock=lambda: float(NOW),
    )
    assert not await svc.refresh()
    assert not await svc.refresh()
    snap = svc.snapshot()
    assert not snap.up and snap.reading is None and snap.vs_attestation is None and snap.coverage is None
    assert (
        snap.last_error == "FinalityViolation: ethereum: reorg reaches block 9 at or below finalized height 9"
    )
    assert log.events == ["reserves_oracle_down"]
    assert metrics.registry.get_sample_value("usd1_reserves_oracle_up") == 0
    usd = metrics.registry.get_sample_value("usd1_reserves_oracle_usd")
    assert usd is not None and usd != usd  # NaN: never read
