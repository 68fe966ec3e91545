"""A small Tron-dialect JSON-RPC front over anvil (no java-tron node runs on these machines).

It reproduces the documented java-tron differences (realdata/tron/FACTS.md) that the indexer must
cope with, on top of anvil's real chain:

- block hashes start with the height (the BlockId: 8 bytes of big-endian height, then the last 24
  bytes of anvil's hash), in headers (`hash`, `parentHash`), logs and receipts; requests naming a
  block hash are translated back;
- `logsBloom` of blocks and receipts is all zeros;
- `eth_call`, `eth_getStorageAt`, `eth_getCode`, `eth_getBalance` run at `latest` only: a block
  number is `-32602 QUANTITY not supported, just support TAG as latest`, another tag
  `-32602 TAG [...] not supported`, an EIP-1898 object is accepted and run at `latest`;
- `safe` and `pending` block tags are refused (`-32602 TAG safe not supported`);
- `eth_getLogs` spans above `max_range` are `-32602 exceed max block range: N`; more than
  `max_results` results are `-32005 query returned more than N results`;
- every `rate_limit_every`-th HTTP request is answered HTTP 200 with java-tron's non-JSON-RPC
  body `{"Error": "class java.lang.IllegalAccessException : lack of computing resources"}`.

Log addresses are already 20-byte hex on anvil, `removed` is always false there for the logs the
indexer reads, and timestamps are seconds, as on Tron. Not reproduced: `eth_chainId` from the
genesis hash, transaction hashes (left as anvil's).
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web

from indexer.devnet.faultproxy import FaultProxy, JsonObj, rpc_error

ZERO_BLOOM = "0x" + "00" * 256
RATE_LIMIT_BODY = {"Error": "class java.lang.IllegalAccessException : lack of computing resources"}
LATEST_ONLY = {"eth_call": 2, "eth_getStorageAt": 3, "eth_getCode": 2, "eth_getBalance": 2}
_QUANTITY = re.compile(r"0x[0-9a-fA-F]+")


class TronFront(FaultProxy):
    def __init__(
        self,
        upstream: str,
        *,
        max_range: int = 5000,
        max_results: int = 10_000,
        rate_limit_every: int | None = None,
    ) -> None:
        super().__init__(upstream)
        self.max_range = max_range
        self.max_logs_results = max_results  # FaultProxy's -32005 reply is java-tron's message
        self.rate_limit_every = rate_limit_every
        self.refused: dict[str, int] = {}
        self._to_anvil: dict[str, str] = {}
        self._to_tron: dict[str, str] = {}

    def tron_hash(self, anvil_hash: str, number: int) -> str:
        """The Tron-style hash of an anvil block: its height in the first 8 bytes."""
        got = "0x" + f"{number:016x}" + anvil_hash[18:].lower()
        self._to_anvil[got] = anvil_hash.lower()
        self._to_tron[anvil_hash.lower()] = got
        return got

    def shown(self, anvil_hash: str) -> str:
        """The hash this front gave out for an anvil block hash (KeyError if never given)."""
        return self._to_tron[anvil_hash.lower()]

    def _anvil(self, value: Any) -> Any:
        return self._to_anvil.get(value.lower(), value) if isinstance(value, str) else value

    def _refuse(self, kind: str, item: JsonObj, code: int, message: str) -> JsonObj:
        self.refused[kind] = self.refused.get(kind, 0) + 1
        self._count_fault(kind, [str(item.get("method"))])
        return rpc_error(item.get("id"), code, message)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.rate_limit_every and (self.http_requests + 1) % self.rate_limit_every == 0:
            self.http_requests += 1
            self._count_fault("tron_rate_limit", ["*"])
            return web.Response(
                status=200, body=orjson.dumps(RATE_LIMIT_BODY), content_type="application/json"
            )
        return await super()._handle(request)

    async def _check(self, item: JsonObj) -> JsonObj | None:
        """The java-tron refusal of `item`, or None (then `item` may have been rewritten)."""
        method, params = item.get("method"), item.get("params")
        if not isinstance(params, list):
            return None
        if method in LATEST_ONLY and len(params) >= LATEST_ONLY[str(method)]:
            at = params[LATEST_ONLY[str(method)] - 1]
            if isinstance(at, dict):  # EIP-1898: accepted, run against the latest state anyway
                params[LATEST_ONLY[str(method)] - 1] = "latest"
            elif isinstance(at, str) and _QUANTITY.fullmatch(at):
                return self._refuse(
                    "not_latest", item, -32602, "QUANTITY not supported, just support TAG as latest"
                )
            elif at != "latest":
                return self._refuse("not_latest", item, -32602, f"TAG {at} not supported")
        if method in ("eth_getBlockByHash", "eth_getBlockReceipts") and params:
            params[0] = self._anvil(params[0])
        if method == "eth_getLogs" and params and isinstance(params[0], dict) and "blockHash" in params[0]:
            params[0] = {**params[0], "blockHash": self._anvil(params[0]["blockHash"])}
        if method == "eth_getBlockByNumber" and params and params[0] in ("safe", "pending"):
            return self._refuse("tag", item, -32602, f"TAG {params[0]} not supported")
        if method == "eth_getLogs":
            span = await self._logs_span(item)
            if span is not None and span - 1 > self.max_range:
                return self._refuse("range", item, -32602, f"exceed max block range: {self.max_range}")
        return None

    async def _process(self, items: list[Any]) -> list[JsonObj]:
        replies: list[JsonObj | None] = [None] * len(items)
        forward: list[tuple[int, Any]] = []
        for i, item in enumerate(items):
            refused = await self._check(item) if isinstance(item, dict) else None
            if refused is not None:
                replies[i] = refused
            else:
                forward.append((i, item))
        if forward:
            got = await super()._process([item for _, item in forward])
            for (i, item), reply in zip(forward, got, strict=True):
                replies[i] = self._tronify(item.get("method") if isinstance(item, dict) else None, reply)
        return [r if r is not None else rpc_error(None, -32603, "no reply") for r in replies]

    def _tronify(self, method: Any, reply: JsonObj) -> JsonObj:
        """java-tron's height-prefixed hashes and zero blooms on blocks, logs and receipts."""
        result = reply.get("result")
        if method in ("eth_getBlockByNumber", "eth_getBlockByHash") and isinstance(result, dict):
            return {**reply, "result": self._block(result)}
        if method == "eth_getLogs" and isinstance(result, list):
            return {**reply, "result": [self._tron_log(lg) for lg in result]}
        if method == "eth_getBlockReceipts" and isinstance(result, list):
            return {**reply, "result": [self._receipt(r) for r in result]}
        if method == "eth_getTransactionReceipt" and isinstance(result, dict):
            return {**reply, "result": self._receipt(result)}
        return reply

    def _block(self, b: dict[str, Any]) -> dict[str, Any]:
        n = int(b["number"], 16)
        parent = self.tron_hash(b["parentHash"], n - 1) if n > 0 else b["parentHash"]
        return {**b, "hash": self.tron_hash(b["hash"], n), "parentHash": parent, "logsBloom": ZERO_BLOOM}

    def _tron_log(self, lg: Any) -> Any:
        if not isinstance(lg, dict) or "blockHash" not in lg or "blockNumber" not in lg:
            return lg
        return {**lg, "blockHash": self.tron_hash(lg["blockHash"], int(lg["blockNumber"], 16))}

    def _receipt(self, r: Any) -> Any:
        if not isinstance(r, dict):
            return r
        out = {**r, "logsBloom": ZERO_BLOOM, "logs": [self._tron_log(lg) for lg in r.get("logs") or []]}
        if "blockHash" in r and "blockNumber" in r:
            out["blockHash"] = self.tron_hash(r["blockHash"], int(r["blockNumber"], 16))
        return out
