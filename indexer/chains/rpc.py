"""JSON-RPC endpoint pool: timeouts, retries with backoff + jitter, failover by health,
rate limits honouring 429 / Retry-After, per-endpoint metrics. orjson on the wire.

A reply that is not valid JSON-RPC is a `MalformedReply` (retried on another endpoint), never data.
Provider errors that mean "this range is too large" are surfaced as `RpcError(range_too_large=True)`
without retries, so the caller can split the range.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import structlog

from indexer.errors import MalformedReply, RpcError
from indexer.metrics import Metrics

log = structlog.get_logger(__name__)

# Answers, not faults: Solana's "slot skipped" / "block not available" (retrying cannot help and
# the endpoint is healthy).
NON_RETRYABLE_CODES = frozenset({-32004, -32007, -32009})

# Messages real providers use when an eth_getLogs range or result set is too large.
_RANGE_PATTERNS = re.compile(
    r"(block range|range too large|exceeds max|more than \d+ results|too many results|"
    r"query returned more than|limit exceeded|response size|query timeout|log response size|"
    r"range is too large|exceed maximum block range|eth_getLogs is limited)",
    re.IGNORECASE,
)


def endpoint_label(url: str) -> str:
    """A bounded, secret-free label for an endpoint: host[:port] (paths often carry API keys)."""
    parts = urlsplit(url)
    host = parts.hostname or "unknown"
    return f"{host}:{parts.port}" if parts.port else host


@dataclass
class Endpoint:
    url: str
    label: str
    failures: int = 0  # consecutive
    cooldown_until: float = 0.0
    latency_ewma: float = 0.0
    healthy: bool = True

    def score(self, now: float) -> tuple[int, int, float]:
        cooling = 1 if now < self.cooldown_until else 0
        return (cooling, self.failures, self.latency_ewma)


@dataclass
class RpcPool:
    """Several endpoints for one chain; calls go to the healthiest, failing over in order."""

    chain: str
    urls: Sequence[str]
    session: aiohttp.ClientSession
    metrics: Metrics
    timeout: float = 10.0
    attempts: int = 5
    backoff_base: float = 0.2
    backoff_max: float = 5.0
    max_in_flight: int = 8
    rng: random.Random = field(default_factory=random.Random)
    endpoints: list[Endpoint] = field(init=False)
    _sem: asyncio.Semaphore = field(init=False)
    _ids: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        labels: dict[str, int] = {}
        self.endpoints = []
        for url in self.urls:
            label = endpoint_label(url)
            n = labels.get(label, 0)
            labels[label] = n + 1
            self.endpoints.append(Endpoint(url, label if n == 0 else f"{label}#{n}"))
        self._sem = asyncio.Semaphore(self.max_in_flight)

    def _order(self) -> list[Endpoint]:
        now = time.monotonic()
        return sorted(self.endpoints, key=lambda e: e.score(now))

    async def call(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC call with retries and failover; returns `result`."""
        replies = await self._with_retries(method, [(method, params)], single=True)
        return replies[0]

    async def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """A JSON-RPC batch; returns results in call order. Any error fails the whole batch."""
        if not calls:
            return []
        return await self._with_retries(f"{calls[0][0]}[batch:{len(calls)}]", list(calls), single=False)

    async def _with_retries(
        self, what: str, calls: list[tuple[str, list[Any]]], *, single: bool
    ) -> list[Any]:
        last: RpcError | None = None
        for attempt in range(self.attempts):
            order = self._order()
            ep = order[attempt % len(order)]
            wait = ep.cooldown_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(min(wait, self.backoff_max))
            try:
                return await self._send(ep, calls, single)
            except RpcError as exc:
                if exc.range_too_large or not exc.retryable:
                    raise
                last = exc
                delay = min(self.backoff_max, self.backoff_base * 2**attempt)
                delay *= 0.5 + self.rng.random()  # jitter
                log.debug(
                    "rpc_retry", chain=self.chain, endpoint=ep.label, call=what, error=str(exc), delay=delay
                )
                await asyncio.sleep(delay)
        assert last is not None
        raise last

    async def _send(self, ep: Endpoint, calls: list[tuple[str, list[Any]]], single: bool) -> list[Any]:
        payload: Any
        ids = []
        body = []
        for method, params in calls:
            self._ids += 1
            ids.append(self._ids)
            body.append({"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params})
        payload = body[0] if single else body
        started = time.perf_counter()
        outcome = "error"
        try:
            async with self._sem:
                try:
                    async with self.session.post(
                        ep.url,
                        data=orjson.dumps(payload),
                        headers={"content-type": "application/json"},
                        timeout=aiohttp.ClientTimeout(total=self.timeout),
                    ) as resp:
                        raw = await resp.read()
                        if resp.status == 429:
                            outcome = "rate_limited"
                            retry_after = _retry_after(resp.headers.get("Retry-After"))
                            ep.cooldown_until = time.monotonic() + retry_after
                            raise RpcError(f"{ep.label}: rate limited (429), retry after {retry_after:.1f}s")
                        if resp.status >= 400 and not raw.startswith((b"{", b"[")):
                            raise RpcError(f"{ep.label}: HTTP {resp.status}")
                except TimeoutError:
                    outcome = "timeout"
                    raise RpcError(f"{ep.label}: timed out after {self.timeout}s") from None
                except aiohttp.ClientError as exc:
                    raise RpcError(f"{ep.label}: {type(exc).__name__}: {exc}") from None
            try:
                decoded = orjson.loads(raw)
            except orjson.JSONDecodeError:
                outcome = "malformed"
                raise MalformedReply(
                    f"{ep.label}: reply is not JSON ({len(raw)} bytes: {raw[:80]!r})"
                ) from None
            results = _unpack(ep.label, decoded, ids, single)
            outcome = "ok"
            return results
        except MalformedReply:
            outcome = "malformed"
            raise
        except RpcError as exc:
            if exc.range_too_large or exc.code in NON_RETRYABLE_CODES:
                outcome = "ok"  # the endpoint is healthy; the request was too big / the slot empty
            raise
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.rpc_requests.labels(self.chain, ep.label, outcome).inc()
            self.metrics.rpc_seconds.labels(self.chain, ep.label).observe(elapsed)
            self._record(ep, outcome, elapsed)

    def _record(self, ep: Endpoint, outcome: str, elapsed: float) -> None:
        ok = outcome == "ok"
        ep.latency_ewma = elapsed if ep.latency_ewma == 0 else 0.8 * ep.latency_ewma + 0.2 * elapsed
        if ok:
            if not ep.healthy:
                log.info("rpc_endpoint_recovered", chain=self.chain, endpoint=ep.label)
            ep.failures = 0
            ep.healthy = True
        else:
            ep.failures += 1
            if ep.healthy and ep.failures >= 3:
                ep.healthy = False
                log.warning("rpc_endpoint_unhealthy", chain=self.chain, endpoint=ep.label, outcome=outcome)
            if outcome != "rate_limited":
                ep.cooldown_until = max(
                    ep.cooldown_until, time.monotonic() + min(30.0, 0.5 * 2 ** min(ep.failures, 6))
                )
        self.metrics.rpc_endpoint_up.labels(self.chain, ep.label).set(1 if ok else 0)


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, min(60.0, float(value))) if value else 1.0
    except ValueError:
        return 1.0


def _unpack(label: str, decoded: Any, ids: list[int], single: bool) -> list[Any]:
    items = [decoded] if single else decoded
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise MalformedReply(f"{label}: reply is not a JSON-RPC {'object' if single else 'batch'}")
    by_id: dict[Any, dict[str, Any]] = {i.get("id"): i for i in items}
    out = []
    for rid in ids:
        item = by_id.get(rid)
        if item is None:
            if single and len(items) == 1 and "error" in items[0]:
                item = items[0]
            else:
                raise MalformedReply(f"{label}: reply has no answer for request id {rid}")
        if "error" in item and item["error"] is not None:
            err = item["error"]
            msg = str(err.get("message", err)) if isinstance(err, dict) else str(err)
            code = err.get("code") if isinstance(err, dict) else None
            too_large = bool(_RANGE_PATTERNS.search(msg)) or code == -32005
            raise RpcError(
                f"{label}: RPC error {code}: {msg}",
                range_too_large=too_large,
                retryable=code not in NON_RETRYABLE_CODES,
                code=code if isinstance(code, int) else None,
            )
        if "result" not in item:
            raise MalformedReply(f"{label}: reply has neither result nor error")
        out.append(item["result"])
    return out
