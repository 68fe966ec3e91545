"""Local EVM chains for the demo and tests: one anvil per chain, a token, seeded traffic and
occasional shallow reorgs.

The token is the spec's `token`: "test" (default) deploys the project's TestToken at
DETERMINISTIC_TOKEN_ADDRESS, driven by `Traffic`; "usd1" deploys the REAL USD1 (proxy, ProxyAdmin,
implementation: `indexer.devnet.usd1.deploy_usd1`) with the token at DEVNET_USD1_ADDRESS, driven by
`Usd1Traffic` (owner mints, distributes and burns; holders transfer). A USD1 chain's genesis and
deployment blocks are dated `USD1_DEPLOYMENT_AGE` seconds in the past, then its clock jumps to the
present: the deployment's own control events (Upgraded, OwnershipTransferred, AdminChanged) are
two hours old in block time, so the control alerts, which fire for an hour after such an event,
stay quiet on a fresh devnet, and the first control action of a test or a user is what fires them.

A chain whose spec has
`pool=True` (devnet-a in DEFAULT_DEVNET_CHAINS) also gets a real Uniswap V2 USD1/USDC pool at
`indexer.devnet.pools.DEVNET_POOL_ADDRESS` (see config/devnet.yaml's venue), deployed before its
traffic starts; `DevnetChain.pool` drives it (`depeg()` / `restore()`).

`start_evm_devnet` returns once every chain is up (non-blocking; the caller owns the returned
`EvmDevnet` and must `await devnet.stop()`); `run_evm_devnet` runs until `stop` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal, assert_never

import structlog

from indexer.devnet.anvil import Anvil
from indexer.devnet.contract import Erc20Contract
from indexer.devnet.pools import DevnetPool, deploy_v2_pool
from indexer.devnet.solc import Artifact, compile_token
from indexer.devnet.token import DETERMINISTIC_TOKEN_ADDRESS, TestToken
from indexer.devnet.traffic import TokenTraffic, Traffic
from indexer.devnet.usd1 import DEVNET_USD1_ADDRESS, Usd1Deployment, Usd1Traffic, deploy_usd1

DevnetTokenKind = Literal["test", "usd1"]
USD1_DEPLOYMENT_AGE = 7200  # seconds: the USD1 deployment's block time is this far in the past


@dataclass(frozen=True, slots=True)
class DevnetChainSpec:
    """One devnet chain. `port=0` picks a free port (tests); the demo uses fixed ports."""

    name: str
    port: int
    chain_id: int
    block_time: float | None = 1.0  # None = automine (a block per transaction)
    slots_in_an_epoch: int = 2  # safe = head-2, finalized = head-4
    seed: int = 0
    holders: int = 20
    decimals: int = 18
    pool: bool = False  # deploy the USD1/USDC Uniswap V2 pool (indexer.devnet.pools) at start
    token: DevnetTokenKind = "test"  # "usd1": the real USD1 (proxy + ProxyAdmin), see the module doc

    def __post_init__(self) -> None:
        if self.token not in ("test", "usd1"):
            raise ValueError(f"devnet chain {self.name}: token must be 'test' or 'usd1', not {self.token!r}")
        if self.pool and self.token != "test":
            raise ValueError(
                f"devnet chain {self.name}: the Uniswap pool is deployed on a TestToken chain only"
            )
        if self.token == "usd1" and self.decimals != 18:
            raise ValueError(f"devnet chain {self.name}: USD1 has 18 decimals, not {self.decimals}")

    @property
    def token_address(self) -> str:
        """Where the token lands on the fresh chain (checked at deployment)."""
        match self.token:
            case "test":
                return DETERMINISTIC_TOKEN_ADDRESS
            case "usd1":
                return DEVNET_USD1_ADDRESS
            case _:
                assert_never(self.token)


DEFAULT_DEVNET_CHAINS: tuple[DevnetChainSpec, ...] = (
    DevnetChainSpec(name="devnet-a", port=8545, chain_id=31337, seed=1, pool=True),
    DevnetChainSpec(name="devnet-b", port=8546, chain_id=31338, seed=2),
    DevnetChainSpec(name="devnet-usd1", port=8547, chain_id=31339, seed=3, token="usd1"),
)


@dataclass(slots=True)
class DevnetChain:
    spec: DevnetChainSpec
    anvil: Anvil
    token: Erc20Contract  # TestToken, or the USD1 proxy (Usd1Token) with `usd1` set
    traffic: TokenTraffic
    pool: DevnetPool | None = None
    usd1: Usd1Deployment | None = None  # token="usd1": the deployment (ProxyAdmin, upgrade helpers)
    reorgs: int = 0
    errors: int = 0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def url(self) -> str:
        return self.anvil.url

    @property
    def token_address(self) -> str:
        return self.token.address


@dataclass(slots=True)
class EvmDevnet:
    """Running devnet chains and their traffic tasks (owned here: `stop` cancels and awaits)."""

    chains: list[DevnetChain]
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def chain(self, name: str) -> DevnetChain:
        for c in self.chains:
            if c.name == name:
                return c
        raise KeyError(name)

    async def stop(self) -> None:
        """Stop traffic (cancel + await), then every anvil. Safe to call twice."""
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for c in self.chains:
            await c.anvil.stop()
        structlog.get_logger("devnet").info("devnet_stopped", chains=[c.name for c in self.chains])

    async def __aenter__(self) -> EvmDevnet:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def _drive(
    chain: DevnetChain,
    stop: asyncio.Event,
    ops_per_second: float,
    reorg_every: float | None,
    max_reorg_depth: int,
) -> None:
    """One chain's loop: traffic steps, and a reorg of depth 1..max_reorg_depth every `reorg_every`
    seconds. Sequential on purpose, so a reorg never races a step's balance reads."""
    log = structlog.get_logger("devnet").bind(chain=chain.name)
    loop = asyncio.get_running_loop()
    period = 1.0 / ops_per_second if ops_per_second > 0 else 1.0
    next_reorg = loop.time() + reorg_every if reorg_every else None
    failing = False
    while not stop.is_set():
        try:
            if next_reorg is not None and loop.time() >= next_reorg and reorg_every:
                depth = chain.traffic.rng.randint(1, max_reorg_depth)
                await chain.traffic.reorg(depth)
                chain.reorgs += 1
                next_reorg = loop.time() + reorg_every
            elif ops_per_second > 0:
                await chain.traffic.step()
            if failing:
                log.info("traffic_recovered")
                failing = False
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # keep the devnet alive; report once per failure streak
            chain.errors += 1
            if not failing:
                log.warning("traffic_failed", error=repr(exc))
                failing = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period)


