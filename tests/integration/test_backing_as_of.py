"""Reserves at the attestation's date (issue #16 item 3) on real parts: two anvil chains (a native
one whose CCIP lock pool holds bridged-out tokens, and the chain bridged by it) indexed by the
daemon's followers into PostgreSQL, an attestation whose `as_of` lies between blocks on both
chains, read by the daemon's ReservesService with the daemon's own supply readers. The ratio at
as_of is exact against the chains' `totalSupply` / `balanceOf` at the last block at or before
as_of on each chain; the coverage and the drift are exact after later mints and burns; an as_of
above what is final (or before a chain's index) exports NaN and the API says why."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from indexer.api.app import create_app
from indexer.config import Config, ReservesConfig
from indexer.daemon import circulating_at, finalized_circulating, serve_http
from indexer.devnet.anvil import Anvil
from indexer.devnet.solc import Artifact
from indexer.devnet.token import DETERMINISTIC_TOKEN_ADDRESS, TestToken
from indexer.devnet.traffic import holder_addresses
from indexer.reserves import ReservesService
from indexer.sync.supply_classes import SupplyClassesExporter
from indexer.units import to_decimal_str, to_float
from tests.integration.test_bridges_anvil import POOL, _anvil, running
from tests.support import openapi_schema

pytestmark = pytest.mark.integration
NATIVE, BRIDGED = "native", "bridged"
EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "reserves.example.json"
RESERVES = "1000.25"


@pytest.fixture
async def remote() -> AsyncIterator[Anvil]:
    async for node in _anvil(31338):
        yield node


def config_dict(native: Anvil, bridged: Anvil, dsn: str, tmp: Path) -> dict[str, Any]:
    chain: dict[str, Any] = {
        "kind": "evm",
        "token": DETERMINISTIC_TOKEN_ADDRESS,
        "decimals": 18,
        "finality": {"tag": "finalized"},
        "poll_interval": "50ms",
        "request_timeout": "5s",
    }
    return {
        "database": {"dsn": dsn},
        "data_dir": str(tmp),
        "chains": [
            {
                **chain,
                "name": NATIVE,
                "rpc": [native.url],
                "bridge": "ccip",
                "non_circulating": [{"address": POOL, "label": "bridge_lock"}],
            },
            {**chain, "name": BRIDGED, "rpc": [bridged.url], "role": "bridged", "bridge": "ccip"},
        ],
        "bridges": [{"name": "ccip"}],
    }


def attestation(path: Path, as_of: str) -> None:
    d: dict[str, Any] = json.loads(EXAMPLE.read_text())
    d.pop("signature")
    d["as_of"] = as_of
    d["assets"] = [{"category": "cash", "amount_usd": RESERVES}]
    d["total_usd"] = RESERVES
    path.write_text(json.dumps(d))


async def head(node: Anvil) -> tuple[int, str, int]:
    b = await node.rpc("eth_getBlockByNumber", ["latest", False])
    return int(b["number"], 16), b["hash"], int(b["timestamp"], 16)


def ratio(circulating: int) -> Fraction:
    return Fraction(Decimal(RESERVES)) * Fraction(10**18, circulating)


def ratio_str(r: Fraction) -> str:
    return str((Decimal(r.numerator) / Decimal(r.denominator)).quantize(Decimal("1e-12")))


async def test_ratio_at_as_of_uses_the_right_block_on_every_chain(
    anvil: Anvil, token: TestToken, remote: Anvil, token_artifact: Artifact, dsn: str, tmp_path: Path
) -> None:
    bridged = await TestToken.deploy(remote, token_artifact, expect_address=DETERMINISTIC_TOKEN_ADDRESS)
    cfg = Config.model_validate(config_dict(anvil, remote, dsn, tmp_path))
    holders = [h.lower() for h in holder_addresses(7, 4)]
    async with running(cfg) as run:
        # Before as_of: issuance on the native chain, 150 tokens bridged out (locked + minted).
        for i, h in enumerate(holders):
            await token.mint(h, 200 * 10**18 + i)
        await token.transfer(holders[0], POOL, 150 * 10**18 + 7)
        await bridged.mint(holders[1], 150 * 10**18 + 7)
        await token.transfer(holders[2], holders[3], 5 * 10**18)
        await bridged.transfer(holders[1], holders[2], 10**18)
        (n_nat, h_nat, t_nat), (n_br, h_br, t_br) = await head(anvil), await head(remote)
        # as_of strictly between blocks on both chains: after each chain's last block so far,
        # before any later one (blocks are stamped in whole seconds of the wall clock)
        as_of = max(t_nat, t_br) + 0.5
        await asyncio.sleep(max(0.0, as_of + 0.6 - time.time()))
        # After as_of: mints and burns on both chains, a release from the pool.
        await token.mint(holders[0], 42 * 10**18 + 3)
        await token.burn(holders[3], 7 * 10**18 + 1)
        await bridged.burn(holders[2], 10**18)
        await token.transfer(POOL, holders[2], 10**18)
        await bridged.mint(holders[0], 11)
        assert (await head(anvil))[2] > as_of and (await head(remote))[2] > as_of

        path = tmp_path / "reserves.json"
        attestation(path, datetime.fromtimestamp(as_of, UTC).isoformat().replace("+00:00", "Z"))
        metrics = run.rt.metrics
        gauge = metrics.registry.get_sample_value
        async with aiohttp.ClientSession() as session:
            svc = ReservesService(
                ReservesConfig(url="file://reserves.json", interval=3600),
                metrics,
                session,
                lambda: finalized_circulating(run.rt),
                base_dir=tmp_path,
                supply_at=lambda when: circulating_at(run.rt, when),
                as_of_interval=3600,
            )
            app = create_app(cfg, run.rt.store, metrics, run.rt.statuses, reserves=svc.snapshot)
            async with serve_http(app, "127.0.0.1", 0) as port:

                async def reserves() -> Any:
                    async with session.get(f"http://127.0.0.1:{port}/api/v1/reserves") as r:
                        assert r.status == 200
                        body = await r.json()
                    openapi_schema.validate("Reserves", body)  # the OpenAPI document describes it
                    return body

                assert await svc.refresh()
                # Not final yet on the chains (nothing is mined past as_of's blocks): NaN, and why.
                await svc.update_ratio()
                assert math.isnan(gauge("usd1_backing_ratio_at_as_of") or 0.0)
                assert math.isnan(gauge("usd1_supply_drift_since_as_of_tokens") or 0.0)
                body = await reserves()
                at = body["at_as_of"]
                assert at["ratio"] is None and at["circulating"] is None and at["blocks"] == {}
                assert "above what is final on chain" in at["reason"], at
                assert body["drift"] is None

                # Final on both chains: the block at or before as_of on each, exact.
                fin = await run.settled((NATIVE, anvil), (BRIDGED, remote))
                assert fin[NATIVE] > n_nat and fin[BRIDGED] > n_br
                await svc.update_ratio()
                then = (
                    await token.total_supply(n_nat)
                    - await token.balance_of(POOL, n_nat)
                    + await bridged.total_supply(n_br)
                )
                assert then == 4 * 200 * 10**18 + 6 + 150 * 10**18 + 7 - 150 * 10**18 - 7
                # summing totalSupply instead would count the bridged tokens twice
                assert then != await token.total_supply(n_nat) + await bridged.total_supply(n_br)
                now = (
                    await token.total_supply(fin[NATIVE])
                    - await token.balance_of(POOL, fin[NATIVE])
                    + await bridged.total_supply(fin[BRIDGED])
                )
                assert now - then == 42 * 10**18 + 3 - (7 * 10**18 + 1) + 11  # the release moves nothing
                body = await reserves()
                at = body["at_as_of"]
                assert at["reason"] is None, at
                assert at["blocks"] == {
                    NATIVE: {
                        "number": n_nat,
                        "hash": h_nat,
                        "time": datetime.fromtimestamp(t_nat, UTC).isoformat().replace("+00:00", "Z"),
                    },
                    BRIDGED: {
                        "number": n_br,
                        "hash": h_br,
                        "time": datetime.fromtimestamp(t_br, UTC).isoformat().replace("+00:00", "Z"),
                    },
                }
                assert at["circulating"] == {
                    "raw": str(then),
                    "amount": to_decimal_str(then, 18),
                    "decimals": 18,
                }
                assert at["circulating_exact"] is False  # the test token decodes no freezes
                assert at["ratio"] == ratio_str(ratio(then))
                assert body["now"] == {
                    "finality": "finalized",
                    "circulating": {"raw": str(now), "amount": to_decimal_str(now, 18), "decimals": 18},
                    "coverage": ratio_str(ratio(now)),
                }
                assert body["backing_ratio"] == body["now"]["coverage"]
                assert body["drift"] == {
                    "raw": str(now - then),
                    "amount": to_decimal_str(now - then, 18),
                    "decimals": 18,
                }
                assert gauge("usd1_backing_ratio_at_as_of") == float(ratio(then))
                assert gauge("usd1_backing_coverage") == gauge("usd1_backing_ratio") == float(ratio(now))
                assert gauge("usd1_supply_drift_since_as_of_tokens") == to_float(now - then, 18)
                # the coverage agrees with the supply-classes metric's global circulating figure
                assert await SupplyClassesExporter(cfg, run.rt.pool, metrics).refresh()
                assert gauge("usd1_supply_circulating_total", {"finality": "finalized"}) == to_float(now, 18)

                # More burns later: the drift follows exactly, the figure at as_of does not move.
                await bridged.burn(holders[0], 11)
                await token.burn(holders[0], 2 * 10**18)
                fin = await run.settled((NATIVE, anvil), (BRIDGED, remote))
                await svc.update_ratio()
                body = await reserves()
                assert body["at_as_of"]["circulating"]["raw"] == str(then)
                assert int(body["drift"]["raw"]) == now - then - 11 - 2 * 10**18
                assert gauge("usd1_supply_drift_since_as_of_tokens") == to_float(
                    now - then - 11 - 2 * 10**18, 18
                )

                # An attestation dated before the chains' index: NaN, and the API says why.
                attestation(path, "2020-01-01T00:00:00Z")
                assert await svc.refresh()
                await svc.update_ratio()
                at = (await reserves())["at_as_of"]
                assert at["as_of"] == "2020-01-01T00:00:00Z" and at["ratio"] is None
                assert "before the index of chain native" in at["reason"], at
                assert math.isnan(gauge("usd1_backing_ratio_at_as_of") or 0.0)
                assert gauge("usd1_backing_coverage") == float(ratio(now - 11 - 2 * 10**18))
