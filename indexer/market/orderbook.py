"""Public order-book snapshots: aiohttp fetch + pure parsers for each exchange's depth JSON.

Formats (REST, public, no key):

* binance  `GET /api/v3/depth?symbol=USD1USDT&limit=N` ->
  `{"lastUpdateId": 1, "bids": [["0.9999", "120.5"], ...], "asks": [...]}`
* coinbase `GET /products/USD1-USD/book?level=2` ->
  `{"sequence": 1, "bids": [["0.9999", "120.5", 3], ...], "asks": [...], "time": "..."}`
* kraken   `GET /0/public/Depth?pair=USD1USD` ->
  `{"error": [], "result": {"USD1USD": {"bids": [["0.9999", "120.5", 1700000000], ...], "asks": [...]}}}`
* okx      `GET /api/v5/market/books?instId=USD1-USDT&sz=N` ->
  `{"code": "0", "msg": "", "data": [{"bids": [["0.9999", "120.5", "0", "2"]], "asks": [...], "ts": "..."}]}`
* bybit    `GET /v5/market/orderbook?category=spot&symbol=USD1USDT` ->
  `{"retCode": 0, "retMsg": "OK", "result": {"s": "USD1USDT", "b": [["0.9999", "120.5"]], "a": [...]}}`

Every level is `[price, quantity, ...]` with price in quote per token and quantity in tokens.
A parser raises `VenueError("malformed" | "exchange", ...)`; `check_book` rejects empty and
crossed books; `fetch_order_book` adds `http`, `timeout` and `connection` failures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import aiohttp
import orjson

from indexer.http_json import read_capped
from indexer.market.depth import Level, OrderBook
from indexer.market.errors import VenueError

Exchange = Literal["binance", "coinbase", "kraken", "okx", "bybit"]
MAX_BODY = 8 * 1024 * 1024


def _num(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise VenueError("malformed", f"{what}: expected a number, got {type(value).__name__}")
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise VenueError("malformed", f"{what}: not a number: {value!r}") from None
    if not d.is_finite() or d < 0:
        raise VenueError("malformed", f"{what}: invalid value {value!r}")
    return d


def _levels(raw: Any, where: str) -> list[Level]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise VenueError("malformed", f"{where}: expected a list of levels")
    out: list[Level] = []
    for i, lv in enumerate(raw):
        if not isinstance(lv, list | tuple) or len(lv) < 2:
            raise VenueError("malformed", f"{where}[{i}]: expected [price, quantity, ...]")
        price, qty = _num(lv[0], f"{where}[{i}].price"), _num(lv[1], f"{where}[{i}].quantity")
        if price == 0:
            raise VenueError("malformed", f"{where}[{i}]: zero price")
        if qty > 0:
            out.append(Level(price, qty))
    return out


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise VenueError("malformed", f"{where}: expected an object")
    return value


def _field(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise VenueError("malformed", f"{where}: missing field {key!r}")
    return obj[key]


def parse_binance(payload: Any) -> OrderBook:
    obj = _obj(payload, "binance")
    if "code" in obj and "bids" not in obj:
        raise VenueError("exchange", f"binance error {obj.get('code')}: {obj.get('msg')}")
    return OrderBook.from_levels(
        _levels(_field(obj, "bids", "binance"), "binance.bids"),
        _levels(_field(obj, "asks", "binance"), "binance.asks"),
    )


def parse_coinbase(payload: Any) -> OrderBook:
    obj = _obj(payload, "coinbase")
    if "message" in obj and "bids" not in obj:
        raise VenueError("exchange", f"coinbase error: {obj['message']}")
    return OrderBook.from_levels(
        _levels(_field(obj, "bids", "coinbase"), "coinbase.bids"),
        _levels(_field(obj, "asks", "coinbase"), "coinbase.asks"),
    )


def parse_kraken(payload: Any) -> OrderBook:
    obj = _obj(payload, "kraken")
    errors = obj.get("error") or []
    if errors:
        raise VenueError("exchange", f"kraken error: {'; '.join(map(str, errors))}")
    result = _obj(_field(obj, "result", "kraken"), "kraken.result")
    books = [(k, v) for k, v in result.items() if isinstance(v, dict) and ("bids" in v or "asks" in v)]
    if len(books) != 1:
        raise VenueError("malformed", f"kraken.result: expected one pair, found {len(books)}")
    pair, book = books[0]
    where = f"kraken.result.{pair}"
    return OrderBook.from_levels(
        _levels(_field(book, "bids", where), f"{where}.bids"),
        _levels(_field(book, "asks", where), f"{where}.asks"),
    )


def parse_okx(payload: Any) -> OrderBook:
    obj = _obj(payload, "okx")
    code = str(_field(obj, "code", "okx"))
    if code != "0":
        raise VenueError("exchange", f"okx error {code}: {obj.get('msg')}")
    data = _field(obj, "data", "okx")
    if not isinstance(data, list) or len(data) != 1:
        raise VenueError("malformed", "okx.data: expected exactly one book")
    book = _obj(data[0], "okx.data[0]")
    return OrderBook.from_levels(
        _levels(_field(book, "bids", "okx.data[0]"), "okx.data[0].bids"),
        _levels(_field(book, "asks", "okx.data[0]"), "okx.data[0].asks"),
    )


def parse_bybit(payload: Any) -> OrderBook:
    obj = _obj(payload, "bybit")
    code = _field(obj, "retCode", "bybit")
    if code != 0:
        raise VenueError("exchange", f"bybit error {code}: {obj.get('retMsg')}")
    result = _obj(_field(obj, "result", "bybit"), "bybit.result")
    return OrderBook.from_levels(
        _levels(_field(result, "b", "bybit.result"), "bybit.result.b"),
        _levels(_field(result, "a", "bybit.result"), "bybit.result.a"),
    )


PARSERS: dict[str, Callable[[Any], OrderBook]] = {
    "binance": parse_binance,
    "coinbase": parse_coinbase,
    "kraken": parse_kraken,
    "okx": parse_okx,
    "bybit": parse_bybit,
}


def check_book(book: OrderBook) -> OrderBook:
    """A usable book has both sides and best bid < best ask."""
    if not book.bids and not book.asks:
        raise VenueError("empty", "order book is empty")
    if not book.bids or not book.asks:
        raise VenueError("empty", f"order book has no {'bids' if not book.bids else 'asks'}")
    if book.crossed:
        raise VenueError(
            "crossed", f"best bid {book.bids[0].price} >= best ask {book.asks[0].price}: crossed book"
        )
    return book


def parse_book(exchange: str, body: bytes) -> OrderBook:
    """Bytes of a depth reply -> a checked OrderBook (pure)."""
    try:
        parser = PARSERS[exchange]
    except KeyError:
        raise VenueError("malformed", f"unknown exchange {exchange!r}") from None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise VenueError("malformed", f"{exchange}: reply is not JSON ({exc})") from None
    return check_book(parser(payload))


async def fetch_order_book(
    session: aiohttp.ClientSession, exchange: str, url: str, timeout_s: float
) -> OrderBook:
    """GET the depth snapshot and parse it; every failure is a `VenueError`."""
    try:
        async with asyncio.timeout(timeout_s):
            async with session.get(url, headers={"Accept": "application/json"}) as resp:
                body = await read_capped(resp.content, MAX_BODY)
                if resp.status != 200:
                    snippet = body[:200].decode("utf-8", "replace")
                    raise VenueError("http", f"{exchange}: HTTP {resp.status}: {snippet}")
    except TimeoutError:
        raise VenueError("timeout", f"{exchange}: no reply within {timeout_s:g}s") from None
    except aiohttp.ClientError as exc:
        raise VenueError("connection", f"{exchange}: {type(exc).__name__}: {exc}") from None
    if len(body) > MAX_BODY:
        raise VenueError("malformed", f"{exchange}: reply larger than {MAX_BODY} bytes")
    return parse_book(exchange, body)
