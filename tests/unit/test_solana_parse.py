"""The Solana parser against real mainnet replies (tests/fixtures/solana, see its README).

Expected values are derived independently of the parser: from the upstream project's expected
instruction parse (CSV), from pre/post token balance deltas, and from solana-py's own SPL Token
instruction decoder.
"""

from __future__ import annotations

import copy
import csv
import json
import struct
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey
from spl.token.instructions import decode_transfer

from indexer.chains.solana_parse import (
    TOKEN_2022_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    b58decode,
    block_ref,
    decode_path,
    encode_path,
    parse_block,
    parse_transaction,
)
from indexer.errors import MalformedReply
from indexer.model import EventKind, TokenEvent

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "solana"
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
USDT = "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB"
WSOL = "So11111111111111111111111111111111111111112"
SIG_21W7 = "21w7wVXW6ZdEkxv1zmZXJPnKXM57vwyDU8VLHwRrD5WTH9ZwgGGWhbQgmF563UAjY6MpG3fktmbs3uiREjXN7iw8"


def load(name: str) -> Any:
    return json.loads((FIX / name).read_text())


def _keys(tx: dict[str, Any]) -> list[str]:
    keys = tx["transaction"]["message"]["accountKeys"]
    out = [k["pubkey"] if isinstance(k, dict) else k for k in keys]
    loaded = tx["meta"].get("loadedAddresses")
    if loaded and not isinstance(keys[0], dict):
        out += loaded["writable"] + loaded["readonly"]
    return out


def balance_deltas(tx: dict[str, Any], mint: str) -> dict[str, int]:
    """post - pre token amount per token account of `mint` (absent = 0)."""
    keys = _keys(tx)
    delta: Counter[str] = Counter()
    for side, sign in (("preTokenBalances", -1), ("postTokenBalances", 1)):
        for b in tx["meta"][side] or []:
            if b["mint"] == mint:
                delta[keys[b["accountIndex"]]] += sign * int(b["uiTokenAmount"]["amount"])
    return {k: v for k, v in delta.items()}


def net_flows(events: list[TokenEvent]) -> dict[str, int]:
    flow: Counter[str] = Counter()
    for e in events:
        if e.from_addr is not None:
            flow[e.from_addr] -= e.amount
        if e.to_addr is not None:
            flow[e.to_addr] += e.amount
    return dict(flow)


def same_flows(a: dict[str, int], b: dict[str, int]) -> bool:
    keys = set(a) | set(b)
    return all(a.get(k, 0) == b.get(k, 0) for k in keys)


# ---- path encoding ----


def test_encode_path_examples() -> None:
    assert encode_path(0, None) == 0
    assert encode_path(3, None) == 3000
    assert encode_path(3, 0) == 3001
    assert encode_path(1, 998) == 1999
    with pytest.raises(ValueError):
        encode_path(1, 999)
    with pytest.raises(ValueError):
        encode_path(-1, None)


@given(st.integers(0, 10_000), st.one_of(st.none(), st.integers(0, 998)))
def test_encode_path_roundtrip_and_order(outer: int, inner: int | None) -> None:
    code = encode_path(outer, inner)
    assert decode_path(code) == (outer, inner)
    # a top-level instruction sorts before everything it invoked, which sorts before the next one
    assert encode_path(outer, None) <= code < encode_path(outer + 1, None)


def test_b58decode_known_vectors() -> None:
    assert b58decode("") == b""
    assert b58decode("1") == b"\x00"
    assert b58decode("11") == b"\x00\x00"
    assert b58decode("2g") == b"a"
    assert bytes(Pubkey.from_string(USDC)) == b58decode(USDC)
    with pytest.raises(MalformedReply):
        b58decode("0OIl")


# ---- real mainnet getTransaction (jsonParsed) ----


