"""ERC-20 Transfer decoding on real mainnet logs, checked against independent answer keys:
`stablecoin_transfer_summary_by_block.csv`, `stablecoin_transfer_events.csv`,
`stablecoin_mint_burn_aux_events.csv` and ethereum-etl's own token-transfer extraction.
"""

from __future__ import annotations

import copy
import csv
import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from indexer.chains.evm_decode import TRANSFER_TOPIC, ZERO_ADDRESS, classify, decode_transfer
from indexer.chains.evm_families import LogDispatch, UnaskedLog, decode_logs
from indexer.errors import MalformedReply
from indexer.model import EventKind, TokenEvent
from tests.support.evm_logs import node_filter

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

# Token addresses as given in the realdata README.
TOKENS = {
    "USDC": "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
    "USDT": "0xdac17f958d2ee523a2206206994597c13d831ec7",
    "DAI": "0x6b175474e89094c44da98b954eedeac495271d0f",
}
LOGS_16M = "eth_getLogs__test_04__transfers_blocks_16000000-16000003.json"
ETL_LOGS = "blocks_17173049_17173050__expected_logs.json"
ETL_TRANSFERS = "blocks_17173049_17173050__expected_token_transfers.json"
RECEIPTS_19999999 = "erigon_getBlockReceiptsByBlockHash__test_07.json"
MINT_TOPIC = "0xab8530f87dc9b59234c4623bf917212bb2536d647574c8e7e5da92c2ede0c9f8"  # USDC Mint
BURN_TOPIC = "0xcc16f5dbb4873280815c1ee09dbd06736cffcc184412cf7a71a0fdb75d397ca5"  # USDC Burn


# --------------------------------------------------------------------------------------------
# Loading the fixtures


def logs_16m() -> list[dict[str, Any]]:
    data = json.loads((FIXTURES / LOGS_16M).read_text())
    return list(data[0]["response"]["result"])


def etl_logs() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / ETL_LOGS).read_text().splitlines() if line.strip()]


def etl_as_rpc(log: dict[str, Any]) -> dict[str, Any]:
    """ethereum-etl's log record in JSON-RPC `eth_getLogs` shape (field names and hex quantities)."""
    return {
        "address": log["address"],
        "blockHash": log["block_hash"],
        "blockNumber": hex(log["block_number"]),
        "blockTimestamp": hex(log["block_timestamp"]),
        "data": log["data"],
        "logIndex": hex(log["log_index"]),
        "removed": False,
        "topics": log["topics"],
        "transactionHash": log["transaction_hash"],
        "transactionIndex": hex(log["transaction_index"]),
    }


def receipt_logs_19999999() -> list[dict[str, Any]]:
    data = json.loads((FIXTURES / RECEIPTS_19999999).read_text())
    return [log for receipt in data[0]["response"]["result"] for log in receipt["logs"]]


def csv_rows(name: str) -> list[dict[str, str]]:
    with (FIXTURES / name).open(newline="") as f:
        return list(csv.DictReader(f))


def transfers_of(logs: list[dict[str, Any]], token: str) -> list[TokenEvent]:
    """What the daemon decodes for `token` (transfers only) from what a node returns for its filter."""
    d = LogDispatch.build(token)
    return decode_logs("ethereum", node_filter(logs, d), d).events


def decode_tokens(logs: list[dict[str, Any]]) -> dict[str, list[TokenEvent]]:
    return {sym: transfers_of(logs, addr) for sym, addr in TOKENS.items()}


def erc20_transfers(logs: list[dict[str, Any]]) -> list[TokenEvent]:
    """The Transfers of every ERC-20 among the logs' emitters (those whose Transfer logs have 3
    topics; ERC-721 contracts index the token id as a fourth), each decoded as its own token."""
    emitters: dict[str, set[int]] = defaultdict(set)
    for log in logs:
        if log["topics"] and log["topics"][0] == TRANSFER_TOPIC:
            emitters[log["address"].lower()].add(len(log["topics"]))
    out = [ev for a, n in emitters.items() if n == {3} for ev in transfers_of(logs, a)]
    return sorted(out, key=lambda e: (e.block_number, e.log_index))


