"""The logs-bloom check against real mainnet headers and logs (tests/fixtures, see its README)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer.chains.bloom import (
    bloom_bits,
    bloom_of,
    bloom_text,
    contains_hex,
    emitter_in_bloom,
    log_in_bloom,
    may_contain_event,
    parse_bloom,
    transfer_in_bloom_text,
)
from indexer.chains.evm_decode import TRANSFER_TOPIC
from indexer.errors import MalformedReply

FIX = Path(__file__).resolve().parents[1] / "fixtures"
USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
USDT = "0xdac17f958d2ee523a2206206994597c13d831ec7"
USD1 = "0x8d0d000ee44948fc98c9b98a4fa4921476f08b0d"


def _lines(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIX / name).read_text().splitlines() if line.strip()]


def _result(name: str) -> Any:
    return json.loads((FIX / name).read_text())[0]["response"]["result"]


ETL_BLOCKS = _lines("blocks_17173049_17173050__expected_blocks.json")
ETL_LOGS = _lines("blocks_17173049_17173050__expected_logs.json")
HEADER_16M = _result("eth_getBlockByNumber__test_02.json")
HEADER_16M1 = _result("eth_getBlockByNumber__test_04.json")
TRANSFERS_16M = _result("eth_getLogs__test_04__transfers_blocks_16000000-16000003.json")


@pytest.mark.parametrize("block", ETL_BLOCKS, ids=lambda b: str(b["number"]))
def test_bloom_of_every_log_equals_the_header_bloom(block: dict[str, Any]) -> None:
    """ethereum-etl's complete log set of a mainnet block rebuilds its logsBloom bit for bit."""
    logs = [lg for lg in ETL_LOGS if lg["block_number"] == block["number"]]
    assert len(logs) > 200
    assert bloom_of(logs) == parse_bloom(block["logs_bloom"])
    # One log less is (for these blocks) a different bloom: the check sees missing logs.
    assert bloom_of(logs[1:]) != parse_bloom(block["logs_bloom"]) or bloom_of(logs[:-1]) != parse_bloom(
        block["logs_bloom"]
    )


@pytest.mark.parametrize("header", [HEADER_16M, HEADER_16M1], ids=["16000000", "16000001"])
def test_every_transfer_log_is_in_its_block_bloom(header: dict[str, Any]) -> None:
    bloom = parse_bloom(header["logsBloom"])
    own = [lg for lg in TRANSFERS_16M if lg["blockNumber"] == header["number"]]
    assert len(own) > 50
    assert all(lg["blockHash"] == header["hash"] for lg in own)
    assert all(log_in_bloom(bloom, lg) for lg in own)
    # Tokens with transfers in the block may hold a Transfer log (no false negatives).
    for token in {lg["address"] for lg in own}:
        assert may_contain_event(bloom, token, TRANSFER_TOPIC)


def test_logs_of_other_blocks_are_mostly_rejected() -> None:
    """Negative: logs that are not in block 16,000,000 fail its bloom (a few pass: false
    positives and addresses/topics that also occur in that block)."""
    bloom = parse_bloom(HEADER_16M["logsBloom"])
    own_items = {lg["address"] for lg in TRANSFERS_16M if lg["blockNumber"] == HEADER_16M["number"]}
    others = [lg for lg in TRANSFERS_16M if lg["blockNumber"] != HEADER_16M["number"]]
    foreign = [lg for lg in others if lg["address"] not in own_items]
    rejected = [lg for lg in foreign if not log_in_bloom(bloom, lg)]
    assert len(rejected) >= 0.8 * len(foreign) > 20


def test_altered_log_fails_the_bloom() -> None:
    """A Transfer whose recipient or emitter was changed by a lying endpoint is caught."""
    bloom = parse_bloom(HEADER_16M["logsBloom"])
    lg = next(lg for lg in TRANSFERS_16M if lg["blockNumber"] == HEADER_16M["number"])
    assert log_in_bloom(bloom, lg)
    rejected = 0
    for n in range(1, 21):
        forged_to = "0x" + "0" * 24 + f"{n:040x}"
        forged = {**lg, "topics": [*lg["topics"][:2], forged_to]}
        rejected += not log_in_bloom(bloom, forged)
    assert rejected >= 15  # the bloom is ~41 % full: a forged topic passes with p ~ 0.07
    assert not contains_hex(bloom, USD1)  # no USD1 on mainnet in 2022


def test_usdc_usdt_in_blooms() -> None:
    for header in (HEADER_16M, HEADER_16M1):
        bloom = parse_bloom(header["logsBloom"])
        assert may_contain_event(bloom, USDC, TRANSFER_TOPIC)
        assert may_contain_event(bloom, USDT, TRANSFER_TOPIC)


