"""Drills against the running devnet: the actions of an `indexer.drills.DrillPlan`.

Every action goes through the devnet's JSON-RPC: real transactions from anvil's unlocked (or
impersonated) accounts, and anvil cheatcodes (`anvil_reorg`, `evm_setIntervalMining`,
`evm_setAutomine`). `probe` checks first that each chain the plan touches answers, and that the
contracts the drill needs are deployed there; a devnet that is not running is a `DrillError`
naming the chain and URL (the CLI prints it on one line and exits 2).

`run_drill(plan, say=...)` performs the plan and reports each step through `say`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import assert_never

import aiohttp
import orjson
from eth_abi import decode

from indexer.devnet.anvil import AnvilError, JsonRpcClient, RpcCallError
from indexer.devnet.contract import ANVIL_ACCOUNT0, DevnetContract, TxFailed, calldata, checksum
from indexer.devnet.pools import DEVNET_POOL_DEPLOYER, DevnetPool
from indexer.devnet.solana_admin import DevnetUnreachable, SolanaAdminClient, SolanaAdminError
from indexer.devnet.token import TestToken
from indexer.devnet.usd1 import (
    DEVNET_USD1_PROXY_ADMIN_ADDRESS,
    ProxyAdmin,
    Usd1Token,
    compile_usd1,
    deploy_v2_implementation,
)
from indexer.drills import ChainTarget, DrillError, DrillPlan, VenueTarget, admin_base

Say = Callable[[str], None]
PROBE_TIMEOUT = 5.0


async def _client(chain: ChainTarget) -> JsonRpcClient:
    """A JSON-RPC client of a chain that answered eth_chainId; DrillError when it does not."""
    client = JsonRpcClient(chain.rpc)
    try:
        await asyncio.wait_for(client.call("eth_chainId"), PROBE_TIMEOUT)
    except (aiohttp.ClientError, OSError, TimeoutError, orjson.JSONDecodeError) as exc:
        await client.close()
        reason = str(exc) or type(exc).__name__
        raise DrillError(
            f"devnet chain {chain.name} is not answering at {chain.rpc} ({reason}); start it with"
            " `usd1-indexer devnet` (or `demo`), or pass --devnet CHAIN=URL"
        ) from None
    except AnvilError as exc:
        await client.close()
        raise DrillError(f"devnet chain {chain.name} at {chain.rpc}: {exc}") from None
    return client


async def _has_code(client: JsonRpcClient, chain: ChainTarget, address: str, what: str) -> None:
    code = await client.call("eth_getCode", [address, "latest"])
    if not isinstance(code, str) or code in ("0x", "0x0", ""):
        raise DrillError(f"{chain.name}: no {what} at {address} (is this the project's devnet?)")


async def _head(client: JsonRpcClient, tag: str = "latest") -> int:
    block = await client.call("eth_getBlockByNumber", [tag, False])
    if block is None:
        raise DrillError(f"{client.url}: no {tag} block")
    return int(block["number"], 16)


async def _pool(client: JsonRpcClient, chain: ChainTarget, venue: VenueTarget) -> DevnetPool:
    assert venue.pool is not None
    await _has_code(client, chain, venue.pool, f"pool of venue {venue.name}")
    pair = DevnetContract(client, venue.pool)
    t0 = checksum(decode(["address"], await pair.call(calldata("token0()", [], [])))[0])
    t1 = checksum(decode(["address"], await pair.call(calldata("token1()", [], [])))[0])
    token = checksum(chain.token)
    if token not in (t0, t1):
        raise DrillError(
            f"pool {venue.pool} of venue {venue.name} does not hold {chain.name}'s token {token}"
        )
    quote = t1 if token == t0 else t0
    return DevnetPool(client, TestToken(client, token, decimals=chain.decimals), venue.pool, quote)


async def run_drill(plan: DrillPlan, *, say: Say, cache_dir: Path | None = None) -> None:
    """Perform `plan` against the devnet (after probing it). Raises DrillError on a devnet that
    is not running or not the project's; a reverted transaction is a DrillError too."""
    if plan.skip is not None:
        return
    if plan.drill == "venue-outage":
        await _venue_outage(plan, say)
        return
    chain = plan.chain
    assert chain is not None
    if chain.kind == "solana":
        await _run_solana(plan, chain, say)
        return
    client = await _client(chain)
    try:
        await _run(plan, chain, client, say, cache_dir)
    except TxFailed as exc:
        raise DrillError(f"{chain.name}: a drill transaction reverted: {exc}") from None
    except RpcCallError as exc:  # e.g. a cheatcode this node does not serve (not anvil)
        raise DrillError(f"{chain.name} at {chain.rpc}: {exc}") from None
    finally:
        await client.close()


