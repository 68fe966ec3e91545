"""A client of the Solana devnet's admin methods (`devnet_*`, served by `SolanaDevnet(admin=True)`
or `usd1-indexer devnet`), for tests and drills.

    async with SolanaAdminClient("http://127.0.0.1:8899") as dev:
        await dev.skip(3)
        await dev.fork(slot)
        await dev.produce(5)

Each call returns the method's result; a JSON-RPC error raises `SolanaAdminError` (its `code` and
`message`, e.g. -32602 naming the bad param); a devnet that does not answer raises
`DevnetUnreachable` (one line naming the URL).
"""

from __future__ import annotations

import itertools
from typing import Any

import aiohttp
import orjson

from indexer.http_json import read_capped

__all__ = ["DevnetUnreachable", "SolanaAdminClient", "SolanaAdminError"]

MAX_REPLY = 16 * 1024 * 1024


class SolanaAdminError(Exception):
    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        self.method = method
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"{method}: {message} ({code})")


class DevnetUnreachable(Exception):
    pass


class SolanaAdminClient:
    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> SolanaAdminClient:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """One JSON-RPC call with named params."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or {}}
        try:
            async with self._session.post(
                self.url, data=orjson.dumps(body), headers={"Content-Type": "application/json"}
            ) as resp:
                raw = await read_capped(resp.content, MAX_REPLY)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DevnetUnreachable(f"the Solana devnet at {self.url} does not answer: {exc}") from None
        if len(raw) > MAX_REPLY:
            raise DevnetUnreachable(f"the Solana devnet at {self.url} sent a reply above {MAX_REPLY} bytes")
        try:
            reply = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise DevnetUnreachable(
                f"the Solana devnet at {self.url} sent a reply that is not JSON"
            ) from None
        if not isinstance(reply, dict):
            raise DevnetUnreachable(f"the Solana devnet at {self.url} sent an unexpected reply")
        err = reply.get("error")
        if err is not None:
            raise SolanaAdminError(method, int(err.get("code", 0)), str(err.get("message")), err.get("data"))
        return reply.get("result")

    # ---- the admin methods ----

    async def status(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("devnet_status")
        return result

    async def produce(self, n: int = 1) -> list[int]:
        """Produce `n` blocks now; returns their slots."""
        result = await self.call("devnet_produceSlots", {"count": n})
        return list(result["slots"])

    async def skip(self, n: int = 1) -> list[int]:
        """Let `n` slots pass without blocks; returns the skipped slots."""
        result = await self.call("devnet_skipSlots", {"count": n})
        return list(result["skipped"])

    async def fork(
        self,
        slot: int | None = None,
        *,
        depth: int | None = None,
        reuse_slots: bool = False,
        keep_txs: bool = False,
        below_finalized: bool = False,
    ) -> list[int]:
        """Drop every block above `slot` (or the newest `depth` blocks; neither: above the finalized
        slot); returns the dropped slots."""
        params: dict[str, Any] = {
            "reuseSlots": reuse_slots,
            "keepTxs": keep_txs,
            "belowFinalized": below_finalized,
        }
        if slot is not None:
            params["slot"] = slot
        if depth is not None:
            params["depth"] = depth
        result = await self.call("devnet_fork", params)
        return list(result["dropped"])

    async def fund(self, pubkey: str, lamports: int) -> int:
        """Add lamports to a system account; returns its new balance."""
        result = await self.call("devnet_fund", {"pubkey": pubkey, "lamports": lamports})
        return int(result["lamports"])

    async def mint(self, owner: str, amount: int) -> str:
        """Mint `amount` base units to `owner`'s associated token account; returns the signature."""
        result = await self.call("devnet_mint", {"owner": owner, "amount": str(amount)})
        return str(result["signature"])

    async def burn(self, owner: str, amount: int) -> str:
        """Burn from the ATA of an owner whose key the devnet holds; returns the signature."""
        result = await self.call("devnet_burn", {"owner": owner, "amount": str(amount)})
        return str(result["signature"])

    async def freeze(self, account: str, *, thaw: bool = False) -> str:
        result = await self.call("devnet_thaw" if thaw else "devnet_freeze", {"account": account})
        return str(result["signature"])

    async def set_producing(self, enabled: bool) -> bool:
        result = await self.call("devnet_setProducing", {"enabled": enabled})
        return bool(result["producing"])