def test_empty_bloom_and_bits() -> None:
    assert bloom_of([]) == 0
    assert not contains_hex(0, USDC)
    assert bin(bloom_bits(b"\x00" * 20)).count("1") in (1, 2, 3)
    full = (1 << 2048) - 1
    assert contains_hex(full, USDC)


@pytest.mark.parametrize(
    "bad", [None, 1, "0x", "0x" + "0" * 511, "0x" + "g" * 512, "0X" + "0" * 512, "0x" + "0" * 514]
)
def test_malformed_bloom(bad: Any) -> None:
    with pytest.raises(MalformedReply):
        parse_bloom(bad)


def test_malformed_log_items() -> None:
    with pytest.raises(MalformedReply):
        log_in_bloom(0, {"address": "0x123", "topics": []})
    with pytest.raises(MalformedReply):
        log_in_bloom((1 << 2048) - 1, {"address": USDC, "topics": "nope"})


@given(st.lists(st.binary(min_size=0, max_size=40), max_size=30))
def test_every_added_item_is_contained(items: list[bytes]) -> None:
    addrs = ["0x" + i.hex() for i in items]
    bloom = bloom_of([{"address": a, "topics": []} for a in addrs])
    assert all(contains_hex(bloom, a) for a in addrs)
    assert bin(bloom).count("1") <= 3 * len(items)


def transfer_in_bloom(bloom: int, token: str, frm: str, to: str) -> bool:
    """The follower's per-block check (emitter once, then the Transfer's topics) on one log."""
    text = bloom_text(bloom)
    return emitter_in_bloom(text, token) and transfer_in_bloom_text(text, frm, to)


def _transfer_log(token: str, frm: str, to: str) -> dict[str, Any]:
    pad = "0x" + "0" * 24
    return {"address": token, "topics": [TRANSFER_TOPIC, pad + frm[2:], pad + to[2:]]}


@pytest.mark.parametrize("header", [HEADER_16M, HEADER_16M1], ids=["16000000", "16000001"])
def test_decoded_transfer_check_agrees_with_the_full_log_check(header: dict[str, Any]) -> None:
    """The fast check on decoded Transfers (bit positions in the bloom's text) answers exactly
    as `log_in_bloom` does, for the block's own Transfers and for forged ones."""
    bloom = parse_bloom(header["logsBloom"])
    own = [lg for lg in TRANSFERS_16M if lg["blockNumber"] == header["number"] and len(lg["topics"]) == 3]
    cases = [(lg["address"], "0x" + lg["topics"][1][26:], "0x" + lg["topics"][2][26:]) for lg in own]
    cases += [(tok, frm, f"0x{n:040x}") for n, (tok, frm, _) in enumerate(cases[:40], start=1)]
    cases += [(USD1, frm, to) for _, frm, to in cases[:5]]
    results = []
    for token, frm, to in cases:
        want = log_in_bloom(bloom, _transfer_log(token, frm, to))
        assert transfer_in_bloom(bloom, token, frm, to) is want
        text = bloom_text(bloom)
        assert (emitter_in_bloom(text, token) and transfer_in_bloom_text(text, frm, to)) is want
        results.append(want)
    assert True in results and False in results


@given(st.integers(min_value=0, max_value=(1 << 2048) - 1), st.binary(min_size=20, max_size=20))
def test_decoded_transfer_check_matches_on_any_bloom(bloom: int, raw: bytes) -> None:
    frm, to = "0x" + raw.hex(), "0x" + raw[::-1].hex()
    assert transfer_in_bloom(bloom, USDC, frm, to) is log_in_bloom(bloom, _transfer_log(USDC, frm, to))
    full = bloom_of([_transfer_log(USDC, frm, to)])
    assert transfer_in_bloom(full, USDC, frm, to)


def test_holder_position_cache_is_bounded_and_stays_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """More holders than the cache holds: it is emptied when full, and every answer still
    agrees with the full log check (a stale or mixed-up entry would flip some of them)."""
    import indexer.chains.bloom as bloom_mod

    monkeypatch.setattr(bloom_mod, "TOPIC_CACHE_MAX", 16)
    monkeypatch.setattr(bloom_mod, "_topic_bits", {})
    holders = [f"0x{n * 7919:040x}" for n in range(1, 60)]
    bloom = bloom_of([_transfer_log(USDC, a, b) for a, b in zip(holders[::2], holders[1::2], strict=False)])
    text = bloom_text(bloom)
    answers = []
    for rnd in range(3):
        for i, frm in enumerate(holders):
            to = holders[(i * 3 + rnd) % len(holders)]
            want = log_in_bloom(bloom, _transfer_log(USDC, frm, to))
            assert transfer_in_bloom_text(text, frm, to) is want
            answers.append(want)
            assert len(bloom_mod._topic_bits) <= 16
    assert True in answers and False in answers
