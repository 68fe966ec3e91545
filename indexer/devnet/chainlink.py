"""A Chainlink AggregatorV3 feed on anvil, from Chainlink's own npm sources.

`MockV3Aggregator` of npm `@chainlink/contracts@0.4.2` (`src/v0.8/tests/MockV3Aggregator.sol`, MIT,
implements `AggregatorV2V3Interface`: `latestRoundData`, `getRoundData`, `decimals`, `description`,
`version`), compiled unmodified with the project solc. It is Chainlink's own test aggregator: the
answer is set by `updateAnswer` / `updateRoundData` instead of by oracle reports, and read through
exactly the interface a consumer (the proof-of-reserve reader of issue #16) uses on mainnet.
It emits no events (`AnswerUpdated` / `NewRound` are declared by the interface, never emitted by
the mock): read it with calls, at a block if needed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from indexer.devnet.contract import ANVIL_ACCOUNT0, DevnetContract, Rpc, TxReceipt, deploy_contract
from indexer.devnet.solc import Artifact, compile_contract

MOCK_V3_AGGREGATOR_UNIT = "@chainlink/contracts/src/v0.8/tests/MockV3Aggregator.sol"


@dataclass(frozen=True, slots=True)
class RoundData:
    """One `latestRoundData()` / `getRoundData()` reply (AggregatorV3Interface)."""

    round_id: int
    answer: int
    started_at: int
    updated_at: int  # seconds; the feed's age is now - updated_at
    answered_in_round: int


def compile_mock_aggregator(cache_dir: Path | None = None) -> Artifact:
    """Chainlink's MockV3Aggregator (cached). Blocking."""
    return compile_contract(MOCK_V3_AGGREGATOR_UNIT, "MockV3Aggregator", cache_dir=cache_dir)


_ROUND_TYPES = ("uint80", "int256", "uint256", "uint256", "uint80")


class ChainlinkFeed(DevnetContract):
    """A deployed MockV3Aggregator. Anyone may set the answer; we send from `default_sender`."""

    @classmethod
    async def deploy(
        cls,
        rpc: Rpc,
        *,
        decimals: int = 18,
        initial_answer: int = 0,
        deployer: str = ANVIL_ACCOUNT0,
        cache_dir: Path | None = None,
    ) -> ChainlinkFeed:
        """Deploy with `decimals` and a first answer (round 1, timestamped with its block)."""
        artifact = await asyncio.to_thread(compile_mock_aggregator, cache_dir)
        receipt = await deploy_contract(
            rpc, artifact, ["uint8", "int256"], [decimals, initial_answer], deployer=deployer
        )
        assert receipt.contract_address is not None
        return cls(rpc, receipt.contract_address, default_sender=deployer)

    async def update_answer(self, answer: int, *, check: bool = True) -> TxReceipt:
        """A new round (latestRound + 1) with `answer`, started and updated at this block's time."""
        return await self.transact("updateAnswer(int256)", ["int256"], [answer], check=check)

    async def update_round_data(
        self, round_id: int, answer: int, updated_at: int, started_at: int, *, check: bool = True
    ) -> TxReceipt:
        """Set round `round_id` as the latest with explicit timestamps (e.g. a stale feed)."""
        return await self.transact(
            "updateRoundData(uint80,int256,uint256,uint256)",
            ["uint80", "int256", "uint256", "uint256"],
            [round_id, answer, updated_at, started_at],
            check=check,
        )

    async def latest_round_data(self, block: int | str = "latest") -> RoundData:
        return RoundData(*(int(v) for v in await self.read("latestRoundData()", _ROUND_TYPES, block=block)))

    async def get_round_data(self, round_id: int, block: int | str = "latest") -> RoundData:
        out = await self.read("getRoundData(uint80)", _ROUND_TYPES, ["uint80"], [round_id], block)
        return RoundData(*(int(v) for v in out))

    async def decimals(self, block: int | str = "latest") -> int:
        return int((await self.read("decimals()", ["uint8"], block=block))[0])

    async def description(self, block: int | str = "latest") -> str:
        return str((await self.read("description()", ["string"], block=block))[0])