async def _run(
    plan: DrillPlan, chain: ChainTarget, client: JsonRpcClient, say: Say, cache_dir: Path | None
) -> None:
    opts = plan.options
    match plan.drill:
        case "depeg":
            assert plan.venue is not None
            pool = await _pool(client, chain, plan.venue)
            if opts.restore:
                after = await pool.restore()
                say(f"pool {plan.venue.name} back at {float(after.price):.4f}")
                return
            after = await pool.move_to(Fraction(1) + Fraction(opts.bps).limit_denominator(10**6) / 10_000)
            say(f"pool {plan.venue.name} now at {float(after.price):.4f} ({after.deviation_bps:+.0f} bps)")
            if opts.hold is not None:
                say(f"holding {opts.hold:g}s")
                await asyncio.sleep(opts.hold)
                after = await pool.restore()
                say(f"pool {plan.venue.name} back at {float(after.price):.4f}")
        case "redemption-run":
            await _redemption_run(plan, chain, client, say)
        case "pool-drain":
            assert plan.venue is not None
            pool = await _pool(client, chain, plan.venue)
            reserves_before = await pool.reserves()
            lp = DevnetContract(client, pool.address, default_sender=DEVNET_POOL_DEPLOYER)
            held = int(
                decode(
                    ["uint256"],
                    await lp.call(calldata("balanceOf(address)", ["address"], [DEVNET_POOL_DEPLOYER])),
                )[0]
            )
            amount = int(Fraction(held) * Fraction(opts.fraction).limit_denominator(10**6))
            if amount == 0:
                raise DrillError(
                    f"the pool deployer {DEVNET_POOL_DEPLOYER} holds no liquidity of {pool.address}"
                )
            await lp.transact("transfer(address,uint256)", ["address", "uint256"], [pool.address, amount])
            await lp.transact("burn(address)", ["address"], [DEVNET_POOL_DEPLOYER], gas=300_000)
            reserves_after = await pool.reserves()
            say(
                f"pool {plan.venue.name} reserves {reserves_before} -> {reserves_after} (base units; token, quote)"
            )
        case "upgrade":
            await _has_code(client, chain, chain.token, "USD1 proxy")
            await _has_code(client, chain, DEVNET_USD1_PROXY_ADMIN_ADDRESS, "USD1 ProxyAdmin")
            token = Usd1Token(client, chain.token)
            admin = ProxyAdmin(client, DEVNET_USD1_PROXY_ADMIN_ADDRESS)
            owner = await admin.current_owner()
            old_impl = await token.implementation()
            artifacts = await asyncio.to_thread(compile_usd1, cache_dir)
            await admin.prepare_account(owner)
            impl = await deploy_v2_implementation(client, artifacts, owner.lower())
            admin.default_sender = owner.lower()
            receipt = await admin.upgrade(chain.token, impl)
            say(
                f"{chain.name}: proxy {chain.token} upgraded {old_impl} -> {await token.implementation()}"
                f" in block {receipt.block_number}"
            )
        case "deep-reorg":
            head = await _head(client)
            if opts.depth is not None:
                depth = opts.depth
            elif chain.confirmations is not None:
                depth = chain.confirmations + 2
            else:
                depth = head - await _head(client, "finalized") + 2
            if depth >= head:
                raise DrillError(f"{chain.name}: reorg depth {depth} reaches genesis (head {head})")
            old = await client.call("eth_getBlockByNumber", [hex(head - depth + 1), False])
            # one self-transfer per replaced block, so every replacement block is new
            pairs = [
                [{"from": ANVIL_ACCOUNT0, "to": ANVIL_ACCOUNT0, "value": hex(1 + i)}, i] for i in range(depth)
            ]
            await client.call("anvil_reorg", [depth, pairs])
            new = await client.call("eth_getBlockByNumber", [hex(head - depth + 1), False])
            say(
                f"{chain.name}: reorged {depth} blocks from {head - depth + 1} (hash {old['hash'][:10]}"
                f" -> {new['hash'][:10]}), head {await _head(client)}"
            )
        case "stall":
            if opts.restore:
                await _resume(client, chain, opts.block_time, say)
                return
            await client.call("evm_setAutomine", [False])
            await client.call("evm_setIntervalMining", [0])
            say(f"{chain.name}: mining paused at block {await _head(client)}")
            if opts.hold is not None:
                say(f"holding {opts.hold:g}s")
                await asyncio.sleep(opts.hold)
                await _resume(client, chain, opts.block_time, say)
        case "venue-outage":
            pass  # no chain: run before this (`_venue_outage`)
        case _:
            assert_never(plan.drill)