def expected_from_csv(mint: str) -> set[tuple[int, str, str, int]]:
    """(path, source, destination, amount) of every spl-token transfer in the upstream answer key
    whose source account holds `mint` per the transaction's token balances."""
    tx = load("web3_response.getTransaction_jsonParsed__21w7wVXW__slot139493615.json")[0]["result"]
    keys = _keys(tx)
    mint_of = {keys[b["accountIndex"]]: b["mint"] for b in tx["meta"]["preTokenBalances"]}
    out = set()
    with (FIX / "getTransaction_21w7wVXW__expected_instructions.csv").open() as f:
        for row in csv.DictReader(f):
            assert row["tx_signature"] == SIG_21W7
            if row["program"] != "spl-token" or row["instruction_type"] != "transfer":
                continue
            p = json.loads(row["params"])
            if mint_of.get(p["source"]) != mint:
                continue
            index = int(row["index"])
            path = int(row["parent_index"]) * 1000 + index + 1 if row["parent_index"] else index * 1000
            out.add((path, p["source"], p["destination"], int(p["amount"])))
    return out


@pytest.mark.parametrize("mint", [USDC, WSOL])
def test_get_transaction_matches_upstream_answer_key(mint: str) -> None:
    tx = load("web3_response.getTransaction_jsonParsed__21w7wVXW__slot139493615.json")[0]["result"]
    parsed = parse_transaction("solana", mint, tx["slot"], "blockhash", tx["blockTime"], tx)
    got = {(e.log_index, e.from_addr, e.to_addr, e.amount) for e in parsed.events}
    expected = expected_from_csv(mint)
    assert len(expected) >= 3
    assert got == expected
    assert parsed.unattributed == 0
    for e in parsed.events:
        assert e.kind is EventKind.TRANSFER
        assert (e.chain, e.block_number, e.tx_hash, e.timestamp) == (
            "solana",
            139493615,
            SIG_21W7,
            1656491831,
        )
    # the movements explain the balance changes exactly
    assert same_flows(net_flows(list(parsed.events)), balance_deltas(tx, mint))


def test_get_transaction_other_mint_has_no_events() -> None:
    tx = load("web3_response.getTransaction_jsonParsed__21w7wVXW__slot139493615.json")[0]["result"]
    assert parse_transaction("solana", USDT, tx["slot"], "h", 0, tx).events == ()


# ---- real mainnet getBlock, jsonParsed, slot 100,000,000 ----


def test_block_jsonparsed_inner_transfer_matches_balance_deltas() -> None:
    block = load("client_solana_block_v2__slot100000000.json")
    slot = block["parentSlot"] + 1
    mints = {b["mint"] for t in block["transactions"] for b in (t["meta"]["preTokenBalances"] or [])}
    assert len(mints) == 3
    total = 0
    for mint in mints:
        ref, events, unattributed = parse_block("solana", mint, slot, block)
        assert unattributed == 0
        expected: Counter[str] = Counter()
        for t in block["transactions"]:
            if t["meta"]["err"] is None:
                expected.update(balance_deltas(t, mint))
        assert same_flows(net_flows(events), dict(expected)), mint
        total += len(events)
        for e in events:
            assert e.block_hash == ref.hash == "GdY1gj7F8vq1nCy4dgCZK42WV19bkfQ4cp2e9evK18ry"
    assert total == 1
    _, events, _ = parse_block("solana", "z3dn17yLaGMKffVogeFHQ9zWVcXgqgf3PQnDsNs2g6M", slot, block)
    (e,) = events
    # inner instruction 0 of top-level instruction 0 (meta.innerInstructions[0].index == 0)
    assert (e.log_index, e.kind, e.amount) == (encode_path(0, 0), EventKind.TRANSFER, 1_242_000_000)
    assert e.from_addr == "AMD3D21NmYeeohviSpyc1TmfHU1Zz4KoHbEsMYBSasu2"
    assert e.to_addr == "AhQLbtvmca4VUZBCpjEeSWwrNBTE6ZskjrFSTUqWJwDp"


