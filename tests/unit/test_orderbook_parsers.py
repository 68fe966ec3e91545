"""Order-book parsers on payloads in each exchange's documented REST depth format, plus every
failure shape: exchange error replies, missing fields, bad numbers, empty and crossed books."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from indexer.market.errors import VenueError
from indexer.market.orderbook import parse_book

# Shapes as documented by each exchange (GET /api/v3/depth, /products/{id}/book?level=2,
# /0/public/Depth, /api/v5/market/books, /v5/market/orderbook); USD1 pairs, values illustrative.
PAYLOADS: dict[str, Any] = {
    "binance": {
        "lastUpdateId": 1027024,
        "bids": [["0.99980000", "431.00000000"], ["0.99970000", "1500.00000000"], ["0.99000000", "9.0"]],
        "asks": [["0.99990000", "12.00000000"], ["1.00050000", "800.00000000"]],
    },
    "coinbase": {
        "sequence": 13051505638,
        "bids": [["0.9998", "431", 3], ["0.9997", "1500", 7], ["0.99", "9", 1]],
        "asks": [["0.9999", "12", 1], ["1.0005", "800", 2]],
        "auction_mode": False,
        "auction": None,
        "time": "2025-06-01T00:00:00.000000Z",
    },
    "kraken": {
        "error": [],
        "result": {
            "USD1USD": {
                "asks": [["0.99990", "12.000", 1748736000], ["1.00050", "800.000", 1748736000]],
                "bids": [
                    ["0.99980", "431.000", 1748736000],
                    ["0.99970", "1500.000", 1748736000],
                    ["0.99", "9", 1],
                ],
            }
        },
    },
    "okx": {
        "code": "0",
        "msg": "",
        "data": [
            {
                "asks": [["0.9999", "12", "0", "1"], ["1.0005", "800", "0", "2"]],
                "bids": [["0.9998", "431", "0", "3"], ["0.9997", "1500", "0", "7"], ["0.99", "9", "0", "1"]],
                "ts": "1748736000000",
            }
        ],
    },
    "bybit": {
        "retCode": 0,
        "retMsg": "OK",
        "result": {
            "s": "USD1USDT",
            "a": [["0.9999", "12"], ["1.0005", "800"]],
            "b": [["0.9998", "431"], ["0.9997", "1500"], ["0.99", "9"]],
            "ts": 1748736000000,
            "u": 18521288,
            "seq": 7961638724,
            "cts": 1748736000000,
        },
        "retExtInfo": {},
        "time": 1748736000001,
    },
}


def body(obj: Any) -> bytes:
    return orjson.dumps(obj)


@pytest.mark.parametrize("exchange", sorted(PAYLOADS))
def test_parse_each_exchange(exchange: str) -> None:
    book = parse_book(exchange, body(PAYLOADS[exchange]))
    assert [lv.price for lv in book.bids] == [Decimal("0.9998"), Decimal("0.9997"), Decimal("0.99")]
    assert [lv.qty for lv in book.bids][:2] == [Decimal(431), Decimal(1500)]
    assert [(lv.price, lv.qty) for lv in book.asks] == [
        (Decimal("0.9999"), Decimal(12)),
        (Decimal("1.0005"), Decimal(800)),
    ]


def test_levels_are_sorted_and_zero_quantities_dropped() -> None:
    payload = {
        "lastUpdateId": 1,
        "bids": [["0.98", "1"], ["0.99", "0"], ["0.995", "2"]],
        "asks": [["1.02", "1"], ["1.01", "3"]],
    }
    book = parse_book("binance", body(payload))
    assert [lv.price for lv in book.bids] == [Decimal("0.995"), Decimal("0.98")]
    assert [lv.price for lv in book.asks] == [Decimal("1.01"), Decimal("1.02")]


@pytest.mark.parametrize(
    ("exchange", "payload", "kind", "fragment"),
    [
        ("binance", {"code": -1121, "msg": "Invalid symbol."}, "exchange", "Invalid symbol"),
        ("binance", {"lastUpdateId": 1, "asks": [["1.0", "1"]]}, "malformed", "missing field 'bids'"),
        ("binance", {"lastUpdateId": 1, "bids": [["x", "1"]], "asks": []}, "malformed", "not a number"),
        ("binance", {"lastUpdateId": 1, "bids": [["1.0"]], "asks": []}, "malformed", "[price, quantity"),
        ("binance", {"lastUpdateId": 1, "bids": [["-1", "1"]], "asks": []}, "malformed", "invalid value"),
        ("binance", [1, 2], "malformed", "expected an object"),
        ("coinbase", {"message": "NotFound"}, "exchange", "NotFound"),
        ("kraken", {"error": ["EQuery:Unknown asset pair"]}, "exchange", "Unknown asset pair"),
        ("kraken", {"error": [], "result": {}}, "malformed", "expected one pair"),
        ("okx", {"code": "51001", "msg": "Instrument ID does not exist", "data": []}, "exchange", "51001"),
        ("okx", {"code": "0", "msg": "", "data": []}, "malformed", "exactly one book"),
        ("okx", {"msg": ""}, "malformed", "missing field 'code'"),
        ("bybit", {"retCode": 10001, "retMsg": "params error", "result": {}}, "exchange", "params error"),
        ("bybit", {"retCode": 0, "retMsg": "OK", "result": {"s": "USD1USDT", "a": []}}, "malformed", "'b'"),
    ],
)
def test_errors_are_typed(exchange: str, payload: Any, kind: str, fragment: str) -> None:
    with pytest.raises(VenueError) as info:
        parse_book(exchange, body(payload))
    assert info.value.kind == kind
    assert fragment in str(info.value)


def test_not_json() -> None:
    with pytest.raises(VenueError) as info:
        parse_book("okx", b"<html>502 Bad Gateway</html>")
    assert info.value.kind == "malformed"


@pytest.mark.parametrize("exchange", sorted(PAYLOADS))
def test_empty_book(exchange: str) -> None:
    payload = orjson.loads(body(PAYLOADS[exchange]))
    _clear(exchange, payload)
    with pytest.raises(VenueError) as info:
        parse_book(exchange, body(payload))
    assert info.value.kind == "empty"


def test_one_sided_book_is_empty() -> None:
    payload = {"lastUpdateId": 1, "bids": [["0.99", "5"]], "asks": []}
    with pytest.raises(VenueError, match="no asks") as info:
        parse_book("binance", body(payload))
    assert info.value.kind == "empty"


@pytest.mark.parametrize("exchange", ["binance", "okx"])
def test_crossed_book(exchange: str) -> None:
    payload = orjson.loads(body(PAYLOADS[exchange]))
    if exchange == "binance":
        payload["bids"].insert(0, ["1.0010", "5"])
    else:
        payload["data"][0]["bids"].insert(0, ["1.0010", "5", "0", "1"])
    with pytest.raises(VenueError, match="crossed") as info:
        parse_book(exchange, body(payload))
    assert info.value.kind == "crossed"


def _clear(exchange: str, payload: Any) -> None:
    if exchange in ("binance", "coinbase"):
        payload["bids"], payload["asks"] = [], []
    elif exchange == "kraken":
        payload["result"]["USD1USD"] = {"bids": [], "asks": []}
    elif exchange == "okx":
        payload["data"][0]["bids"], payload["data"][0]["asks"] = [], []
    else:
        payload["result"]["a"], payload["result"]["b"] = [], []