async def _run_solana(plan: DrillPlan, chain: ChainTarget, say: Say) -> None:
    """stall and deep-reorg on the Solana devnet, through its admin methods (devnet_*)."""
    opts = plan.options
    async with SolanaAdminClient(chain.rpc) as dev:
        try:
            status = await asyncio.wait_for(dev.status(), PROBE_TIMEOUT)
            match plan.drill:
                case "stall":
                    if opts.restore:
                        await dev.set_producing(True)
                        say(f"{chain.name}: slots produced again (tip {status['tip']})")
                        return
                    await dev.set_producing(False)
                    say(f"{chain.name}: slot production paused at slot {status['tip']}")
                    if opts.hold is not None:
                        say(f"holding {opts.hold:g}s")
                        await asyncio.sleep(opts.hold)
                        await dev.set_producing(True)
                        say(f"{chain.name}: slots produced again")
                case "deep-reorg":
                    tip, finalized = int(status["tip"]), int(status["finalized"])
                    depth = opts.depth if opts.depth is not None else tip - finalized + 2
                    dropped = await dev.fork(depth=depth, reuse_slots=True, below_finalized=True)
                    say(
                        f"{chain.name}: forked {len(dropped)} blocks from slot {min(dropped, default=tip)}"
                        f" (finalized was {finalized}, tip {tip})"
                    )
                case _:
                    raise DrillError(f"drill {plan.drill} does not run on Solana chain {chain.name}")
        except (DevnetUnreachable, TimeoutError) as exc:
            raise DrillError(
                f"devnet chain {chain.name} is not answering at {chain.rpc} ({exc or 'timeout'}); start it"
                " with `usd1-indexer devnet`, or pass --devnet CHAIN=URL"
            ) from None
        except SolanaAdminError as exc:
            raise DrillError(
                f"{chain.name} at {chain.rpc}: {exc} (is its admin on? --solana-admin)"
            ) from None


async def _resume(client: JsonRpcClient, chain: ChainTarget, block_time: int, say: Say) -> None:
    await client.call("evm_setIntervalMining", [block_time])
    say(f"{chain.name}: mining resumed, a block every {block_time:g}s (head {await _head(client)})")


async def _redemption_run(plan: DrillPlan, chain: ChainTarget, client: JsonRpcClient, say: Say) -> None:
    opts = plan.options
    await _has_code(client, chain, chain.token, "USD1 proxy")
    token = Usd1Token(client, chain.token)
    token.owner = (await token.current_owner()).lower()
    supply = await token.total_supply()
    total = int(Fraction(supply) * Fraction(opts.share).limit_denominator(10**9))
    each = total // opts.burns
    if each == 0:
        raise DrillError(
            f"{chain.name}: total supply {supply} is too small to burn {opts.share:.1%} in {opts.burns} burns"
        )
    minted = 0
    for i in range(opts.burns):
        for _attempt in range(3):  # the devnet's traffic also spends the owner's balance: top up, retry
            held = await token.balance_of(token.owner)
            if held < each:
                await token.mint(each - held)
                minted += each - held
            receipt = await token.burn(each, check=False)
            if receipt.ok:
                say(f"burn {i + 1}/{opts.burns}: {each} base units in block {receipt.block_number}")
                break
        else:
            raise DrillError(f"{chain.name}: burn {i + 1} reverted 3 times (the owner's balance kept moving)")
        if i + 1 < opts.burns:
            await asyncio.sleep(opts.every)
    if minted:
        say(f"the owner minted {minted} base units to fund the burns")


__all__ = ["run_drill"]


async def _venue_outage(plan: DrillPlan, say: Say) -> None:
    """Take the devnet book down (or back up) through its admin method."""
    venue = plan.venue
    assert venue is not None and venue.url is not None
    base = admin_base(venue.url)
    assert base is not None
    timeout = aiohttp.ClientTimeout(total=5)

    async def set_down(down: bool) -> None:
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(f"{base}/devnet/outage", json={"down": down}) as resp,
            ):
                if resp.status != 200:
                    raise DrillError(f"venue {venue.name}: {base}/devnet/outage answered HTTP {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DrillError(
                f"venue {venue.name}: the devnet book is not answering at {base} ({type(exc).__name__})"
            ) from None
        say(f"venue {venue.name} {'down (503)' if down else 'back up'}")

    opts = plan.options
    await set_down(not opts.restore)
    if opts.hold is not None and not opts.restore:
        say(f"holding {opts.hold:g}s")
        await asyncio.sleep(opts.hold)
        await set_down(False)
