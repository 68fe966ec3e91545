"""Input validation for the HTTP API and CLI: every bad value is a clear 400, never a 500."""

from __future__ import annotations

import re

from aiohttp import web

from indexer.config import ChainConfig, Config, EvmChainConfig
from indexer.http_json import json_response

_EVM_ADDR = re.compile(r"^0x[0-9a-fA-F]{40}$")
_EVM_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
_B58 = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{32,44}$")
_B58_SIG = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{64,90}$")
MAX_HEIGHT = 2**62


class BadRequest(web.HTTPBadRequest):
    """400 with a JSON body naming what is wrong."""

    def __init__(self, message: str) -> None:
        resp = json_response({"error": message}, status=400)
        super().__init__(body=resp.body, content_type="application/json")
        self.message = message


def chain_of(cfg: Config, name: str) -> ChainConfig:
    for c in cfg.chains:
        if c.name == name:
            return c
    raise BadRequest(f"unknown chain {name[:64]!r}; known: {', '.join(c.name for c in cfg.chains)}")


def address_for(chain: ChainConfig, value: str) -> str:
    if isinstance(chain, EvmChainConfig):
        if not _EVM_ADDR.match(value):
            raise BadRequest(
                f"invalid address {value[:80]!r} for EVM chain {chain.name}: expected 0x + 40 hex digits"
            )
        return value.lower()
    if not _B58.match(value):
        raise BadRequest(f"invalid address {value[:80]!r} for Solana chain {chain.name}: expected base58")
    return value


def tx_hash_for(chain: ChainConfig, value: str) -> str:
    if isinstance(chain, EvmChainConfig):
        if not _EVM_HASH.match(value):
            raise BadRequest(f"invalid transaction hash {value[:80]!r}: expected 0x + 64 hex digits")
        return value.lower()
    if not _B58_SIG.match(value):
        raise BadRequest(f"invalid transaction signature {value[:100]!r}: expected base58")
    return value


def height(value: str | None, what: str) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 19 or int(value) > MAX_HEIGHT:
        raise BadRequest(f"invalid {what} {value[:40]!r}: expected a non-negative integer")
    return int(value)


def only_params(request: web.Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.query) - allowed)
    if unknown:
        raise BadRequest(
            f"unknown query parameter(s) {', '.join(repr(u[:40]) for u in unknown[:5])}; "
            f"allowed: {', '.join(sorted(allowed)) or 'none'}"
        )