# --------------------------------------------------------------------------------------------
# Answer-key comparisons


def summarize(events: Iterable[TokenEvent]) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = defaultdict(
        lambda: {"n": 0, "sum": 0, "n_mint": 0, "sum_mint": 0, "n_burn": 0, "sum_burn": 0}
    )
    for ev in events:
        s = out[ev.block_number]
        s["n"] += 1
        s["sum"] += ev.amount
        if ev.kind is EventKind.MINT:
            s["n_mint"] += 1
            s["sum_mint"] += ev.amount
        elif ev.kind is EventKind.BURN:
            s["n_burn"] += 1
            s["sum_burn"] += ev.amount
    return dict(out)


def expected_summary(blocks: set[int]) -> dict[tuple[int, str], tuple[str, dict[str, int]]]:
    out = {}
    for row in csv_rows("stablecoin_transfer_summary_by_block.csv"):
        if row["chain"] == "ethereum" and int(row["block_number"]) in blocks:
            out[(int(row["block_number"]), row["token"])] = (
                row["block_hash"],
                {
                    "n": int(row["n_transfer_events"]),
                    "sum": int(row["sum_value_raw"]),
                    "n_mint": int(row["n_mint"]),
                    "sum_mint": int(row["sum_mint_raw"]),
                    "n_burn": int(row["n_burn"]),
                    "sum_burn": int(row["sum_burn_raw"]),
                },
            )
    return out


def check_against_summary(decoded: dict[str, list[TokenEvent]], blocks: set[int]) -> None:
    expected = expected_summary(blocks)
    assert expected, "answer key has rows for these blocks"
    got: dict[tuple[int, str], tuple[str, dict[str, int]]] = {}
    for sym, events in decoded.items():
        hashes = {ev.block_number: ev.block_hash for ev in events}
        for number, summary in summarize(events).items():
            got[(number, sym)] = (hashes[number], summary)
    assert got == expected


def event_rows(ev: TokenEvent, sym: str) -> tuple[Any, ...]:
    return (
        ev.block_number,
        ev.block_hash,
        ev.tx_hash,
        ev.log_index,
        sym,
        ev.from_addr,
        ev.to_addr,
        ev.amount,
        ev.kind.value,
    )


def expected_event_rows(blocks: set[int]) -> list[tuple[Any, ...]]:
    rows = []
    for r in csv_rows("stablecoin_transfer_events.csv"):
        if r["chain"] == "ethereum" and int(r["block_number"]) in blocks:
            assert r["token_address"] == TOKENS[r["token"]]
            rows.append(
                (
                    int(r["block_number"]),
                    r["block_hash"],
                    r["tx_hash"],
                    int(r["log_index"]),
                    r["token"],
                    r["from_address"],
                    r["to_address"],
                    int(r["value_raw"]),
                    r["kind"],
                )
            )
    return sorted(rows)


def check_against_events(decoded: dict[str, list[TokenEvent]], blocks: set[int]) -> None:
    got = sorted(event_rows(ev, sym) for sym, evs in decoded.items() for ev in evs)
    assert got == expected_event_rows(blocks)


# --------------------------------------------------------------------------------------------
# Blocks 16,000,000-16,000,003 (erigon rpc-tests eth_getLogs)


def test_blocks_16000000_to_16000003_match_the_answer_keys() -> None:
    decoded = decode_tokens(logs_16m())
    # README: 35 USDC, 46 USDT, 12 DAI Transfers, one DAI mint
    assert {sym: len(evs) for sym, evs in decoded.items()} == {"USDC": 35, "USDT": 46, "DAI": 12}
    assert [ev.kind for ev in decoded["DAI"]].count(EventKind.MINT) == 1
    blocks = {16000000, 16000001, 16000002, 16000003}
    check_against_summary(decoded, blocks)
    check_against_events(decoded, blocks)


