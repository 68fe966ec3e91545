"""Shared integration fixtures: a real anvil, the deployed TestToken, seeded traffic.

- `token_artifact` (session): TestToken compiled by npm solc, cached under .usd1/cache/.
- `anvil` (function): a fresh anvil on a free port, automine, slots_in_an_epoch=2
  (safe = head-2, finalized = head-4). Stopped (process killed and reaped) after the test.
- `token` (function): TestToken deployed on `anvil` at DETERMINISTIC_TOKEN_ADDRESS.
- `traffic` (function): `Traffic(token, seed=1234, holders=12, wait=True)`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from indexer.devnet.anvil import Anvil
from indexer.devnet.solc import Artifact, compile_contract
from indexer.devnet.token import DETERMINISTIC_TOKEN_ADDRESS, TestToken
from indexer.devnet.traffic import Traffic


@pytest.fixture(scope="session")
def token_artifact() -> Artifact:
    return compile_contract()


@pytest.fixture
async def anvil() -> AsyncIterator[Anvil]:
    node = Anvil(port=0, chain_id=31337, slots_in_an_epoch=2)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


@pytest.fixture
async def token(anvil: Anvil, token_artifact: Artifact) -> TestToken:
    return await TestToken.deploy(anvil, token_artifact, expect_address=DETERMINISTIC_TOKEN_ADDRESS)


@pytest.fixture
def traffic(token: TestToken) -> Traffic:
    return Traffic(token, seed=1234, holders=12, wait=True)
