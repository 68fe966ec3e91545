"""A java-tron-dialect JSON-RPC front over anvil, for end-to-end tests of `dialect: tron`.

No java-tron node can run on the test machines, so this front makes an anvil look like the
java-tron `/jsonrpc` endpoint as documented in /work/shared/realdata/tron/FACTS.md (sources there):

- `logsBloom` is 256 zero bytes in block headers and receipts (`receiptsRoot`, `sha3Uncles`,
  `mixHash` 32 zero bytes; `stateRoot` `"0x"`; `difficulty`, `totalDifficulty`, `baseFeePerGas`
  `0x0`; `uncles` `[]`).
- Log `address` fields are 20-byte lowercase hex without the `41` prefix; `removed` is always
  false and logs carry no `blockTimestamp` (the 2025-05 code's LogFilterElement has none).
  Request addresses may be 20-byte or 21-byte (`41...`) hex, with or without `0x`; base58 `T...`
  is refused (`-32602 invalid address`), as java-tron does.
- Block hashes start with the block height (8 bytes, big-endian) like a Tron BlockId: the front
  rewrites anvil's hash `h` at height `n` to `n || h[8:]` everywhere it emits one (`hash`,
  `parentHash`, `blockHash` of transactions, receipts and logs) and keeps the reverse map, so
  lookups by hash (`eth_getBlockByHash`, `eth_getBlockReceipts`, `eth_getLogs` `blockHash`) and
  parentHash links keep working, across reorgs too.
- `eth_call`, `eth_getStorageAt`, `eth_getBalance`, `eth_getCode` run only at `latest`: a number
  gives `-32602 QUANTITY not supported, just support TAG as latest`, another tag
  `-32602 TAG <tag> not supported`; `eth_call`'s EIP-1898 object is accepted but executes at latest.
- `finalized` is the solidified block `solid_depth` blocks behind the head (anvil's own
  `finalized` is ignored); `safe` and `pending` give `-32602 TAG safe not supported`.
- Timestamps are seconds (anvil's already are; passed through unchanged).
- `eth_getLogs`: `min(toBlock, head) - fromBlock > max_block_range` gives
  `-32602 exceed max block range: <N>` (so an inclusive span of N + 1 blocks passes, as in the
  code), more than `max_results` logs `-32005 query returned more than <N> results`.
- A batch of more than `max_batch` (100) calls: one `-32005 Batch size <n> ...` error (only the
  `Batch size ` prefix is documented; the rest of the text is this front's).
- Rate limiting on demand (`rate_limit_next = k`: the next k HTTP requests; `rate_limit_every =
  k`: every k-th HTTP request): HTTP 200 with the
  non-JSON-RPC body `{"Error":"class java.lang.IllegalAccessException : lack of computing resources"}`.

The rewriting functions are pure (tests/unit/test_tron_front.py); `TronFront` is the aiohttp shell.
"""

from __future__ import annotations

import re
from collections import Counter
from types import TracebackType
from typing import Any

import aiohttp
import orjson
from aiohttp import web

JsonObj = dict[str, Any]

ZERO_BLOOM = "0x" + "00" * 256
ZERO_WORD = "0x" + "00" * 32
RATE_LIMIT_BODY: JsonObj = {"Error": "class java.lang.IllegalAccessException : lack of computing resources"}
MAX_BLOCK_RANGE = 5000
MAX_RESULTS = 10000
MAX_BATCH = 100
STATE_METHODS = {"eth_call": 1, "eth_getBalance": 1, "eth_getCode": 1, "eth_getStorageAt": 2}

_HASH_RE = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
_HEX20_RE = re.compile(r"^(0x)?[0-9a-fA-F]{40}$")
_HEX21_RE = re.compile(r"^(0x)?41[0-9a-fA-F]{40}$")
_QUANTITY_RE = re.compile(r"^0x[0-9a-fA-F]+$|^[0-9]+$")


class TronRpcError(Exception):
    """A call the front answers with a java-tron JSON-RPC error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def rpc_error(id_: Any, code: int, message: str) -> JsonObj:
    return {"jsonrpc": "2.0", "id": id_, "error": {"code": code, "message": message, "data": "{}"}}


def tron_hash(number: int, upstream: str) -> str:
    """A Tron-style BlockId for anvil's block `upstream` at `number`: the height in the first 8
    bytes, the rest of anvil's hash after them."""
    if not _HASH_RE.match(upstream):
        raise ValueError(f"not a 32-byte block hash: {upstream!r:.80}")
    return "0x" + f"{number:016x}" + upstream.removeprefix("0x")[16:].lower()


