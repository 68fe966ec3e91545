"""JSON-RPC endpoint pool: timeouts, retries with backoff + jitter, failover by health,
rate limits honouring 429 / Retry-After (and Tron's HTTP-200 rate-limit body), per-endpoint
metrics. orjson on the wire.

Health. Each endpoint keeps an error-rate EWMA (decaying with time, so a failed endpoint is tried
again and wins its traffic back once it answers), a latency EWMA, a backoff cooldown after
consecutive failures and a rate-limit window from 429 / Retry-After. A call goes to the endpoint
with the best score that is not cooling down and not already tried by that call; when every
endpoint is cooling down, the call waits for the first one to come back (bounded).

A reply that is not valid JSON-RPC is a `MalformedReply` (retried on another endpoint), never data.
Provider errors that mean "this range is too large" are surfaced as an `RpcError` carrying the
provider's hint (`range_hint`, read by indexer/chains/range_hints.py) without retries, so the caller can split the range. A reply that the caller finds contradicting
another endpoint or the chain's own commitments (block hash, logs bloom) is reported with
`penalize()`: outcome `contradiction`, counted as an error of that endpoint.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable, Collection, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import structlog

from indexer.chains.pacing import Pacer
from indexer.chains.range_hints import classify_range_error
from indexer.errors import MalformedReply, RpcError
from indexer.metrics import Metrics

log = structlog.get_logger(__name__)

Loads = Callable[[bytes], Awaitable[Any]]

# Answers, not faults: Solana's "slot skipped" / "block not available" (retrying cannot help and
# the endpoint is healthy).
# Also 3, "execution reverted" (EIP-1474; geth, anvil): an eth_call's answer, the same everywhere.
NON_RETRYABLE_CODES = frozenset({-32004, -32007, -32009, 3})
# Error replies that still show a working endpoint, so they do not count against its health:
# the above, and "invalid params" (-32602: e.g. Solana's "not a Token mint" for a mint younger
# than the asked commitment). Unlike the above, an invalid-params reply is still retried on the
# other endpoints, in case this one lags behind them.
ANSWERED_CODES = NON_RETRYABLE_CODES | {-32602}

# A rate limit answered with HTTP 200 and a body outside the JSON-RPC envelope: java-tron's
# RateLimiterServlet writes {"Error": "class java.lang.IllegalAccessException : lack of computing
# resources"} (no 429, no Retry-After). Matched on the key and the message, nothing looser.
_RATE_LIMIT_BODY = re.compile(r"lack of computing resources", re.IGNORECASE)

ERROR_HALF_LIFE = 30.0  # seconds for an endpoint's error rate to halve without new errors
MAX_COOLDOWN = 30.0
MAX_RETRY_AFTER = 60.0
COST_STEP = 0.1  # seconds: score resolution
UNHEALTHY_AFTER = 3  # consecutive failures before the endpoint is logged (once) as unhealthy


def endpoint_label(url: str) -> str:
    """A bounded, secret-free label for an endpoint: host[:port] (paths often carry API keys)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "unknown"
        port = parts.port
    except ValueError:
        return "unknown"
    return f"{host}:{port}" if port else host


@dataclass
class Endpoint:
    url: str
    label: str
    index: int = 0  # position in the configuration: the tie-breaker (primary first)
    failures: int = 0  # consecutive
    cooldown_until: float = 0.0  # backoff after failures
    limited_until: float = 0.0  # 429 / Retry-After
    latency_ewma: float = 0.0
    error_ewma: float = 0.0  # 0..1, as of `error_at`
    error_at: float = 0.0
    healthy: bool = True
    requests: int = 0
    pacer: Pacer = field(default_factory=Pacer)  # the request rate its rate limits allow

    def available_at(self) -> float:
        return max(self.cooldown_until, self.limited_until)

    def error_rate(self, now: float) -> float:
        if self.error_ewma <= 0:
            return 0.0
        return self.error_ewma * 0.5 ** (max(0.0, now - self.error_at) / ERROR_HALF_LIFE)

    def score(self, now: float, timeout: float = 10.0) -> tuple[int, int, int]:
        """Lower is better: (cooling down, expected cost of a call in COST_STEP steps, config
        order). An error costs about a timeout; latency is measured. Costs within one step are
        equal, so the configured order (primary first) decides between similar endpoints and
        traffic does not flap on latency noise."""
        cooling = 1 if now < self.available_at() else 0
        cost = self.latency_ewma + self.error_rate(now) * timeout
        return (cooling, int(cost / COST_STEP), self.index)


