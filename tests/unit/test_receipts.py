"""The receipts completeness check's pure part (indexer/chains/receipts.py) on java-tron's real
Nile replies (tests/fixtures/tron/): block 0x3fe1ca0's receipts hold the log its eth_getLogs
returned; other contracts' and other topics' logs are not counted; another block is refused."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from indexer.chains.receipts import OtherBlock, asked_logs
from indexer.errors import MalformedReply

FIXTURES = Path(__file__).parents[1] / "fixtures" / "tron"
BLOCK = "0x0000000003fe1ca05cf728c92ee79f5f2758c3e4e4ea88501826726880e8b81c"
CONTRACT = "0x9ff8fc48fb114ccd5bbdc24a86f0c73082f08825"
TOPIC = "0xc66625d03b4a832d8245f0df593e32e0fbbbad96d4aa45440aa1535b80983083"


def reply(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())[0]["response"]["result"]


def test_the_receipts_hold_the_log_eth_getlogs_returned() -> None:
    receipts, logs = reply("nile_eth_getBlockReceipts.json"), reply("nile_eth_getLogs.json")
    assert all(set(r["logsBloom"][2:]) <= {"0", "."} for r in receipts)  # zero blooms ("0x0000...0000")
    got = asked_logs(receipts, BLOCK, [CONTRACT], [TOPIC])
    assert len(got) == len(logs) == 1
    keys = ("address", "topics", "transactionHash", "logIndex", "blockHash")
    assert {k: got[0][k] for k in keys} == {k: logs[0][k] for k in keys}


def test_other_contracts_and_topics_are_not_counted() -> None:
    receipts = reply("nile_eth_getBlockReceipts.json")
    assert asked_logs(receipts, BLOCK, ["0x" + "11" * 20], [TOPIC]) == []
    assert asked_logs(receipts, BLOCK, [CONTRACT], ["0x" + "22" * 32]) == []
    assert len(asked_logs(receipts, BLOCK, [CONTRACT.upper().replace("0X", "0x")], [TOPIC.upper()])) == 1


def test_receipts_of_another_block_are_refused() -> None:
    receipts = reply("nile_eth_getBlockReceipts.json")
    with pytest.raises(OtherBlock, match="receipt 0"):
        asked_logs(receipts, "0x" + "ab" * 32, [CONTRACT], [TOPIC])
    moved = copy.deepcopy(receipts)
    moved[0]["logs"][0]["blockHash"] = "0x" + "cd" * 32
    with pytest.raises(OtherBlock, match="a log of receipt 0"):
        asked_logs(moved, BLOCK, [CONTRACT], [TOPIC])


@pytest.mark.parametrize(
    "bad",
    [None, {"logs": []}, [{"blockHash": BLOCK}], [{"blockHash": BLOCK, "logs": [{"address": CONTRACT}]}]],
)
def test_malformed_replies_are_named(bad: Any) -> None:
    with pytest.raises(MalformedReply, match="eth_getBlockReceipts"):
        asked_logs(bad, BLOCK, [CONTRACT], [TOPIC])


def test_an_empty_block_has_no_logs() -> None:
    assert asked_logs([], BLOCK, [CONTRACT], [TOPIC]) == []