async def start_evm_devnet(
    chains: Sequence[DevnetChainSpec] = DEFAULT_DEVNET_CHAINS,
    *,
    cache_dir: Path | None = None,
    reorg_every: float | None = 30.0,
    max_reorg_depth: int = 2,
    ops_per_second: float = 3.0,
    log_dir: Path | None = None,
    pools: bool | None = None,
    own_process_group: bool = False,
) -> EvmDevnet:
    """Start every chain, deploy its token (checked at `spec.token_address`), start traffic, and
    return once all are up. The caller must `await devnet.stop()`.

    `max_reorg_depth` should stay below the finality rule (finalized = head-4 with 2 slots/epoch).
    `pools`: None deploys the Uniswap V2 pool on the chains whose spec says `pool=True`; True on
    every chain, False on none. The pool is deployed before traffic (and reorgs) start.
    `own_process_group`: see `Anvil` (for devnets run from a terminal).
    """
    artifact = await compile_token(cache_dir)
    devnet = EvmDevnet(chains=[])
    results = await asyncio.gather(
        *(
            _start_chain(
                spec, artifact, log_dir, spec.pool if pools is None else pools, cache_dir, own_process_group
            )
            for spec in chains
        ),
        return_exceptions=True,
    )
    devnet.chains = [r for r in results if isinstance(r, DevnetChain)]
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        await devnet.stop()
        raise failures[0]
    for c in devnet.chains:
        devnet._tasks.append(
            asyncio.create_task(
                _drive(c, devnet._stop, ops_per_second, reorg_every, max_reorg_depth),
                name=f"devnet-traffic-{c.name}",
            )
        )
    return devnet


