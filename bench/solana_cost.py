"""Solana at mainnet cost (issue #19 section 3): requests and bytes per slot and per event of a
backfill on a mainnet-like mix, block path against signature path.

The LiteSVM devnet (real SPL Token programs) produces `--slots` slots, each filled with
`--noise` unrelated transactions (SOL transfers and another mint's random traffic, a share
`--skip` of slots skipped), and the indexed mint touched by one operation (every movement kind,
inner transfers, lookup tables, failed transactions; occasionally a freeze/thaw or authority
change) in a share `--share` of the slots. Both sources then read [0, finalized] as the follower's
backfill does (64-slot ranges for blocks, 8192 for signatures, 4 in flight) through the real
`SolanaSource` over HTTP; the devnet counts each reply's bytes per method. The two must yield the
same events and control events (checked, the run fails otherwise).

    .venv/bin/python -m bench.solana_cost [--slots 4000] [--noise 20] [--share 0.005]

Prints one JSON object (configuration beside the figures) and a table. Not a test: asserts only
that both paths agree.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import sys
import time
from collections.abc import Sequence
from typing import Any

import orjson

from indexer.chains.solana import SolanaSource
from indexer.config import SolanaChainConfig
from indexer.devnet.solana_devnet import SolanaDevnet
from indexer.devnet.solana_traffic import NoiseTraffic, SolanaTraffic
from indexer.metrics import Metrics
from indexer.model import RangeData
from indexer.runtime import SIGNATURE_CHUNK_SLOTS

BLOCK_CHUNK = 64
IN_FLIGHT = 4


def same(records: Sequence[Any]) -> list[str]:
    """Records with the chain name left out (the two reads use two chain names), in order."""
    return sorted(
        repr(
            dataclasses.replace(r, chain="")
            if dataclasses.is_dataclass(r) and not isinstance(r, type)
            else r._replace(chain="")
        )
        for r in records
    )


def build(dn: SolanaDevnet, args: argparse.Namespace) -> tuple[SolanaTraffic, int, int]:
    """The mix; returns the traffic, the slots where the mint was touched, and the operations."""
    rng = random.Random(args.seed)
    noise = NoiseTraffic(dn.ledger, seed=args.seed + 1)
    noise.setup()
    t = SolanaTraffic(dn.ledger, seed=args.seed, owners=args.owners)
    t.setup()
    dn.advance(1)
    touched = ops = 0
    for _ in range(args.slots):
        for _ in range(args.noise):
            noise.step(rng)
        if rng.random() < args.share:
            touched += 1
            ops += 1
            r = rng.random()
            if r < 0.05 and t.freeze_auth is not None:
                i = rng.randrange(len(t.owners))
                t.freeze(i, thaw=i in t.frozen)
            elif r < 0.08:
                t.set_mint_authority(t.new_key(f"m{ops}"))
            else:
                t.step(rng)
        dn.advance(1, skip=rng.random() < args.skip)
    dn.advance(dn.ledger.finality_depth + 2)
    return t, touched, ops


async def read(dn: SolanaDevnet, mint: str, source: str, fin: int) -> tuple[RangeData, dict[str, Any]]:
    cfg = SolanaChainConfig.model_validate(
        {
            "name": f"sol_{source}",
            "kind": "solana",
            "rpc": [dn.url],
            "mint": mint,
            "backfill_source": source,
            "max_concurrency": IN_FLIGHT,
        }
    )
    src = SolanaSource.from_config(cfg, metrics=Metrics())
    chunk = BLOCK_CHUNK if source == "blocks" else SIGNATURE_CHUNK_SLOTS
    dn.server.calls.clear()
    dn.server.bytes_out.clear()
    t0 = time.perf_counter()
    try:
        ranges = [(lo, min(fin, lo + chunk - 1)) for lo in range(0, fin + 1, chunk)]
        sem = asyncio.Semaphore(IN_FLIGHT)

        async def one(lo: int, hi: int) -> RangeData:
            async with sem:
                return await src.fetch_range(lo, hi, with_headers=False)

        parts = await asyncio.gather(*(one(lo, hi) for lo, hi in ranges))
    finally:
        await src.close()
    seconds = time.perf_counter() - t0
    events = tuple(e for p in parts for e in p.events)
    controls = tuple(c for p in parts for c in p.controls)
    merged = RangeData(0, fin, events, (), parts[-1].end_ref, controls=controls)
    stats = {
        "requests": sum(dn.server.calls.values()),
        "bytes": sum(dn.server.bytes_out.values()),
        "by_method": {
            m: {"requests": n, "bytes": dn.server.bytes_out[m]} for m, n in sorted(dn.server.calls.items())
        },
        "seconds": round(seconds, 2),
    }
    return merged, stats


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async with SolanaDevnet(finality_depth=8, confirmed_depth=1, seed=args.seed) as dn:
        t0 = time.perf_counter()
        t, touched, ops = build(dn, args)
        built = time.perf_counter() - t0
        fin = dn.ledger.commitment_slot("finalized")
        blocks = len(dn.ledger.block_slots(0, fin))
        txs = sum(len(dn.ledger.blocks[s].txs) for s in dn.ledger.block_slots(0, fin))
        out: dict[str, Any] = {
            "config": {
                "slots": args.slots,
                "noise_tx_per_slot": args.noise,
                "mint_share_of_slots": args.share,
                "skip_rate": args.skip,
                "owners": args.owners,
                "seed": args.seed,
                "block_chunk": BLOCK_CHUNK,
                "signature_chunk": SIGNATURE_CHUNK_SLOTS,
                "in_flight": IN_FLIGHT,
                "encoding": "json",
            },
            "chain": {
                "finalized_slot": fin,
                "blocks": blocks,
                "transactions": txs,
                "mint_operations": ops,
                "slots_touched_by_mint_ops": touched,
                "build_seconds": round(built, 1),
            },
        }
        results: dict[str, tuple[RangeData, dict[str, Any]]] = {}
        for source in ("blocks", "signatures"):
            results[source] = await read(dn, t.mint_address, source, fin)
        (b, bs), (s, ss) = results["blocks"], results["signatures"]
        if same(b.events) != same(s.events) or same(b.controls) != same(s.controls):
            raise SystemExit("the two paths disagree: events or control events differ")
        n_events = len(b.events) + len(b.controls)
        for name, st in (("blocks", bs), ("signatures", ss)):
            st["requests_per_slot"] = round(st["requests"] / (fin + 1), 4)
            st["bytes_per_slot"] = round(st["bytes"] / (fin + 1), 1)
            st["requests_per_event"] = round(st["requests"] / max(1, n_events), 3)
            st["bytes_per_event"] = round(st["bytes"] / max(1, n_events), 1)
            out[name] = st
        out["events"] = {"transfers_family": len(b.events), "controls_family": len(b.controls)}
        out["ratio"] = {
            "requests": round(bs["requests"] / ss["requests"], 1),
            "bytes": round(bs["bytes"] / ss["bytes"], 1),
        }
        return out


def table(r: dict[str, Any]) -> str:
    lines = [
        f"{'source':<11} {'requests':>9} {'bytes':>13} {'req/slot':>9} {'B/slot':>10} {'req/event':>10} {'B/event':>10}"
    ]
    for name in ("blocks", "signatures"):
        s = r[name]
        lines.append(
            f"{name:<11} {s['requests']:>9} {s['bytes']:>13} {s['requests_per_slot']:>9} "
            f"{s['bytes_per_slot']:>10} {s['requests_per_event']:>10} {s['bytes_per_event']:>10}"
        )
    lines.append(f"ratio blocks/signatures: requests {r['ratio']['requests']}x, bytes {r['ratio']['bytes']}x")
    return "\n".join(lines)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--slots", type=int, default=4000)
    p.add_argument("--noise", type=int, default=20, help="unrelated transactions per slot")
    p.add_argument("--share", type=float, default=0.005, help="share of slots with a mint operation")
    p.add_argument("--skip", type=float, default=0.05, help="share of skipped slots")
    p.add_argument("--owners", type=int, default=12)
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


if __name__ == "__main__":
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    result = asyncio.run(main(parse(sys.argv[1:])))
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.write(table(result) + "\n")