def test_blocks_16000000_to_16000003_all_tokens() -> None:
    logs = logs_16m()
    events = erc20_transfers(logs)
    # Every 3-topic log is an ERC-20 Transfer, every 4-topic one an ERC-721 Transfer.
    n3 = sum(1 for log in logs if len(log["topics"]) == 3)
    assert len(logs) == 431 and n3 == 325
    assert len(events) == n3
    assert all(ev.chain == "ethereum" for ev in events)
    # Log order and identities are kept.
    assert [ev.log_index for ev in events] == [
        int(log["logIndex"], 16) for log in logs if len(log["topics"]) == 3
    ]


def test_timestamps_come_from_the_log_and_match_the_header() -> None:
    header = json.loads((FIXTURES / "eth_getBlockByNumber__test_02.json").read_text())[0]["response"][
        "result"
    ]
    events = [ev for ev in erc20_transfers(logs_16m()) if ev.block_number == 16000000]
    assert events
    assert {ev.block_hash for ev in events} == {header["hash"]}
    assert {ev.timestamp for ev in events} == {int(header["timestamp"], 16)}


# --------------------------------------------------------------------------------------------
# Blocks 17,173,049-050 (ethereum-etl test_stream)


def test_blocks_17173049_17173050_match_the_answer_keys() -> None:
    logs = [etl_as_rpc(log) for log in etl_logs()]
    assert len(logs) == 681
    decoded = decode_tokens(logs)
    blocks = {17173049, 17173050}
    check_against_summary(decoded, blocks)
    check_against_events(decoded, blocks)


def test_blocks_17173049_17173050_match_ethereum_etl_extraction() -> None:
    raw = etl_logs()
    events = erc20_transfers([etl_as_rpc(log) for log in raw])
    etl = [json.loads(line) for line in (FIXTURES / ETL_TRANSFERS).read_text().splitlines() if line.strip()]
    # ethereum-etl also emits ERC-721 transfers (4 topics); we skip those by design.
    topics_by_id = {(log["transaction_hash"], log["log_index"]): len(log["topics"]) for log in raw}
    erc20 = [t for t in etl if topics_by_id[(t["transaction_hash"], t["log_index"])] == 3]
    erc721 = [t for t in etl if topics_by_id[(t["transaction_hash"], t["log_index"])] == 4]
    assert len(erc20) + len(erc721) == len(etl) == 291 and len(erc721) == 9

    def key(t: dict[str, Any]) -> tuple[Any, ...]:
        return (
            t["block_number"],
            t["block_hash"],
            t["transaction_hash"],
            t["log_index"],
            t["from_address"],
            t["to_address"],
            int(t["value"]),
            t["block_timestamp"],
        )

    got = [
        (
            ev.block_number,
            ev.block_hash,
            ev.tx_hash,
            ev.log_index,
            ev.from_addr,
            ev.to_addr,
            ev.amount,
            ev.timestamp,
        )
        for ev in events
    ]
    assert sorted(got) == sorted(key(t) for t in erc20)
    # Kinds follow the zero address as ethereum-etl's from/to fields show it.
    for ev, t in zip(
        sorted(events, key=lambda e: (e.block_number, e.log_index)),
        sorted(erc20, key=lambda t: (t["block_number"], t["log_index"])),
        strict=True,
    ):
        zero_from, zero_to = t["from_address"] == ZERO_ADDRESS, t["to_address"] == ZERO_ADDRESS
        want = (
            EventKind.MINT
            if zero_from and not zero_to
            else EventKind.BURN
            if zero_to and not zero_from
            else EventKind.TRANSFER
        )
        assert ev.kind is want


# --------------------------------------------------------------------------------------------
# Block 19,999,999 receipts: USDC Mint/Burn events next to Transfers from/to 0x0


