"""The benchmark chain: anvil + TestToken + N Transfer events among many holders, cached.

Built once per (events, holders, events per block, seed) with `--no-mining` + `evm_mine`: each
block holds one `batchMint`, one or more `batchTransfer` (<= 250 items per tx) and a few single
`burn` transactions, so every block carries hundreds of Transfer logs from several transactions.
Then `FINALITY_PAD` empty blocks are mined so everything is below anvil's `finalized` tag
(`--slots-in-an-epoch 2`: finalized = head - 4). The chain is dumped to bench/.cache and later
runs start anvil with `--load-state` (seconds instead of minutes).

    .venv/bin/python -m bench.workload [--events 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gzip
import json
import random
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import CACHE, TOKEN_ADDRESS, Rpc, log, rpc_client
from indexer.devnet.anvil import Anvil
from indexer.devnet.solc import compile_contract
from indexer.devnet.token import ANVIL_ACCOUNT0, selector

DEFAULT_EVENTS = 200_000
DEFAULT_HOLDERS = 100_000
EVENTS_PER_BLOCK = 500
ITEMS_PER_TX = 250
MINT_SHARE = 0.10
BURN_SHARE = 0.005
FINALITY_PAD = 10
# Ponder treats chains it does not know (31337) as final only 30 blocks below the head; serve()
# mines this many empty blocks on load so every peer backfills all events as history.
SERVE_PAD = 40
GAS_LIMIT = 1_000_000_000
FORMAT_VERSION = 1

_SEL_BATCH_MINT = selector("batchMint(address[],uint256[])")
_SEL_BATCH_TRANSFER = selector("batchTransfer(address[],address[],uint256[])")
_SEL_BURN = selector("burn(address,uint256)")


@dataclass(frozen=True)
class Spec:
    events: int = DEFAULT_EVENTS
    holders: int = DEFAULT_HOLDERS
    events_per_block: int = EVENTS_PER_BLOCK
    seed: int = 1

    @property
    def key(self) -> str:
        return f"chain-v{FORMAT_VERSION}-e{self.events}-h{self.holders}-b{self.events_per_block}-s{self.seed}"

    @property
    def state_path(self) -> Path:
        return CACHE / f"{self.key}.state.json"

    @property
    def meta_path(self) -> Path:
        return CACHE / f"{self.key}.meta.json"


@dataclass(frozen=True)
class ChainInfo:
    """What the cached chain holds (written next to the state file)."""

    events: int
    mints: int
    burns: int
    transfers: int
    holders_touched: int
    first_block: int
    last_event_block: int
    head: int
    supply: int
    token: str
    build_seconds: float


# ---- ABI encoding (hand-rolled: eth_abi + checksums cost more than the EVM here) ----------------
def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _array(items: list[int]) -> bytes:
    return _word(len(items)) + b"".join(_word(x) for x in items)


def _encode_arrays(sel: bytes, arrays: list[list[int]]) -> str:
    head = b""
    tail = b""
    offset = 32 * len(arrays)
    for arr in arrays:
        head += _word(offset + len(tail))
        tail += _array(arr)
    return "0x" + (sel + head + tail).hex()


def _holder(i: int) -> int:
    """Holder i's address as an int: deterministic, spread over the address space."""
    return int.from_bytes(random.Random(i * 7919 + 17).randbytes(20), "big") | 1


def _hexaddr(a: int) -> str:
    return "0x" + a.to_bytes(20, "big").hex()


