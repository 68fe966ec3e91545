"""Provider-realistic benchmark (issue #19 item 2): usd1-indexer (default configuration), Ponder
and ethereum-etl, one after the other, each behind the same JSON-RPC proxy in front of the same
cached anvil chain, in the same run.

The proxy (`indexer.devnet.faultproxy.FaultProxy`) imposes what a hosted provider does and a
local anvil does not:
- a round-trip latency on every HTTP request (default 50 ms);
- a request-rate limit (token bucket over HTTP requests; a JSON-RPC batch is one request) that
  answers 429 with `Retry-After: 1`;
- a result cap on `eth_getLogs` with Infura's error text (`query returned more than 10000
  results`, code -32005).

The ceiling is what the proxy lets through at best: requests per second times results per
request (rate limit x result cap, in events per second). Each peer's figure is its events per
second end to end and its share of that ceiling, with the requests it made and how many were
refused (rate limit, result cap). The share while fetching (events over the time from the
peer's first request to the proxy's last reply) leaves out what a process does before and after
it talks to the provider (start-up, migrations, the index build at the end).

    .venv/bin/python -m bench.provider [--events N] [--rps 5] [--latency-ms 50] [--only NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field

from aiohttp import web

from bench.backfill import config_text, run_daemon_backfill
from bench.common import BenchPostgres, bench_postgres, log
from bench.peers import PeerResult, run_etl, run_ponder
from bench.workload import ChainInfo, Spec, serve
from indexer.devnet.faultproxy import FaultProxy

# `usd1-indexer` runs the default configuration (it learns the pace from the 429s it meets);
# `usd1-indexer-rate` is told the rate, as Ponder is (`max_requests_per_second`).
PEERS = ("usd1-indexer", "usd1-indexer-rate", "ethereum-etl", "ponder")


@dataclass(frozen=True)
class Limits:
    latency_s: float = 0.05
    requests_per_s: float = 5.0
    result_cap: int = 10_000
    retry_after_s: float = 1.0

    @property
    def ceiling(self) -> float:
        """Events per second the proxy lets through at best."""
        return self.requests_per_s * self.result_cap

    def text(self) -> str:
        return (
            f"latency {self.latency_s * 1000:.0f} ms, {self.requests_per_s:g} requests/s (429 + "
            f"Retry-After {self.retry_after_s:g} s), eth_getLogs cap {self.result_cap:,} results; "
            f"ceiling {self.ceiling:,.0f} events/s"
        )


@dataclass
class ProviderRun:
    peer: str
    ok: bool
    events: int
    wall_s: float
    events_per_s: float
    share_of_ceiling: float
    fetch_s: float  # first request to last reply
    share_while_fetching: float
    http_requests: int
    calls: dict[str, int] = field(default_factory=dict)
    rate_limited: int = 0
    result_capped: int = 0
    settings: str = ""
    error: str = ""


class TimedProxy(FaultProxy):
    """A FaultProxy that also notes when its first request came and its last reply left."""

    first_at: float | None = None
    last_at: float = 0.0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.first_at is None:
            self.first_at = time.monotonic()
        try:
            return await super()._handle(request)
        finally:
            self.last_at = time.monotonic()

    @property
    def active_s(self) -> float:
        return 0.0 if self.first_at is None else self.last_at - self.first_at


@asynccontextmanager
async def provider(upstream: str, limits: Limits) -> AsyncIterator[TimedProxy]:
    proxy = TimedProxy(upstream)
    async with proxy:
        proxy.delay = limits.latency_s
        proxy.rate_limit = limits.requests_per_s
        proxy.retry_after = limits.retry_after_s
        proxy.max_logs_results = limits.result_cap
        yield proxy


async def _peer(
    name: str, url: str, anvil_pid: int, info: ChainInfo, pg: BenchPostgres, limits: Limits
) -> PeerResult:
    match name:
        case "usd1-indexer" | "usd1-indexer-rate":
            rps = limits.requests_per_s if name == "usd1-indexer-rate" else None
            r = await run_daemon_backfill(
                url, anvil_pid, info, pg, tag="provider", max_requests_per_second=rps
            )
            return PeerResult(
                "usd1-indexer" if rps is None else "usd1-indexer (rate stated)",
                r.verified,
                events=r.events,
                wall_s=r.wall_s,
                events_per_s=r.events_per_s,
                cpu_s=r.cpu_indexer_s,
                peak_rss_mb=r.peak_rss_mb,
                settings=config_text(None, None, rps),
            )
        case "ethereum-etl":
            return await asyncio.to_thread(run_etl, url, info)
        case "ponder":
            return await run_ponder(url, info, pg, max_rps=max(1, int(limits.requests_per_s)))
        case _:
            raise ValueError(f"unknown peer {name!r} (one of {', '.join(PEERS)})")


async def measure(
    spec: Spec, limits: Limits, peers: tuple[str, ...] = PEERS, pg: BenchPostgres | None = None
) -> list[ProviderRun]:
    """Each peer behind a fresh proxy (fresh counters and rate bucket) on the same served chain."""
    if pg is None:
        with bench_postgres() as own:
            return await measure(spec, limits, peers, own)
    out: list[ProviderRun] = []
    async with serve(spec) as (anvil, info):
        assert anvil._proc is not None
        for name in peers:
            async with provider(anvil.url, limits) as proxy:
                log(f"provider: {name} behind {limits.text()}")
                try:
                    r = await _peer(name, proxy.url, anvil._proc.pid, info, pg, limits)
                except RuntimeError as exc:  # a peer that failed: reported, the others still run
                    r = PeerResult(name, False, error=str(exc)[-800:])
                eps = r.events / r.wall_s if r.ok and r.wall_s > 0 else 0.0
                active = proxy.active_s
                fetch_eps = r.events / active if r.ok and active > 0 else 0.0
                run = ProviderRun(
                    peer=r.peer,
                    ok=r.ok,
                    events=r.events,
                    wall_s=r.wall_s,
                    events_per_s=round(eps),
                    share_of_ceiling=round(eps / limits.ceiling, 3),
                    fetch_s=round(active, 3),
                    share_while_fetching=round(fetch_eps / limits.ceiling, 3),
                    http_requests=proxy.http_requests,
                    calls=dict(proxy.calls),
                    rate_limited=proxy.faults["rate_limit"],
                    result_capped=proxy.method_faults[("eth_getLogs", "max_logs_results")],
                    settings=r.settings,
                    error=r.error,
                )
                log(f"provider: {asdict(run)}")
                out.append(run)
    return out


def render(runs: list[ProviderRun], limits: Limits, events: int) -> list[str]:
    """The RESULTS.md section: each peer's time and share of the proxy's ceiling."""
    ponder = next((r for r in runs if r.peer.startswith("Ponder") and r.ok), None)
    verdicts = []
    for r in runs:
        if r.peer.startswith("usd1-indexer") and r.ok:
            ahead = ponder is None or r.wall_s < ponder.wall_s
            met = r.share_of_ceiling >= 0.85 and ahead
            verdicts.append(f"{r.peer} {'met' if met else '**missed**'}")
    out = [
        "",
        f"## Behind a provider-like proxy ({events:,} events, `bench/provider.py`)",
        "",
        f"Proxy: {limits.text()}. Target for usd1-indexer: >= 85% of the ceiling and ahead of Ponder: "
        f"{'; '.join(verdicts) or 'n/a'}. Calls: JSON-RPC calls inside those HTTP requests (a batch "
        "is one request to the proxy's rate limit, each call to a per-call meter).",
        "",
        "| peer | wall | events/s | share of ceiling | while fetching | HTTP requests | calls | 429s "
        "| result-cap refusals | settings |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in runs:
        calls = sum(r.calls.values())
        if not r.ok:
            out.append(
                f"| {r.peer} | failed | — | — | — | {r.http_requests} | {calls} | {r.rate_limited} "
                f"| {r.result_capped} | {r.settings}; {r.error[:160].replace('|', '/').replace(chr(10), ' ')} |"
            )
            continue
        out.append(
            f"| {r.peer} | {r.wall_s:.1f} s | {r.events_per_s:,.0f} | {r.share_of_ceiling:.0%} | "
            f"{r.share_while_fetching:.0%} ({r.fetch_s:.1f} s) | {r.http_requests} | {calls} | "
            f"{r.rate_limited} | {r.result_capped} | {r.settings} |"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=Spec().events)
    ap.add_argument("--rps", type=float, default=Limits.requests_per_s)
    ap.add_argument("--latency-ms", type=float, default=Limits.latency_s * 1000)
    ap.add_argument("--result-cap", type=int, default=Limits.result_cap)
    ap.add_argument("--only", choices=PEERS, action="append")
    args = ap.parse_args()
    limits = Limits(latency_s=args.latency_ms / 1000, requests_per_s=args.rps, result_cap=args.result_cap)
    runs = asyncio.run(measure(Spec(events=args.events), limits, tuple(args.only or PEERS)))
    print(json.dumps([asdict(r) for r in runs], indent=2))


if __name__ == "__main__":
    main()