def test_block_19999999_usdc_mints_and_burn() -> None:
    logs = receipt_logs_19999999()
    decoded = decode_tokens(logs)
    check_against_summary(decoded, {19999999})
    check_against_events(decoded, {19999999})

    usdc = decoded["USDC"]
    aux = [r for r in csv_rows("stablecoin_mint_burn_aux_events.csv") if r["token"] == "USDC"]
    assert len(aux) == 3
    # The Mint/Burn events themselves (other topic0, same contract) are not decoded.
    aux_ids = {(r["tx_hash"], int(r["log_index"])) for r in aux}
    assert not aux_ids & {(ev.tx_hash, ev.log_index) for ev in usdc}
    for r in aux:
        topics = r["topics"].split()
        amount = int(r["data"], 16)
        same_tx = [ev for ev in usdc if ev.tx_hash == r["tx_hash"]]
        if r["event"].startswith("Mint"):
            assert topics[0] == MINT_TOPIC
            to = "0x" + topics[2][26:]
            assert [ev for ev in same_tx if ev.kind is EventKind.MINT] == [
                ev
                for ev in same_tx
                if ev.from_addr == ZERO_ADDRESS and ev.to_addr == to and ev.amount == amount
            ]
            assert sum(1 for ev in same_tx if ev.kind is EventKind.MINT) == 1
        else:
            assert topics[0] == BURN_TOPIC
            burner = "0x" + topics[1][26:]
            burns = [ev for ev in same_tx if ev.kind is EventKind.BURN]
            assert len(burns) == 1
            assert burns[0].from_addr == burner and burns[0].to_addr == ZERO_ADDRESS
            assert burns[0].amount == amount


def test_mint_and_burn_topics_with_the_transfer_shape_are_not_asked_for() -> None:
    # A USDC `Mint(minter, to, amount)` has 3 topics and a one-word data field, exactly the shape
    # of a Transfer: only topic0 tells them apart. The filter never asks for them (the Transfer
    # from 0x0 next to each one is the supply move), and one that comes back anyway is an error.
    mint_logs = [log for log in receipt_logs_19999999() if log["topics"][0] == MINT_TOPIC]
    assert mint_logs and all(len(log["topics"]) == 3 and len(log["data"]) == 66 for log in mint_logs)
    d = LogDispatch.build(TOKENS["USDC"])
    assert node_filter(mint_logs, d) == []
    with pytest.raises(UnaskedLog, match="not asked for"):
        decode_logs("ethereum", mint_logs, d)


# --------------------------------------------------------------------------------------------
# Synthetic edge cases built from one real log


def a_log() -> dict[str, Any]:
    return copy.deepcopy(logs_16m()[0])


def dispatch_of(log: dict[str, Any]) -> LogDispatch:
    """The transfers dispatch of the token that emitted `log`."""
    return LogDispatch.build(log["address"])


def test_classify() -> None:
    a, b = "0x" + "1" * 40, "0x" + "2" * 40
    assert classify(ZERO_ADDRESS, a) is EventKind.MINT
    assert classify(a, ZERO_ADDRESS) is EventKind.BURN
    assert classify(a, b) is EventKind.TRANSFER
    assert classify(ZERO_ADDRESS, ZERO_ADDRESS) is EventKind.TRANSFER


def test_real_log_decodes_to_the_expected_fields() -> None:
    log = a_log()
    ev = decode_transfer("ethereum", log)
    assert ev is not None
    row = next(
        r for r in csv_rows("stablecoin_transfer_events.csv") if r["tx_hash"] == log["transactionHash"]
    )
    assert (ev.from_addr, ev.to_addr, ev.amount, ev.log_index, ev.block_number) == (
        row["from_address"],
        row["to_address"],
        int(row["value_raw"]),
        int(row["log_index"]),
        int(row["block_number"]),
    )


def test_uppercase_hex_is_normalized() -> None:
    log = a_log()
    ev = decode_transfer("ethereum", log)
    up = {
        **log,
        "blockHash": "0x" + log["blockHash"][2:].upper(),
        "transactionHash": "0x" + log["transactionHash"][2:].upper(),
        "topics": [
            log["topics"][0].upper().replace("0X", "0x"),
            *("0x" + t[2:].upper() for t in log["topics"][1:]),
        ],
    }
    assert decode_transfer("ethereum", up) == ev