# ---- build ---------------------------------------------------------------------------------------
class _Planner:
    """Plans each block's operations and tracks balances so no transaction reverts."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.addrs = [_holder(i) for i in range(spec.holders)]
        self.bal = [0] * spec.holders
        self.funded: list[int] = []
        self.touched: set[int] = set()
        self.left = {
            "mint": max(1, round(spec.events * MINT_SHARE)),
            "burn": round(spec.events * BURN_SHARE),
        }
        self.left["transfer"] = spec.events - self.left["mint"] - self.left["burn"]
        self.done = {"mint": 0, "burn": 0, "transfer": 0}
        self.supply = 0

    def remaining(self) -> int:
        return sum(self.left.values())

    def block(self) -> list[tuple[str, int]]:
        """(calldata, items) of this block's transactions, in order (all sent by the owner)."""
        e = min(self.spec.events_per_block, self.remaining())
        if not self.funded:
            n_mint = min(e, self.left["mint"])
            n_burn = 0
        else:
            share = e / self.remaining()
            n_mint = min(self.left["mint"], round(self.left["mint"] * share))
            n_burn = min(self.left["burn"], round(self.left["burn"] * share))
        n_transfer = min(self.left["transfer"], e - n_mint - n_burn)
        if n_mint + n_burn + n_transfer < e:  # rounding at the end
            n_mint = min(self.left["mint"], e - n_burn - n_transfer)
        txs: list[tuple[str, int]] = []
        rng, bal = self.rng, self.bal
        for start in range(0, n_mint, ITEMS_PER_TX):
            to: list[int] = []
            amounts: list[int] = []
            for _ in range(min(ITEMS_PER_TX, n_mint - start)):
                h = rng.randrange(self.spec.holders)
                amt = rng.randint(10**21, 10**24)
                if bal[h] == 0:
                    self.funded.append(h)
                bal[h] += amt
                self.touched.add(h)
                self.supply += amt
                to.append(self.addrs[h])
                amounts.append(amt)
            txs.append((_encode_arrays(_SEL_BATCH_MINT, [to, amounts]), len(to)))
        for start in range(0, n_transfer, ITEMS_PER_TX):
            frm: list[int] = []
            to = []
            amounts = []
            for _ in range(min(ITEMS_PER_TX, n_transfer - start)):
                f = self._funded_holder()
                t = rng.randrange(self.spec.holders)
                amt = rng.randint(1, max(1, min(bal[f] // 2, 10**22)))
                bal[f] -= amt
                if bal[t] == 0:
                    self.funded.append(t)
                bal[t] += amt
                self.touched.add(t)
                frm.append(self.addrs[f])
                to.append(self.addrs[t])
                amounts.append(amt)
            txs.append((_encode_arrays(_SEL_BATCH_TRANSFER, [frm, to, amounts]), len(to)))
        for _ in range(n_burn):
            f = self._funded_holder()
            amt = rng.randint(1, max(1, bal[f] // 4))
            bal[f] -= amt
            self.supply -= amt
            txs.append(("0x" + (_SEL_BURN + _word(self.addrs[f]) + _word(amt)).hex(), 1))
        for kind, n in (("mint", n_mint), ("burn", n_burn), ("transfer", n_transfer)):
            self.left[kind] -= n
            self.done[kind] += n
        return txs

    def _funded_holder(self) -> int:
        while True:
            i = self.rng.randrange(len(self.funded))
            h = self.funded[i]
            if self.bal[h] >= 2:
                return h
            self.funded[i] = self.funded[-1]  # drained: drop it
            self.funded.pop()


async def build(spec: Spec) -> ChainInfo:
    """Build the chain on a fresh anvil and dump it to the cache."""
    started = time.perf_counter()
    artifact = compile_contract()
    CACHE.mkdir(parents=True, exist_ok=True)
    anvil = Anvil(extra_args=["--no-mining", "--gas-limit", str(GAS_LIMIT), "--base-fee", "1"])
    async with anvil, rpc_client(anvil.url) as rpc:
        nonce = 0

        async def send(data: str, to: str | None, gas: int) -> str:
            nonlocal nonce
            tx: dict[str, Any] = {"from": ANVIL_ACCOUNT0, "data": data, "gas": hex(gas), "nonce": hex(nonce)}
            if to is not None:
                tx["to"] = to
            nonce += 1
            return str(await rpc.rpc("eth_sendTransaction", [tx]))

        from eth_abi import encode

        deploy = artifact.bytecode + encode(["string", "string", "uint8"], ["USD1 Bench", "USD1", 18]).hex()
        h = await send(deploy, None, 3_000_000)
        await rpc.rpc("evm_mine", [])
        receipt = await rpc.rpc("eth_getTransactionReceipt", [h])
        if receipt["contractAddress"].lower() != TOKEN_ADDRESS.lower():
            raise RuntimeError(f"token deployed at {receipt['contractAddress']}, expected {TOKEN_ADDRESS}")
        first_block = int(receipt["blockNumber"], 16) + 1

        plan = _Planner(spec)
        block = first_block
        hashes: list[str] = []
        last_report = time.perf_counter()
        while plan.remaining() > 0:
            txs = plan.block()
            hashes = [await send(data, TOKEN_ADDRESS, 120_000 + 45_000 * n) for data, n in txs]
            await rpc.rpc("evm_mine", [])
            block += 1
            if time.perf_counter() - last_report > 10:
                last_report = time.perf_counter()
                done = spec.events - plan.remaining()
                log(f"workload: {done:,}/{spec.events:,} events, block {block - 1}")
            # Every transaction of this block must have succeeded (no logs lost to a revert).
            receipts_ok = await _statuses(rpc, hashes)
            if not all(receipts_ok):
                raise RuntimeError(f"a workload transaction reverted in block {block - 1}")
        last_event_block = block - 1
        await rpc.rpc("anvil_mine", [hex(FINALITY_PAD)])
        head = int(await rpc.rpc("eth_blockNumber", []), 16)
        supply = int(await rpc.rpc("eth_call", [{"to": TOKEN_ADDRESS, "data": "0x18160ddd"}, "latest"]), 16)
        if supply != plan.supply:
            raise RuntimeError(f"on-chain totalSupply {supply} != planned {plan.supply}")
        await _check_balances(rpc, plan)
        state_hex = str(await rpc.rpc("anvil_dumpState", []))
    raw = bytes.fromhex(state_hex.removeprefix("0x"))
    spec.state_path.write_bytes(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    info = ChainInfo(
        events=spec.events,
        mints=plan.done["mint"],
        burns=plan.done["burn"],
        transfers=plan.done["transfer"],
        holders_touched=len(plan.touched),
        first_block=first_block,
        last_event_block=last_event_block,
        head=head,
        supply=supply,
        token=TOKEN_ADDRESS,
        build_seconds=round(time.perf_counter() - started, 1),
    )
    spec.meta_path.write_text(json.dumps(asdict(info), indent=2))
    return info


async def _statuses(rpc: Rpc, hashes: list[str]) -> list[bool]:
    # eth_getTransactionReceipt carries the logs; only the status is needed, so ask in one batch.
    receipts = await rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
    return [r is not None and r["status"] == "0x1" for r in receipts]


async def _check_balances(rpc: Rpc, plan: _Planner) -> None:
    """Every holder's on-chain balance equals the planner's: no transfer silently failed."""
    sel = selector("balanceOf(address)").hex()
    for start in range(0, len(plan.addrs), 2000):
        chunk = range(start, min(len(plan.addrs), start + 2000))
        calls = [
            ("eth_call", [{"to": TOKEN_ADDRESS, "data": "0x" + sel + _word(plan.addrs[i]).hex()}, "latest"])
            for i in chunk
        ]
        for i, got in zip(chunk, await rpc.batch(calls), strict=True):
            if int(got, 16) != plan.bal[i]:
                raise RuntimeError(f"holder {i}: on-chain balance {int(got, 16)} != planned {plan.bal[i]}")


async def ensure(spec: Spec) -> ChainInfo:
    """The cached chain's info, building it first when missing."""
    if spec.state_path.is_file() and spec.meta_path.is_file():
        return ChainInfo(**json.loads(spec.meta_path.read_text()))
    log(f"workload: building {spec.key} (cached afterwards in {CACHE})")
    info = await build(spec)
    log(f"workload: built in {info.build_seconds}s: {info}")
    return info


@contextlib.asynccontextmanager
async def serve(spec: Spec, *, port: int = 0) -> AsyncIterator[tuple[Anvil, ChainInfo]]:
    """anvil serving the cached chain (automine on, nothing mines unless asked)."""
    info = await ensure(spec)
    t0 = time.perf_counter()
    anvil = Anvil(
        port=port,
        extra_args=["--load-state", str(spec.state_path), "--gas-limit", str(GAS_LIMIT)],
        start_timeout=600,
    )
    async with anvil:
        head = await anvil.block_number()
        if head != info.head:
            raise RuntimeError(f"loaded chain head {head} != cached {info.head}")
        await anvil.mine(SERVE_PAD)
        info = dataclasses.replace(info, head=await anvil.block_number())
        log(f"workload: anvil serving {spec.key} on {anvil.url} (loaded in {time.perf_counter() - t0:.1f}s)")
        yield anvil, info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=DEFAULT_EVENTS)
    ap.add_argument("--holders", type=int, default=DEFAULT_HOLDERS)
    ap.add_argument("--events-per-block", type=int, default=EVENTS_PER_BLOCK)
    ap.add_argument("--rebuild", action="store_true", help="Ignore the cache.")
    args = ap.parse_args()
    spec = Spec(args.events, args.holders, args.events_per_block)
    if args.rebuild:
        spec.state_path.unlink(missing_ok=True)
        spec.meta_path.unlink(missing_ok=True)

    async def go() -> None:
        info = await ensure(spec)
        async with serve(spec) as (_, served):
            log(f"workload: reload ok, head {served.head}")
        print(json.dumps(asdict(info), indent=2))

    asyncio.run(go())


if __name__ == "__main__":
    main()