async def _start_chain(
    spec: DevnetChainSpec,
    artifact: Artifact,
    log_dir: Path | None,
    with_pool: bool = False,
    cache_dir: Path | None = None,
    own_process_group: bool = False,
) -> DevnetChain:
    backdate = spec.token == "usd1"
    node = Anvil(
        port=spec.port,
        chain_id=spec.chain_id,
        slots_in_an_epoch=spec.slots_in_an_epoch,
        block_time=spec.block_time,
        extra_args=["--timestamp", str(int(time.time()) - USD1_DEPLOYMENT_AGE)] if backdate else None,
        log_file=(log_dir / f"anvil-{spec.name}.log") if log_dir else None,
        own_process_group=own_process_group,
    )
    await node.start()
    token: Erc20Contract
    traffic: TokenTraffic
    pool: DevnetPool | None = None
    usd1: Usd1Deployment | None = None
    opts = {"seed": spec.seed, "holders": spec.holders, "wait": spec.block_time is None, "chain": spec.name}
    try:
        match spec.token:
            case "test":
                test_token = await TestToken.deploy(
                    node, artifact, decimals=spec.decimals, expect_address=spec.token_address
                )
                if with_pool:
                    pool = await deploy_v2_pool(node, test_token, cache_dir=cache_dir)
                token, traffic = test_token, Traffic(test_token, **opts)
            case "usd1":
                if with_pool:
                    raise ValueError(f"devnet chain {spec.name}: no Uniswap pool on a USD1 chain")
                usd1 = await deploy_usd1(node, cache_dir=cache_dir)
                if usd1.token.address.lower() != spec.token_address.lower():
                    raise RuntimeError(
                        f"USD1 deployed at {usd1.token.address}, expected {spec.token_address}"
                        " (is the chain fresh?)"
                    )
                # The deployment is history: from the next block on, the chain keeps wall-clock time.
                await node.rpc("evm_setNextBlockTimestamp", [int(time.time())])
                token, traffic = usd1.token, Usd1Traffic(usd1.token, **opts)
            case _:
                assert_never(spec.token)
    except BaseException:
        await node.stop()
        raise
    structlog.get_logger("devnet").info(
        "devnet_chain_up",
        chain=spec.name,
        url=node.url,
        chain_id=spec.chain_id,
        token=token.address,
        token_kind=spec.token,
        pool=pool.address if pool is not None else None,
        block_time=spec.block_time,
    )
    return DevnetChain(spec=spec, anvil=node, token=token, traffic=traffic, pool=pool, usd1=usd1)


async def run_evm_devnet(
    chains: Sequence[DevnetChainSpec],
    stop: asyncio.Event,
    cache_dir: Path | None = None,
    reorg_every: float | None = 30.0,
    *,
    max_reorg_depth: int = 2,
    ops_per_second: float = 3.0,
    log_dir: Path | None = None,
    pools: bool | None = None,
    own_process_group: bool = False,
) -> None:
    """Run the devnet until `stop` is set (or the task is cancelled), then shut everything down."""
    devnet = await start_evm_devnet(
        chains,
        cache_dir=cache_dir,
        reorg_every=reorg_every,
        max_reorg_depth=max_reorg_depth,
        ops_per_second=ops_per_second,
        log_dir=log_dir,
        pools=pools,
        own_process_group=own_process_group,
    )
    log = structlog.get_logger("devnet")
    log.info(
        "devnet_running",
        chains={c.name: c.url for c in devnet.chains},
        tokens={c.name: c.token_address for c in devnet.chains},
    )
    try:
        await stop.wait()
    finally:
        await devnet.stop()