def test_erc721_transfer_with_four_topics_is_not_an_erc20_transfer() -> None:
    erc721 = next(log for log in logs_16m() if len(log["topics"]) == 4)
    assert erc721["topics"][0] == TRANSFER_TOPIC
    assert decode_transfer("ethereum", erc721) is None
    # Configured as the token, its Transfer log cannot be a token movement: a clear error.
    with pytest.raises(MalformedReply, match="has 4 topics; an ERC-20 Transfer has 3"):
        decode_logs("ethereum", [erc721], dispatch_of(erc721))


def test_other_events_are_skipped() -> None:
    log = a_log()
    log["topics"] = ["0x" + "ab" * 32, *log["topics"][1:]]
    assert decode_transfer("ethereum", log) is None


def test_duplicates_are_dropped() -> None:
    d = LogDispatch.build(TOKENS["USDT"])
    logs = node_filter(logs_16m(), d)[:5]
    assert len(logs) == 5
    events = decode_logs("ethereum", [*logs, copy.deepcopy(logs[2]), copy.deepcopy(logs[0])], d).events
    assert events == decode_logs("ethereum", logs, d).events
    assert len(events) == 5 == len({ev.identity for ev in events})


def test_conflicting_duplicates_are_malformed() -> None:
    log = a_log()
    other = copy.deepcopy(log)
    other["data"] = "0x" + "0" * 63 + "1"
    with pytest.raises(MalformedReply, match="one identity"):
        decode_logs("ethereum", [log, other], dispatch_of(log))


def test_token_address_is_case_insensitive() -> None:
    logs = logs_16m()
    upper = TOKENS["USDC"].upper().replace("0X", "0x")
    assert transfers_of(logs, upper) == transfers_of(logs, TOKENS["USDC"])
    # A node that returns the emitter in mixed case: the slow path decodes it identically.
    mixed = [{**lg, "address": upper} for lg in node_filter(logs, LogDispatch.build(TOKENS["USDC"]))]
    assert decode_logs("ethereum", mixed, LogDispatch.build(TOKENS["USDC"])).events == transfers_of(
        logs, TOKENS["USDC"]
    )


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda log: log.pop("topics"), "no topics list"),
        (lambda log: log.update(topics="0xddf2"), "no topics list"),
        (lambda log: log.pop("data"), "data is not one 32-byte hex word"),
        (lambda log: log.update(data=log["data"][:-2]), "data is not one 32-byte hex word"),
        (lambda log: log.update(data=log["data"] + "00"), "data is not one 32-byte hex word"),
        (lambda log: log.update(data="0x" + "zz" * 32), "data is not one 32-byte hex word"),
        (lambda log: log.update(data="0x" + " " * 63 + "1"), "data is not one 32-byte hex word"),
        (lambda log: log.update(data="0x" + "0" * 62 + "_1"), "data is not one 32-byte hex word"),
        (lambda log: log.update(data=log["data"][2:] + "00"), "data is not one 32-byte hex word"),
        (lambda log: log.pop("blockHash"), "missing blockHash"),
        (lambda log: log.update(blockHash=None), "missing blockHash"),
        (lambda log: log.update(blockHash="0x1234"), "blockHash is not a 32-byte hex hash"),
        (lambda log: log.pop("transactionHash"), "missing transactionHash"),
        (
            lambda log: log.update(transactionHash="0x" + "g" * 64),
            "transactionHash is not a 32-byte hex hash",
        ),
        (lambda log: log.pop("blockNumber"), "missing blockNumber"),
        (lambda log: log.update(blockNumber="16000000"), "blockNumber is not a hex quantity"),
        (lambda log: log.update(blockNumber="0x"), "blockNumber is not a hex quantity"),
        (lambda log: log.update(blockNumber="0xf4_2400"), "blockNumber is not a hex quantity"),
        (lambda log: log.update(blockNumber=-1), "blockNumber is not a hex quantity"),
        (lambda log: log.pop("logIndex"), "missing logIndex"),
        (lambda log: log.update(logIndex="0xq"), "logIndex is not a hex quantity"),
        (lambda log: log.update(logIndex=True), "logIndex is not a hex quantity"),
        (lambda log: log.update(blockTimestamp="noon"), "blockTimestamp is not a hex quantity"),
        (lambda log: log.update(removed=True), "removed"),
        (lambda log: log["topics"].__setitem__(1, "0x1234"), "from topic is not a 32-byte hex word"),
        (lambda log: log["topics"].__setitem__(2, None), "to topic is not a 32-byte hex word"),
        (lambda log: log["topics"].__setitem__(2, "0x" + "x" * 64), "to topic is not a 32-byte hex word"),
        (lambda log: log["topics"].__setitem__(1, "0x" + "f" * 64), "from topic is not an address"),
    ],
)
def test_malformed_logs_raise(mutate: Any, message: str) -> None:
    log = a_log()
    d = dispatch_of(log)
    mutate(log)
    with pytest.raises(MalformedReply, match=message):
        decode_logs("ethereum", [log], d)