class HashMap:
    """Anvil hash <-> Tron-style hash, remembered in both directions as the front emits them."""

    def __init__(self) -> None:
        self._up: dict[str, str] = {}
        self._tron: dict[str, str] = {}

    def to_tron(self, number: int, upstream: str) -> str:
        out = tron_hash(number, upstream)
        self._up[out] = upstream.lower()
        self._tron[upstream.lower()] = out
        return out

    def to_upstream(self, value: str) -> str:
        """The anvil hash of a Tron-style hash the front emitted; an unknown hash unchanged (anvil
        then knows no such block, as java-tron would not)."""
        return self._up.get(value.lower(), value)

    def tron_of(self, upstream: str) -> str:
        """The Tron-style hash the front emitted for anvil's `upstream` (KeyError if never emitted)."""
        return self._tron[upstream.lower()]

    def __len__(self) -> int:
        return len(self._up)


def _number(value: Any) -> int:
    return int(str(value), 16)


def rewrite_log(log: JsonObj, hashes: HashMap) -> JsonObj:
    out = {k: v for k, v in log.items() if k != "blockTimestamp"}
    if isinstance(log.get("address"), str):
        out["address"] = "0x" + log["address"].removeprefix("0x")[-40:].lower()
    if isinstance(log.get("blockHash"), str) and log.get("blockNumber") is not None:
        out["blockHash"] = hashes.to_tron(_number(log["blockNumber"]), log["blockHash"])
    out["removed"] = False
    return out


def rewrite_receipt(receipt: JsonObj, hashes: HashMap) -> JsonObj:
    out = dict(receipt)
    out["logsBloom"] = ZERO_BLOOM
    if isinstance(receipt.get("blockHash"), str) and receipt.get("blockNumber") is not None:
        out["blockHash"] = hashes.to_tron(_number(receipt["blockNumber"]), receipt["blockHash"])
    if isinstance(receipt.get("logs"), list):
        out["logs"] = [rewrite_log(lg, hashes) if isinstance(lg, dict) else lg for lg in receipt["logs"]]
    return out


def rewrite_tx(tx: JsonObj, hashes: HashMap) -> JsonObj:
    out = dict(tx)
    if isinstance(tx.get("blockHash"), str) and tx.get("blockNumber") is not None:
        out["blockHash"] = hashes.to_tron(_number(tx["blockNumber"]), tx["blockHash"])
    return out


def rewrite_block(block: JsonObj, hashes: HashMap) -> JsonObj:
    """A header (with transaction hashes or objects) the way java-tron serves one."""
    number = _number(block["number"])
    out = dict(block)
    out["hash"] = hashes.to_tron(number, block["hash"])
    if number > 0:
        out["parentHash"] = hashes.to_tron(number - 1, block["parentHash"])
    out["logsBloom"] = ZERO_BLOOM
    out["receiptsRoot"] = out["sha3Uncles"] = out["mixHash"] = ZERO_WORD
    out["stateRoot"] = "0x"
    out["difficulty"] = out["totalDifficulty"] = out["baseFeePerGas"] = "0x0"
    out["uncles"] = []
    out.pop("withdrawals", None)
    out.pop("withdrawalsRoot", None)
    txs = block.get("transactions")
    if isinstance(txs, list):
        out["transactions"] = [rewrite_tx(t, hashes) if isinstance(t, dict) else t for t in txs]
    return out


def rewrite_result(method: str, result: Any, hashes: HashMap) -> Any:
    """A successful anvil result in java-tron's shape (unchanged for methods without a difference)."""
    if result is None:
        return None
    match method:
        case "eth_getBlockByNumber" | "eth_getBlockByHash":
            return rewrite_block(result, hashes) if isinstance(result, dict) else result
        case "eth_getLogs":
            return [rewrite_log(lg, hashes) if isinstance(lg, dict) else lg for lg in result]
        case "eth_getBlockReceipts":
            return [rewrite_receipt(r, hashes) if isinstance(r, dict) else r for r in result]
        case "eth_getTransactionReceipt":
            return rewrite_receipt(result, hashes) if isinstance(result, dict) else result
        case "eth_getTransactionByHash":
            return rewrite_tx(result, hashes) if isinstance(result, dict) else result
        case _:
            return result


def upstream_address(value: Any) -> str:
    """A request address as java-tron accepts it (20-byte or 21-byte `41...` hex, `0x` optional)
    -> anvil's `0x` + 40 hex. Base58 and anything else: `-32602 invalid address`."""
    if isinstance(value, str):
        if _HEX21_RE.match(value):
            return "0x" + value.removeprefix("0x")[2:].lower()
        if _HEX20_RE.match(value):
            return "0x" + value.removeprefix("0x").lower()
    raise TronRpcError(-32602, f"invalid address: {str(value)[:80]}")


