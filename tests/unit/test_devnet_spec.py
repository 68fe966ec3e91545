"""DevnetChainSpec: the token option and what it rules out (no I/O)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from indexer.config import load_config
from indexer.devnet.evm_devnet import DEFAULT_DEVNET_CHAINS, DevnetChainSpec
from indexer.devnet.token import DETERMINISTIC_TOKEN_ADDRESS
from indexer.devnet.usd1 import DEVNET_USD1_ADDRESS, DEVNET_USD1_PROXY_ADMIN_ADDRESS

ROOT = Path(__file__).resolve().parents[2]


def test_token_defaults_to_the_test_token_and_usd1_lands_at_the_proxy_address() -> None:
    assert DevnetChainSpec(name="x", port=0, chain_id=1).token == "test"
    assert DevnetChainSpec(name="x", port=0, chain_id=1).token_address == DETERMINISTIC_TOKEN_ADDRESS
    assert DevnetChainSpec(name="x", port=0, chain_id=1, token="usd1").token_address == DEVNET_USD1_ADDRESS


def test_the_demo_devnet_keeps_its_two_test_chains_and_adds_a_usd1_chain() -> None:
    by_name = {c.name: c for c in DEFAULT_DEVNET_CHAINS}
    assert [(c.name, c.token, c.pool) for c in DEFAULT_DEVNET_CHAINS] == [
        ("devnet-a", "test", True),
        ("devnet-b", "test", False),
        ("devnet-usd1", "usd1", False),
    ]
    assert (
        len({c.port for c in DEFAULT_DEVNET_CHAINS}) == len({c.chain_id for c in DEFAULT_DEVNET_CHAINS}) == 3
    )
    assert by_name["devnet-usd1"].port == 8547


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"token": "usdt"}, "token must be 'test' or 'usd1', not 'usdt'"),
        ({"token": "usd1", "pool": True}, "the Uniswap pool is deployed on a TestToken chain only"),
        ({"token": "usd1", "decimals": 6}, "USD1 has 18 decimals, not 6"),
    ],
)
def test_bad_specs_are_refused_naming_the_chain(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="devnet chain bad: ") as err:
        DevnetChainSpec(name="bad", port=0, chain_id=1, **kwargs)
    assert message in str(err.value)


def test_config_devnet_yaml_indexes_the_devnet_chains_where_they_are() -> None:
    """config/devnet.yaml (what `make demo` indexes) names each EVM devnet chain's port and token
    address, and the USD1 chain's profile and ProxyAdmin, as the devnet deploys them."""
    cfg = load_config(ROOT / "config" / "devnet.yaml", env={})
    chains = {c.name: c for c in cfg.chains}
    for spec in DEFAULT_DEVNET_CHAINS:
        c = chains[spec.name]
        assert c.rpc == [f"http://127.0.0.1:{spec.port}"], spec.name
        assert str(c.token).lower() == spec.token_address.lower(), spec.name
    usd1 = chains["devnet-usd1"]
    assert usd1.profile == "usd1"
    assert [str(w.address).lower() for w in usd1.watch] == [DEVNET_USD1_PROXY_ADMIN_ADDRESS.lower()]