def test_missing_block_timestamp_uses_the_given_one() -> None:
    log = a_log()
    del log["blockTimestamp"]
    ev = decode_transfer("ethereum", log, timestamp=1234)
    assert ev is not None and ev.timestamp == 1234


# --------------------------------------------------------------------------------------------
# A whole eth_getLogs reply, as the decode worker sees it (indexer.chains.decode_pool)


def test_decode_reply_gives_the_same_events_as_decode_logs() -> None:
    import orjson

    from indexer.chains.decode_pool import DecodedLogs, decode_reply

    d = LogDispatch.build(TOKENS["USDC"])
    logs = node_filter(logs_16m(), d)
    raw = orjson.dumps({"jsonrpc": "2.0", "id": 7, "result": logs})
    reply = decode_reply(raw, "ethereum", d)
    assert reply["id"] == 7
    part = reply["result"]
    assert isinstance(part, DecodedLogs) and part.error is None
    events = part.events()
    assert events == decode_logs("ethereum", logs, d).events
    assert len(events) > 0 and all(type(e) is TokenEvent for e in events)


def test_decode_reply_passes_other_replies_through() -> None:
    import orjson

    from indexer.chains.decode_pool import NotJson, decode_reply

    error = {
        "jsonrpc": "2.0",
        "id": 1,
        "error": {"code": -32005, "message": "query returned more than 10000 results"},
    }
    d = LogDispatch.build(TOKENS["USDC"])
    assert decode_reply(orjson.dumps(error), "ethereum", d) == error
    odd = {"jsonrpc": "2.0", "id": 1, "result": [1, 2]}
    assert decode_reply(orjson.dumps(odd), "ethereum", d) == odd
    with pytest.raises(NotJson) as exc:
        decode_reply(b'{"jsonrpc": "2.0", "id": 1, "result": [', "ethereum", d)
    assert isinstance(exc.value, ValueError)  # what RpcPool treats as a body that is not JSON


def test_decode_reply_reports_a_malformed_log() -> None:
    import orjson

    from indexer.chains.decode_pool import DecodedLogs, decode_reply

    d = LogDispatch.build(TOKENS["USDC"])
    usdc = copy.deepcopy(node_filter(logs_16m(), d))
    usdc[0]["data"] = "0x12"
    reply = decode_reply(orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": usdc}), "ethereum", d)
    part = reply["result"]
    assert isinstance(part, DecodedLogs) and part.error is not None and "data" in part.error
    with pytest.raises(MalformedReply, match="not one 32-byte hex word"):
        part.events()


def test_numeric_digits_for_copy() -> None:
    from indexer.store.copy_binary import numeric_digits

    assert numeric_digits(0) == []
    assert numeric_digits(9_999) == [9_999]
    assert numeric_digits(10_000) == [1, 0]
    assert numeric_digits(123_456_789) == [1, 2345, 6789]
    n = 2**256 - 1
    assert int("".join(f"{d:04d}" for d in numeric_digits(n))) == n
    for bad in (-1, True, 1.0, "5"):
        with pytest.raises(ValueError, match="non-negative integer"):
            numeric_digits(bad)  # type: ignore[arg-type]
