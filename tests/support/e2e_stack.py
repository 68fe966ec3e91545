"""The daemon config and reserve attestation the e2e tests run on the devnet: devnet-a (TestToken
and the Uniswap V2 pool venue), optionally devnet-b (confirmations 3, behind a fault proxy), and
devnet-usd1 (the real USD1, profile usd1, its ProxyAdmin watched)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from indexer.config import Config
from indexer.devnet.pools import DEVNET_POOL_ADDRESS
from indexer.devnet.token import DETERMINISTIC_TOKEN_ADDRESS
from indexer.devnet.usd1 import DEVNET_USD1_ADDRESS, DEVNET_USD1_PROXY_ADMIN_ADDRESS

VENUE = "devnet-univ2-usd1-usdc"
USD1_CHAIN = "devnet-usd1"


def write_attestation(path: Path, total_usd: str, who: str = "e2e test") -> None:
    """A version 1 attestation as of now."""
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "token": "USD1",
                "as_of": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "custodian": f"{who} custodian (illustrative)",
                "attestor": f"{who} attestor",
                "assets": [{"category": "cash", "amount_usd": total_usd}],
            }
        )
    )


def devnet_config(
    dsn: str, data_dir: Path, *, rpc_a: str, rpc_usd1: str, reserves: Path, rpc_b: str | None = None
) -> Config:
    chain: dict[str, Any] = {
        "kind": "evm",
        "decimals": 18,
        "start_block": 0,
        "poll_interval": "500ms",
        "request_timeout": "2s",
        "lag_budget": "30s",
        "finality": {"tag": "finalized"},
    }
    chains: list[dict[str, Any]] = [
        {**chain, "name": "devnet-a", "rpc": [rpc_a], "token": DETERMINISTIC_TOKEN_ADDRESS}
    ]
    if rpc_b is not None:
        chains.append(
            {
                **chain,
                "name": "devnet-b",
                "rpc": [rpc_b],
                "token": DETERMINISTIC_TOKEN_ADDRESS,
                "finality": {"confirmations": 3},
            }
        )
    chains.append(
        {
            **chain,
            "name": USD1_CHAIN,
            "rpc": [rpc_usd1],
            "token": DEVNET_USD1_ADDRESS,
            "profile": "usd1",
            "watch": [
                {"address": DEVNET_USD1_PROXY_ADMIN_ADDRESS, "label": "proxy_admin", "controls": ["ownable"]}
            ],
            "control_check_interval": "1s",
        }
    )
    return Config.model_validate(
        {
            "token": {"symbol": "USD1", "peg_usd": 1.0},
            "database": {"dsn": dsn},
            "data_dir": str(data_dir),
            "http": {"listen": "127.0.0.1:0"},
            "chains": chains,
            "market": {"bands_bps": [10, 50, 100]},
            "venues": [
                {
                    "name": VENUE,
                    "kind": "uniswap_v2",
                    "chain": "devnet-a",
                    "pool": DEVNET_POOL_ADDRESS,
                    "quote_usd": 1.0,
                    "interval": "1s",
                    "page_depth_floor_usd": 100,
                }
            ],
            "reserves": {"url": reserves.as_uri(), "interval": "2s"},
        }
    )