def test_block_ref_from_real_block() -> None:
    block = load("client_solana_block_v2__slot100000000.json")
    ref = block_ref(100_000_000, block)
    assert ref.hash == block["blockhash"]
    assert ref.parent_hash == block["previousBlockhash"]
    assert ref.timestamp == block["blockTime"]


# ---- real mainnet getBlock, json encoding, v0 transaction with a lookup table ----


def test_versioned_tx_json_encoding_with_loaded_addresses() -> None:
    block = load("parser_solana_block_with_versioned_tx__slot154808473.json")
    tx = block["transactions"][0]
    assert tx["version"] == 0 and tx["transaction"]["message"]["addressTableLookups"]
    keys = _keys(tx)
    msg = tx["transaction"]["message"]
    # independent decode of every top-level Token-program instruction with solana-py's decoder
    expected = []
    for i, ix in enumerate(msg["instructions"]):
        if keys[ix["programIdIndex"]] != TOKEN_PROGRAM_ID:
            continue
        inst = Instruction(
            Pubkey.from_string(TOKEN_PROGRAM_ID),
            b58decode(ix["data"]),
            [AccountMeta(Pubkey.from_string(keys[a]), False, False) for a in ix["accounts"]],
        )
        params = decode_transfer(inst)
        expected.append((i * 1000, str(params.source), str(params.dest), params.amount))
    assert len(expected) == 1
    # both accounts of that transfer come from the lookup table
    assert expected[0][1] in tx["meta"]["loadedAddresses"]["writable"]

    _, events, unattributed = parse_block("solana", USDC, 154808473, block)
    assert [(e.log_index, e.from_addr, e.to_addr, e.amount) for e in events] == expected
    assert unattributed == 0
    assert events[0].tx_hash == tx["transaction"]["signatures"][0]
    assert parse_block("solana", USDT, 154808473, block)[1] == []


def test_versioned_tx_without_loaded_addresses_is_malformed() -> None:
    block = copy.deepcopy(load("parser_solana_block_with_versioned_tx__slot154808473.json"))
    del block["transactions"][0]["meta"]["loadedAddresses"]
    with pytest.raises(MalformedReply, match="loadedAddresses"):
        parse_block("solana", USDC, 154808473, block)


# ---- real failed transaction ----


def test_failed_transaction_is_skipped() -> None:
    block = load("parser_solana_block_241043141_v2.json")
    tx = block["transactions"][0]
    assert tx["meta"]["err"] is not None
    for b in tx["meta"]["postTokenBalances"]:
        assert parse_block("solana", b["mint"], 241043141, block)[1] == []


# ---- synthetic json-encoded transactions (raw instruction data decoding) ----

MINT = "USD1ttGY1N17NEEHLmELoaybftRBUSErhqYiQzvEmuB"
OTHER = "So11111111111111111111111111111111111111112"
A = "8CFo8bL8mZQK8abbFyypFMwEDd8tVJjHTTojMLgQTUSZ"
B = "8Vw25ZackDzaJzzBBqcgcpDsCsDfRSkMGgwFQ3gbReWF"
AUTH = "9BVcYqEQxyccuwznvxXqDkSJFavvTyheiTYk231T1A8S"
C = "36c6YqAwyGKQG66XEp2dJc5JqjaBNv7sVghEtJv4c7u6"
D = "AVn3JRGhifPCxjxZsU3tQuo4U4dTHizHzBDGW983tx47"
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    s = ""
    while n:
        n, r = divmod(n, 58)
        s = _B58[r] + s
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + s


KEYS = [AUTH, A, B, C, D, MINT, OTHER, TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID]
IDX = {k: i for i, k in enumerate(KEYS)}


def ix(program: str, data: bytes, *accounts: str) -> dict[str, Any]:
    return {"programIdIndex": IDX[program], "accounts": [IDX[a] for a in accounts], "data": b58(data)}