def block_tag(value: Any, head: int, solid_depth: int) -> Any:
    """A block parameter of a block/logs query: `finalized` -> the solidified height (hex);
    `safe`/`pending` refused; `latest`, `earliest` and numbers unchanged."""
    if value in ("safe", "pending"):
        raise TronRpcError(-32602, f"TAG {value} not supported")
    if value == "finalized":
        return hex(max(0, head - solid_depth))
    if value in ("latest", "earliest") or (isinstance(value, str) and _QUANTITY_RE.match(value)):
        return value
    raise TronRpcError(-32602, "invalid block number")


def state_block(method: str, value: Any) -> str:
    """The block parameter of a state read: only `latest` (or none, or for eth_call an EIP-1898
    object, which still runs at latest) passes; the call then runs at `latest`."""
    if value is None or value == "latest":
        return "latest"
    if isinstance(value, dict) and method == "eth_call":
        if "blockNumber" not in value and "blockHash" not in value:
            raise TronRpcError(-32600, "invalid json request")
        return "latest"
    if isinstance(value, str) and value in ("earliest", "pending", "finalized", "safe"):
        raise TronRpcError(-32602, f"TAG {value} not supported")
    if isinstance(value, str) and _QUANTITY_RE.match(value):
        raise TronRpcError(-32602, "QUANTITY not supported, just support TAG as latest")
    raise TronRpcError(-32602, "invalid block number")


def _height(value: Any, head: int) -> int:
    if value == "latest":
        return head
    if value == "earliest":
        return 0
    return int(str(value), 16) if str(value).startswith("0x") else int(str(value))


def logs_filter(flt: Any, head: int, *, solid_depth: int, max_block_range: int, hashes: HashMap) -> JsonObj:
    """An eth_getLogs filter checked as java-tron checks it and rewritten for anvil."""
    if not isinstance(flt, dict):
        raise TronRpcError(-32602, "invalid filter")
    out = dict(flt)
    if flt.get("blockHash") is not None:
        if flt.get("fromBlock") is not None or flt.get("toBlock") is not None:
            raise TronRpcError(
                -32602, "cannot specify both BlockHash and FromBlock/ToBlock, choose one or the other"
            )
        if not isinstance(flt["blockHash"], str) or not _HASH_RE.match(flt["blockHash"]):
            raise TronRpcError(-32602, "invalid hash value")
        out["blockHash"] = hashes.to_upstream(flt["blockHash"])
    else:
        lo = block_tag(flt.get("fromBlock", "latest"), head, solid_depth)
        hi = block_tag(flt.get("toBlock", "latest"), head, solid_depth)
        out["fromBlock"], out["toBlock"] = lo, hi
        frm, to = _height(lo, head), _height(hi, head)
        if frm > to:
            raise TronRpcError(-32602, "please verify: fromBlock <= toBlock")
        if min(to, head) - frm > max_block_range:
            raise TronRpcError(-32602, f"exceed max block range: {max_block_range}")
    addr = flt.get("address")
    if isinstance(addr, list):
        out["address"] = [upstream_address(a) for a in addr]
    elif addr is not None:
        out["address"] = upstream_address(addr)
    return out