@dataclass(frozen=True, slots=True)
class Reply:
    """A result and the endpoint that gave it (so a caller can blame it for a contradiction)."""

    result: Any
    endpoint: str


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
    max_rps: float | None = None  # each endpoint's stated request rate (Pacer.ceiling)
    rng: random.Random = field(default_factory=random.Random)
    endpoints: list[Endpoint] = field(init=False)
    _sem: asyncio.Semaphore = field(init=False)
    _ids: int = field(init=False, default=0)
    _pinned: dict[str, RpcPool] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("RpcPool needs at least one endpoint")
        labels: dict[str, int] = {}
        self.endpoints = []
        for i, url in enumerate(self.urls):
            label = endpoint_label(url)
            n = labels.get(label, 0)
            labels[label] = n + 1
            self.endpoints.append(
                Endpoint(url, label if n == 0 else f"{label}#{n}", index=i, pacer=Pacer(ceiling=self.max_rps))
            )
        self._sem = asyncio.Semaphore(self.max_in_flight)

    # ---- public ------------------------------------------------------------------------------

    def throttled(self) -> bool:
        """An endpoint has rate-limited this pool (requests are paced since: they are scarce)."""
        return any(ep.pacer.rate is not None for ep in self.endpoints)

    def labels(self) -> list[str]:
        return [e.label for e in self.endpoints]

    def endpoint(self, label: str) -> Endpoint:
        for e in self.endpoints:
            if e.label == label:
                return e
        raise KeyError(label)

    def pinned(self, label: str) -> RpcPool:
        """A pool of this one endpoint (same session, metrics and label; its own health and
        retries, no failover): for reads that must come from a given endpoint (cross-checks,
        audits). Cached per label."""
        pool = self._pinned.get(label)
        if pool is None:
            ep = self.endpoint(label)
            pool = RpcPool(
                self.chain,
                [ep.url],
                self.session,
                self.metrics,
                timeout=self.timeout,
                attempts=min(self.attempts, 2),
                backoff_base=self.backoff_base,
                backoff_max=self.backoff_max,
                max_in_flight=self.max_in_flight,
                rng=self.rng,
            )
            pool.endpoints[0].label = label
            pool.endpoints[0].pacer = ep.pacer  # one endpoint, one request budget
            self._pinned[label] = pool
        return pool

    async def call(self, method: str, params: list[Any]) -> Any:
        """One JSON-RPC call with retries and failover; returns `result`."""
        return (await self.call_ex(method, params)).result

    async def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """A JSON-RPC batch; returns results in call order. Any error fails the whole batch."""
        result: list[Any] = (await self.batch_ex(calls)).result
        return result

    async def call_ex(
        self,
        method: str,
        params: list[Any],
        *,
        avoid: Collection[str] = (),
        only: str | None = None,
        prefer: str | None = None,
        loads: Loads | None = None,
    ) -> Reply:
        """`call`, also naming the endpoint that answered. `avoid`: endpoints to use only when no
        other is left; `only`: that endpoint alone (no failover); `prefer`: try it first;
        `loads`: parses the reply body in place of `orjson.loads` (raising `ValueError` for a body
        that is not JSON), e.g. to decode a large result in a worker process."""
        ep, results = await self._with_retries(
            method, [(method, params)], single=True, avoid=avoid, only=only, prefer=prefer, loads=loads
        )
        return Reply(results[0], ep.label)

    async def batch_ex(
        self,
        calls: Sequence[tuple[str, list[Any]]],
        *,
        avoid: Collection[str] = (),
        only: str | None = None,
        prefer: str | None = None,
    ) -> Reply:
        if not calls:
            return Reply([], only or prefer or self.endpoints[0].label)
        ep, results = await self._with_retries(
            f"{calls[0][0]}[batch:{len(calls)}]",
            list(calls),
            single=False,
            avoid=avoid,
            only=only,
            prefer=prefer,
        )
        return Reply(results, ep.label)

    def penalize(self, label: str, reason: str) -> None:
        """The caller found a reply of `label` contradicting the chain or another endpoint: count
        it as that endpoint's fault (metric outcome `contradiction`, health, backoff)."""
        ep = self.endpoint(label)
        self.metrics.rpc_requests.labels(self.chain, ep.label, "contradiction").inc()
        log.warning("rpc_contradiction", chain=self.chain, endpoint=ep.label, reason=reason[:300])
        self._record(ep, "contradiction", None)

    # ---- internals ---------------------------------------------------------------------------

    def _pick(
        self, tried: set[str], avoid: Collection[str], only: str | None, prefer: str | None
    ) -> Endpoint:
        if only is not None:
            return self.endpoint(only)
        now = time.monotonic()

        def key(e: Endpoint) -> tuple[int, int, int, tuple[int, int, int]]:
            return (
                1 if e.label in tried else 0,
                1 if e.label in avoid else 0,
                0 if e.label == prefer and now >= e.available_at() else 1,
                e.score(now, self.timeout),
            )

        return min(self.endpoints, key=key)

    async def _with_retries(
        self,
        what: str,
        calls: list[tuple[str, list[Any]]],
        *,
        single: bool,
        avoid: Collection[str] = (),
        only: str | None = None,
        prefer: str | None = None,
        loads: Loads | None = None,
    ) -> tuple[Endpoint, list[Any]]:
        last: RpcError | None = None
        tried: set[str] = set()
        for attempt in range(self.attempts):
            if len(tried) >= len(self.endpoints):
                tried.clear()  # every endpoint had its chance: start another round
            ep = self._pick(tried, avoid, only, prefer)
            tried.add(ep.label)
            wait = ep.available_at() - time.monotonic()
            if wait > 0:
                # Every candidate is cooling down (or rate limited): wait for this one, bounded.
                await asyncio.sleep(min(wait, MAX_RETRY_AFTER))
            pace = ep.pacer.reserve(time.monotonic())
            if pace > 0:
                await asyncio.sleep(min(pace, MAX_RETRY_AFTER))
            try:
                return ep, await self._send(ep, calls, single, loads)
            except RpcError as exc:
                if exc.range_too_large or not exc.retryable:
                    raise
                last = exc
                if attempt + 1 >= self.attempts:
                    break
                if len(self.endpoints) > 1 and only is None and len(tried) < len(self.endpoints):
                    delay = 0.0  # fail over at once; back off only between rounds
                else:
                    delay = min(self.backoff_max, self.backoff_base * 2**attempt)
                    delay *= 0.5 + self.rng.random()  # jitter
                log.debug(
                    "rpc_retry", chain=self.chain, endpoint=ep.label, call=what, error=str(exc), delay=delay
                )
                if delay:
                    await asyncio.sleep(delay)
        assert last is not None
        raise last

    async def _send(
        self, ep: Endpoint, calls: list[tuple[str, list[Any]]], single: bool, loads: Loads | None = None
    ) -> list[Any]:
        payload: Any
        ids = []
        body = []
        for method, params in calls:
            self._ids += 1
            ids.append(self._ids)
            body.append({"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params})
        payload = body[0] if single else body
        data = orjson.dumps(payload)
        async with self._sem:
            started = time.perf_counter()
            answered = 0.0  # when the body was read: parsing is not the endpoint's latency
            outcome, error = "error", ""
            ep.requests += 1
            try:
                try:
                    # The aiohttp timeout covers connect + send + read; the outer one is a guard.
                    async with asyncio.timeout(self.timeout + 1.0):
                        async with self.session.post(
                            ep.url,
                            data=data,
                            headers={"content-type": "application/json"},
                            timeout=aiohttp.ClientTimeout(total=self.timeout),
                        ) as resp:
                            raw = await resp.read()
                            answered = time.perf_counter()
                            status = resp.status
                            retry_after_header = resp.headers.get("Retry-After")
                except TimeoutError:
                    outcome = "timeout"
                    raise RpcError(f"{ep.label}: timed out after {self.timeout}s") from None
                except aiohttp.ClientError as exc:
                    raise RpcError(f"{ep.label}: {type(exc).__name__}: {exc}") from None
                if status == 429:
                    outcome = "rate_limited"
                    raise _rate_limited(ep, retry_after_header, "429")
                if status >= 400 and not raw.lstrip().startswith((b"{", b"[")):
                    raise RpcError(f"{ep.label}: HTTP {status}")
                try:
                    decoded = orjson.loads(raw) if loads is None else await loads(raw)
                except ValueError:  # orjson.JSONDecodeError is one
                    raise MalformedReply(
                        f"{ep.label}: reply is not JSON ({len(raw)} bytes: {raw[:80]!r})"
                    ) from None
                limited = _rate_limit_body(decoded)
                if limited is not None:
                    outcome = "rate_limited"
                    raise _rate_limited(ep, None, f"HTTP {status}: {limited[:120]}")
                results = _unpack(ep.label, decoded, ids, single)
                outcome = "ok"
                return results
            except MalformedReply as exc:
                outcome, error = "malformed", str(exc)
                raise
            except RpcError as exc:
                error = str(exc)
                if exc.range_too_large or exc.code in ANSWERED_CODES:
                    outcome = "ok"  # the endpoint is healthy; the request was too big / did not fit
                raise
            except BaseException as exc:
                error = f"{type(exc).__name__}: {exc}"
                raise
            finally:
                elapsed = (answered or time.perf_counter()) - started
                self.metrics.rpc_requests.labels(self.chain, ep.label, outcome).inc()
                self.metrics.rpc_seconds.labels(self.chain, ep.label).observe(elapsed)
                method = calls[0][0] if single else f"batch of {len(calls)} ({calls[0][0]}, ...)"
                self._record(ep, outcome, elapsed, f"{method}: {error}" if error else "")

    def _record(self, ep: Endpoint, outcome: str, elapsed: float | None, error: str = "") -> None:
        ok = outcome == "ok"
        now = time.monotonic()
        if elapsed is not None:
            ep.latency_ewma = elapsed if ep.latency_ewma == 0 else 0.8 * ep.latency_ewma + 0.2 * elapsed
        rate = ep.error_rate(now)
        ep.error_ewma = 0.8 * rate + (0.0 if ok else 0.2)
        ep.error_at = now
        if ok:
            if not ep.healthy:
                log.info("rpc_endpoint_recovered", chain=self.chain, endpoint=ep.label)
            ep.failures = 0
            ep.healthy = True
        else:
            ep.failures += 1
            if ep.healthy and ep.failures >= UNHEALTHY_AFTER:
                ep.healthy = False
                log.warning(
                    "rpc_endpoint_unhealthy",
                    chain=self.chain,
                    endpoint=ep.label,
                    outcome=outcome,
                    error=error[:300],
                )
            if outcome != "rate_limited":  # a 429 sets its own window (Retry-After)
                backoff = min(MAX_COOLDOWN, 0.25 * 2 ** min(ep.failures, 8))
                ep.cooldown_until = max(ep.cooldown_until, now + backoff * (0.5 + self.rng.random() / 2))
        self.metrics.rpc_endpoint_up.labels(self.chain, ep.label).set(1 if ok else 0)


def _retry_after(value: str | None) -> float:
    """Retry-After in seconds (delta-seconds; an HTTP date or junk counts as 1 s), capped."""
    try:
        seconds = float(value) if value else 1.0
    except ValueError:
        return 1.0
    if seconds != seconds:  # NaN
        return 1.0
    return max(0.0, min(MAX_RETRY_AFTER, seconds))


def _rate_limited(ep: Endpoint, retry_after_header: str | None, why: str) -> RpcError:
    """Hold `ep` back for the reply's Retry-After (or the default wait) and say why."""
    retry_after = _retry_after(retry_after_header)
    now = time.monotonic()
    ep.limited_until = now + retry_after
    ep.pacer.limited(now)
    return RpcError(f"{ep.label}: rate limited ({why}), retry after {retry_after:.1f}s")


def _rate_limit_body(decoded: Any) -> str | None:
    """The message of a rate-limit reply sent outside the JSON-RPC envelope (Tron), else None."""
    if not isinstance(decoded, dict) or "jsonrpc" in decoded or "result" in decoded:
        return None
    message = decoded.get("Error")
    if isinstance(message, str) and _RATE_LIMIT_BODY.search(message):
        return message
    return None


def _unpack(label: str, decoded: Any, ids: list[int], single: bool) -> list[Any]:
    items = [decoded] if single else decoded
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise MalformedReply(f"{label}: reply is not a JSON-RPC {'object' if single else 'batch'}")
    by_id: dict[Any, dict[str, Any]] = {}
    for i in items:
        rid = i.get("id")
        if isinstance(rid, Hashable) and rid not in by_id:
            by_id[rid] = i
    out = []
    for rid in ids:
        item = by_id.get(rid)
        if item is None:
            if single and len(items) == 1 and items[0].get("error") is not None:
                item = items[0]
            else:
                raise MalformedReply(f"{label}: reply has no answer for request id {rid}")
        err = item.get("error")
        if err is not None:
            msg = str(err.get("message", err)) if isinstance(err, dict) else str(err)
            raw_code = err.get("code") if isinstance(err, dict) else None
            code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
            raise RpcError(
                f"{label}: RPC error {code}: {msg[:500]}",
                range_hint=classify_range_error(code, msg),
                retryable=code not in NON_RETRYABLE_CODES,
                code=code,
            )
        if "result" not in item:
            raise MalformedReply(f"{label}: reply has neither result nor error")
        out.append(item["result"])
    return out