def json_tx(
    instructions: list[dict[str, Any]],
    inner: list[dict[str, Any]] | None = None,
    balances: list[tuple[str, str]] | None = None,
    err: Any = None,
) -> dict[str, Any]:
    bal = [
        {"accountIndex": IDX[acct], "mint": mint, "uiTokenAmount": {"amount": "0", "decimals": 6}}
        for acct, mint in (balances or [])
    ]
    return {
        "transaction": {
            "signatures": ["5ig"],
            "message": {"accountKeys": KEYS, "instructions": instructions, "recentBlockhash": "x"},
        },
        "meta": {
            "err": err,
            "innerInstructions": inner or [],
            "preTokenBalances": [],
            "postTokenBalances": bal,
        },
        "version": "legacy",
    }


@pytest.mark.parametrize("program", [TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID])
def test_raw_instruction_data_all_six_kinds(program: str) -> None:
    u64 = lambda tag, amount: struct.pack("<BQ", tag, amount)  # noqa: E731
    u64d = lambda tag, amount: struct.pack("<BQB", tag, amount, 6)  # noqa: E731
    tx = json_tx(
        [
            ix(program, u64(7, 5_000_000), MINT, A, AUTH),  # MintTo
            ix(program, u64d(14, 7), MINT, B, AUTH),  # MintToChecked
            ix(program, u64(3, 2**64 - 1), A, B, AUTH),  # Transfer (mint from balances)
            ix(program, u64d(12, 11), A, MINT, B, AUTH),  # TransferChecked
            ix(program, u64(8, 13), B, MINT, AUTH),  # Burn
            ix(program, u64d(15, 17), A, MINT, AUTH),  # BurnChecked
            ix(program, u64(3, 99), C, D, AUTH),  # Transfer of another mint
            ix(program, u64d(12, 23), C, OTHER, D, AUTH),  # TransferChecked of another mint
            ix(program, bytes([9]), A, AUTH, AUTH),  # CloseAccount: no movement
        ],
        balances=[(A, MINT), (C, OTHER)],
    )
    events = parse_transaction("sol", MINT, 5, "bh", 9, tx).events
    got = [(e.log_index, e.kind.value, e.from_addr, e.to_addr, e.amount) for e in events]
    assert got == [
        (0, "mint", None, A, 5_000_000),
        (1000, "mint", None, B, 7),
        (2000, "transfer", A, B, 2**64 - 1),
        (3000, "transfer", A, B, 11),
        (4000, "burn", B, None, 13),
        (5000, "burn", A, None, 17),
    ]


def test_inner_instructions_and_attribution_through_instructions() -> None:
    # B appears in no token balance; its mint is known from the MintTo that names it.
    tx = json_tx(
        [ix(AUTH, b"\x01", A), ix(AUTH, b"\x02", B)],
        inner=[
            {
                "index": 1,
                "instructions": [
                    ix(TOKEN_PROGRAM_ID, struct.pack("<BQ", 7, 10), MINT, B, AUTH),
                    ix(TOKEN_PROGRAM_ID, struct.pack("<BQ", 3, 4), B, A, AUTH),
                    ix(TOKEN_PROGRAM_ID, struct.pack("<BQ", 3, 4), C, D, AUTH),  # unattributable
                ],
            }
        ],
    )
    parsed = parse_transaction("sol", MINT, 5, "bh", 9, tx)
    assert [(e.log_index, e.kind.value, e.amount) for e in parsed.events] == [
        (1001, "mint", 10),
        (1002, "transfer", 4),
    ]
    assert parsed.unattributed == 1