class TronFront:
    """aiohttp server with java-tron's JSON-RPC differences in front of `upstream` (anvil)."""

    def __init__(
        self,
        upstream: str,
        *,
        solid_depth: int = 6,
        max_block_range: int = MAX_BLOCK_RANGE,
        max_results: int = MAX_RESULTS,
        max_batch: int = MAX_BATCH,
        host: str = "127.0.0.1",
    ) -> None:
        self.upstream = upstream
        self.solid_depth = solid_depth
        self.max_block_range = max_block_range
        self.max_results = max_results
        self.max_batch = max_batch
        self.rate_limit_next = 0
        self.rate_limit_every: int | None = None
        self.http_requests = 0
        self.hashes = HashMap()
        self.calls: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()  # by error message (the number in it stripped)
        self.host = host
        self.port = 0
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("tron front is not started")
        return f"http://{self.host}:{self.port}/jsonrpc"

    async def __aenter__(self) -> TronFront:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        app = web.Application(client_max_size=16 * 1024**2)
        app.router.add_post("/jsonrpc", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def solidified(self, head: int) -> int:
        return max(0, head - self.solid_depth)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.http_requests += 1
        every = self.rate_limit_every
        if self.rate_limit_next > 0 or (every and self.http_requests % every == 0):
            self.rate_limit_next = max(0, self.rate_limit_next - 1)
            self.refused["rate limit"] += 1
            return web.Response(
                status=200, body=orjson.dumps(RATE_LIMIT_BODY), content_type="application/json"
            )
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _json(rpc_error(None, -32700, "parse error"))
        items: list[Any] = payload if isinstance(payload, list) else [payload]
        if len(items) > self.max_batch:
            self.refused["batch size"] += 1
            return _json(
                rpc_error(None, -32005, f"Batch size {len(items)} exceeds the limit of {self.max_batch}")
            )
        replies = await self._process(items)
        return _json(replies if isinstance(payload, list) else replies[0])

    async def _process(self, items: list[Any]) -> list[JsonObj]:
        replies: list[JsonObj | None] = [None] * len(items)
        forward: list[tuple[int, JsonObj]] = []
        head: int | None = None
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("method"), str):
                replies[i] = rpc_error(None, -32600, "invalid json request")
                continue
            self.calls[item["method"]] += 1
            if head is None and item["method"] in (
                "eth_getLogs",
                "eth_getBlockByNumber",
                "eth_getBlockReceipts",
            ):
                head = await self._head()
            try:
                forward.append((i, self._request(item, head if head is not None else 0)))
            except TronRpcError as exc:
                self.refused[re.sub(r"\d+", "N", exc.message)] += 1
                replies[i] = rpc_error(item.get("id"), exc.code, exc.message)
        if forward:
            results = await self._upstream([{**it, "id": n} for n, (_, it) in enumerate(forward)])
            by_id = {r.get("id"): r for r in results if isinstance(r, dict)}
            for n, (i, item) in enumerate(forward):
                reply = by_id.get(n) or rpc_error(None, -32000, "no reply")
                reply = {**reply, "id": item.get("id")}
                if "result" in reply:
                    result = reply["result"]
                    if (
                        item["method"] == "eth_getLogs"
                        and isinstance(result, list)
                        and len(result) > self.max_results
                    ):
                        self.refused["query returned more than N results"] += 1
                        reply = rpc_error(
                            item.get("id"), -32005, f"query returned more than {self.max_results} results"
                        )
                    else:
                        reply["result"] = rewrite_result(item["method"], result, self.hashes)
                replies[i] = reply
        return [r if r is not None else rpc_error(None, -32000, "no reply") for r in replies]

    def _request(self, item: JsonObj, head: int) -> JsonObj:
        """The call as anvil should see it, or TronRpcError as java-tron would answer it."""
        method = item["method"]
        params = list(item.get("params") or [])
        if method in ("eth_getBlockByNumber", "eth_getBlockReceipts") and params:
            p0 = params[0]
            if method == "eth_getBlockReceipts" and isinstance(p0, str) and _HASH_RE.match(p0):
                params[0] = self.hashes.to_upstream(p0)
            else:
                params[0] = block_tag(p0, head, self.solid_depth)
        elif method == "eth_getBlockByHash" and params:
            if not isinstance(params[0], str) or not _HASH_RE.match(params[0]):
                raise TronRpcError(-32602, "invalid hash value")
            params[0] = self.hashes.to_upstream(params[0])
        elif method == "eth_getLogs" and params:
            params[0] = logs_filter(
                params[0],
                head,
                solid_depth=self.solid_depth,
                max_block_range=self.max_block_range,
                hashes=self.hashes,
            )
        elif method in STATE_METHODS:
            at = STATE_METHODS[method]
            block = params[at] if len(params) > at else None
            params = [*params[:at], state_block(method, block)]
            if method == "eth_call" and isinstance(params[0], dict) and "to" in params[0]:
                params[0] = {**params[0], "to": upstream_address(params[0]["to"])}
            elif method != "eth_call":
                params[0] = upstream_address(params[0])
        return {**item, "params": params}

    async def _head(self) -> int:
        (reply,) = await self._upstream(
            [{"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber", "params": []}]
        )
        return int(reply["result"], 16)

    async def _upstream(self, items: list[JsonObj]) -> list[Any]:
        assert self._session is not None
        async with self._session.post(
            self.upstream, data=orjson.dumps(items), headers={"Content-Type": "application/json"}
        ) as resp:
            data = orjson.loads(await resp.read())
        return data if isinstance(data, list) else [data]


def _json(obj: Any) -> web.Response:
    return web.Response(status=200, body=orjson.dumps(obj), content_type="application/json")
