"""Local EVM chains for the demo and tests: one anvil per chain, the TestToken deployed at the
deterministic address, seeded traffic and occasional shallow reorgs. A chain whose spec has
`pool=True` (devnet-a in DEFAULT_DEVNET_CHAINS) also gets a real Uniswap V2 USD1/USDC pool at
`indexer.devnet.pools.DEVNET_POOL_ADDRESS` (see config/devnet.yaml's venue), deployed before its
traffic starts; `DevnetChain.pool` drives it (`depeg()` / `restore()`).

`start_evm_devnet` returns once every chain is up (non-blocking; the caller owns the returned
`EvmDevnet` and must `await devnet.stop()`); `run_evm_devnet` runs until `stop` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import structlog

from indexer.devnet.anvil import Anvil
from indexer.devnet.pools import DevnetPool, deploy_v2_pool
from indexer.devnet.solc import Artifact, compile_token
from indexer.devnet.token import DETERMINISTIC_TOKEN_ADDRESS, TestToken
from indexer.devnet.traffic import Traffic


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


DEFAULT_DEVNET_CHAINS: tuple[DevnetChainSpec, ...] = (
    DevnetChainSpec(name="devnet-a", port=8545, chain_id=31337, seed=1, pool=True),
    DevnetChainSpec(name="devnet-b", port=8546, chain_id=31338, seed=2),
)


@dataclass(slots=True)
class DevnetChain:
    spec: DevnetChainSpec
    anvil: Anvil
    token: TestToken
    traffic: Traffic
    pool: DevnetPool | None = None
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
    """Start every chain, deploy the token on each (checked at DETERMINISTIC_TOKEN_ADDRESS), start
    traffic, and return once all are up. The caller must `await devnet.stop()`.

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
    node = Anvil(
        port=spec.port,
        chain_id=spec.chain_id,
        slots_in_an_epoch=spec.slots_in_an_epoch,
        block_time=spec.block_time,
        log_file=(log_dir / f"anvil-{spec.name}.log") if log_dir else None,
        own_process_group=own_process_group,
    )
    await node.start()
    try:
        token = await TestToken.deploy(
            node, artifact, decimals=spec.decimals, expect_address=DETERMINISTIC_TOKEN_ADDRESS
        )
        pool = await deploy_v2_pool(node, token, cache_dir=cache_dir) if with_pool else None
    except BaseException:
        await node.stop()
        raise
    traffic = Traffic(
        token, seed=spec.seed, holders=spec.holders, wait=spec.block_time is None, chain=spec.name
    )
    structlog.get_logger("devnet").info(
        "devnet_chain_up",
        chain=spec.name,
        url=node.url,
        chain_id=spec.chain_id,
        token=token.address,
        pool=pool.address if pool is not None else None,
        block_time=spec.block_time,
    )
    return DevnetChain(spec=spec, anvil=node, token=token, traffic=traffic, pool=pool)


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
        "devnet_running", chains={c.name: c.url for c in devnet.chains}, token=DETERMINISTIC_TOKEN_ADDRESS
    )
    try:
        await stop.wait()
    finally:
        await devnet.stop()
