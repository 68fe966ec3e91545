"""The java-tron front's pure rewriting (tests/support/tron_front.py): hashes that start with the
height and map back, headers shaped like the real Nile reply (tests/fixtures/tron/), prefix-less
log addresses, `latest`-only state reads, `finalized`/`safe`, and the eth_getLogs range cap."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.tron_front import (
    ZERO_BLOOM,
    HashMap,
    TronRpcError,
    block_tag,
    logs_filter,
    rewrite_block,
    rewrite_log,
    rewrite_receipt,
    state_block,
    tron_hash,
    upstream_address,
)

FIX = Path(__file__).parent.parent / "fixtures" / "tron"
H1 = "0x" + "ab" * 32
H0 = "0x" + "cd" * 32
USD1_HEX = "0x91bed8e784249c91611e61c4585c40e21fd0ace2"


def nile_block() -> dict[str, Any]:
    result: dict[str, Any] = json.loads((FIX / "nile_eth_getBlockByNumber.json").read_text())[0]["response"][
        "result"
    ]
    return result


def anvil_block(number: int, h: str, parent: str) -> dict[str, Any]:
    return {
        "number": hex(number),
        "hash": h,
        "parentHash": parent,
        "logsBloom": "0x" + "ff" * 256,
        "stateRoot": "0x" + "11" * 32,
        "receiptsRoot": "0x" + "22" * 32,
        "sha3Uncles": "0x" + "33" * 32,
        "mixHash": "0x" + "44" * 32,
        "difficulty": "0x1",
        "baseFeePerGas": "0x7",
        "timestamp": "0x69f18a5c",
        "transactions": [{"hash": "0x" + "55" * 32, "blockHash": h, "blockNumber": hex(number)}],
        "uncles": [],
    }


def test_tron_hash_starts_with_height_like_the_real_reply() -> None:
    real = nile_block()
    height = int(real["number"], 16)
    assert real["hash"][:18] == "0x" + f"{height:016x}"  # the real BlockId rule
    got = tron_hash(height, H1)
    assert got[:18] == real["hash"][:18]
    assert got[18:] == H1[18:] and len(got) == 66
    with pytest.raises(ValueError, match="32-byte"):
        tron_hash(1, "0x1234")


def test_block_rewrite_matches_the_real_zero_fields_and_links_parents() -> None:
    hashes = HashMap()
    out = rewrite_block(anvil_block(0x3FE1C00, H1, H0), hashes)
    real = nile_block()
    for key in (
        "sha3Uncles",
        "receiptsRoot",
        "mixHash",
        "stateRoot",
        "difficulty",
        "totalDifficulty",
        "baseFeePerGas",
    ):
        assert out[key] == real[key], key
    assert out["logsBloom"] == ZERO_BLOOM and len(bytes.fromhex(ZERO_BLOOM[2:])) == 256
    assert out["uncles"] == [] and out["timestamp"] == "0x69f18a5c"  # seconds, unchanged
    assert out["hash"] == tron_hash(0x3FE1C00, H1)
    assert out["parentHash"] == tron_hash(0x3FE1BFF, H0)
    assert out["transactions"][0]["blockHash"] == out["hash"]
    # Both ways: the emitted hashes (own and parent) lead back to anvil's.
    assert hashes.to_upstream(out["hash"]) == H1
    assert hashes.to_upstream(out["parentHash"]) == H0
    unknown = "0x" + "99" * 32
    assert hashes.to_upstream(unknown) == unknown


def test_reorged_blocks_get_distinct_hashes_at_the_same_height() -> None:
    hashes = HashMap()
    a = rewrite_block(anvil_block(7, H1, H0), hashes)["hash"]
    b = rewrite_block(anvil_block(7, "0x" + "ee" * 32, H0), hashes)["hash"]
    assert a != b and a[:18] == b[:18]
    assert {hashes.to_upstream(a), hashes.to_upstream(b)} == {H1, "0x" + "ee" * 32}


def test_log_and_receipt_rewrite() -> None:
    hashes = HashMap()
    log = {
        "address": USD1_HEX.upper().replace("0X", "0x"),
        "blockHash": H1,
        "blockNumber": "0x5",
        "blockTimestamp": "0x69f18a5c",
        "removed": True,
        "topics": [],
        "data": "0x",
    }
    out = rewrite_log(log, hashes)
    assert out["address"] == USD1_HEX  # 20 bytes, lowercase, no 41
    assert out["blockHash"] == tron_hash(5, H1)
    assert out["removed"] is False and "blockTimestamp" not in out
    rec = rewrite_receipt(
        {"blockHash": H1, "blockNumber": "0x5", "logsBloom": "0x" + "ff" * 256, "logs": [log]}, hashes
    )
    assert rec["logsBloom"] == ZERO_BLOOM
    assert rec["blockHash"] == rec["logs"][0]["blockHash"] == tron_hash(5, H1)


def test_request_addresses_as_java_tron_accepts_them() -> None:
    assert upstream_address("41" + USD1_HEX[2:]) == USD1_HEX
    assert upstream_address("0x41" + USD1_HEX[2:].upper()) == USD1_HEX
    assert upstream_address(USD1_HEX[2:]) == USD1_HEX
    with pytest.raises(TronRpcError, match="invalid address"):
        upstream_address("TPFqcBAaaUMCSVRCqPaQ9QnzKhmuoLR6Rc")  # base58 is not accepted


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("0x10", "QUANTITY not supported, just support TAG as latest"),
        ("finalized", "TAG finalized not supported"),
        ("safe", "TAG safe not supported"),
        ("earliest", "TAG earliest not supported"),
        ("nonsense", "invalid block number"),
    ],
)
def test_state_reads_only_at_latest(tag: str, message: str) -> None:
    with pytest.raises(TronRpcError) as err:
        state_block("eth_getStorageAt", tag)
    assert (err.value.code, err.value.message) == (-32602, message)


def test_state_reads_at_latest_and_eip1898_object_run_at_latest() -> None:
    assert state_block("eth_call", None) == "latest"
    assert state_block("eth_getStorageAt", "latest") == "latest"
    assert state_block("eth_call", {"blockHash": H1}) == "latest"
    with pytest.raises(TronRpcError, match="invalid json request"):
        state_block("eth_call", {})
    with pytest.raises(TronRpcError, match="invalid block number"):
        state_block("eth_getStorageAt", {"blockHash": H1})


def test_block_tags() -> None:
    assert block_tag("finalized", 100, 19) == hex(81)
    assert block_tag("finalized", 3, 19) == "0x0"
    assert block_tag("latest", 100, 19) == "latest"
    assert block_tag("0x5", 100, 19) == "0x5"
    for tag in ("safe", "pending"):
        with pytest.raises(TronRpcError, match=f"TAG {tag} not supported"):
            block_tag(tag, 100, 19)


def test_logs_range_cap_as_in_the_code() -> None:
    hashes = HashMap()
    kw: dict[str, Any] = {"solid_depth": 19, "max_block_range": 5000, "hashes": hashes}
    # min(toBlock, head) - fromBlock > 5000 is refused: an inclusive span of 5001 blocks passes.
    ok = logs_filter({"fromBlock": hex(0), "toBlock": hex(5000), "address": "41" + USD1_HEX[2:]}, 10**6, **kw)
    assert ok["address"] == USD1_HEX
    with pytest.raises(TronRpcError, match=r"^exceed max block range: 5000$"):
        logs_filter({"fromBlock": hex(0), "toBlock": hex(5001)}, 10**6, **kw)
    # toBlock beyond the head counts only up to the head.
    logs_filter({"fromBlock": hex(0), "toBlock": hex(9999)}, 5000, **kw)
    with pytest.raises(TronRpcError, match="fromBlock <= toBlock"):
        logs_filter({"fromBlock": hex(9), "toBlock": hex(8)}, 100, **kw)
    with pytest.raises(TronRpcError, match="TAG safe not supported"):
        logs_filter({"fromBlock": "safe"}, 100, **kw)
    fin = logs_filter({"fromBlock": "finalized", "toBlock": "latest"}, 100, **kw)
    assert fin["fromBlock"] == hex(81)
    emitted = tron_hash(5, H1)
    hashes.to_tron(5, H1)
    assert logs_filter({"blockHash": emitted}, 100, **kw)["blockHash"] == H1
    with pytest.raises(TronRpcError, match="cannot specify both"):
        logs_filter({"blockHash": emitted, "fromBlock": "0x1"}, 100, **kw)
    with pytest.raises(TronRpcError, match="invalid hash value"):
        logs_filter({"blockHash": "0x12"}, 100, **kw)