def test_failed_synthetic_tx_yields_nothing() -> None:
    tx = json_tx(
        [ix(TOKEN_PROGRAM_ID, struct.pack("<BQ", 7, 10), MINT, A, AUTH)],
        err={"InstructionError": [0, {"Custom": 1}]},
    )
    assert parse_transaction("sol", MINT, 5, "bh", 9, tx).events == ()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda t: t["transaction"]["message"]["instructions"].append(
                ix(TOKEN_PROGRAM_ID, b"\x07\x01", MINT, A)
            ),
            "data bytes",
        ),
        (
            lambda t: t["transaction"]["message"]["instructions"].append(
                {"programIdIndex": 99, "accounts": [], "data": ""}
            ),
            "outside",
        ),
        (lambda t: t.__setitem__("meta", None), "no meta"),
        (lambda t: t["meta"].pop("err"), "no err"),
        (lambda t: t.__setitem__("transaction", ["AAAA", "base64"]), "binary"),
        (lambda t: t["transaction"].__setitem__("signatures", []), "no signature"),
        (
            lambda t: t["meta"].__setitem__("innerInstructions", [{"index": 7, "instructions": []}]),
            "innerInstructions",
        ),
        (
            lambda t: t["transaction"]["message"]["instructions"].append(
                ix(TOKEN_PROGRAM_ID, b"\x07" + b"\0" * 8, MINT, A, AUTH) | {"data": "0OIl"}
            ),
            "base58",
        ),
    ],
)
def test_malformed_transactions_raise(mutate: Any, message: str) -> None:
    tx = json_tx([ix(TOKEN_PROGRAM_ID, struct.pack("<BQ", 7, 10), MINT, A, AUTH)])
    mutate(tx)
    with pytest.raises(MalformedReply, match=message):
        parse_transaction("sol", MINT, 5, "bh", 9, tx)


def test_malformed_block_headers_raise() -> None:
    block = load("client_solana_block_v2__slot100000000.json")
    for key in ("blockhash", "previousBlockhash", "parentSlot"):
        broken = {k: v for k, v in block.items() if k != key}
        with pytest.raises(MalformedReply):
            parse_block("solana", USDC, 100_000_000, broken)
    with pytest.raises(MalformedReply, match="transactions"):
        parse_block("solana", USDC, 100_000_000, {k: v for k, v in block.items() if k != "transactions"})
    with pytest.raises(MalformedReply):
        block_ref(5, None)


@given(
    st.lists(
        st.tuples(st.sampled_from([3, 7, 8, 12, 14, 15]), st.integers(0, 2**64 - 1), st.booleans()),
        max_size=20,
    )
)
def test_random_instruction_sequences(ops: list[tuple[int, int, bool]]) -> None:
    """Generated top-level / inner instructions: every movement of MINT comes out, in order."""
    outer: list[dict[str, Any]] = [ix(AUTH, b"\x00", A)]
    inner: list[dict[str, Any]] = []
    expected = []
    for tag, amount, as_inner in ops:
        checked = tag in (12, 14, 15)
        data = struct.pack("<BQB", tag, amount, 6) if checked else struct.pack("<BQ", tag, amount)
        accounts = {
            3: (A, B, AUTH),
            7: (MINT, A, AUTH),
            8: (B, MINT, AUTH),
            12: (A, MINT, B, AUTH),
            14: (MINT, B, AUTH),
            15: (A, MINT, AUTH),
        }[tag]
        kind, src, dst = {
            3: ("transfer", A, B),
            7: ("mint", None, A),
            8: ("burn", B, None),
            12: ("transfer", A, B),
            14: ("mint", None, B),
            15: ("burn", A, None),
        }[tag]
        if as_inner:
            inner.append(ix(TOKEN_2022_PROGRAM_ID, data, *accounts))
            path = encode_path(0, len(inner) - 1)
        else:
            outer.append(ix(TOKEN_PROGRAM_ID, data, *accounts))
            path = encode_path(len(outer) - 1, None)
        expected.append((path, kind, src, dst, amount))
    tx = json_tx(outer, inner=[{"index": 0, "instructions": inner}], balances=[(A, MINT), (B, MINT)])
    events = parse_transaction("sol", MINT, 1, "bh", 0, tx).events
    got = sorted((e.log_index, e.kind.value, e.from_addr, e.to_addr, e.amount) for e in events)
    assert got == sorted(expected)
