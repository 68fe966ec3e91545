"""PURE: EVM dialects, the quirks of an eth-compatible chain as settings the EVM source reads.

A chain's `dialect:` names one preset (default `ethereum`); the source never branches on a chain's
name. A new eth-compatible chain with its own quirks is a new entry in `DIALECTS`, nothing else.

- `trust_blooms`: whether `logsBloom` holds every log (the positive and negative bloom checks of
  `indexer.chains.evm` run only then; a chain with zero blooms must say False).
- `receipts_check`: when following the head, each block's `eth_getBlockReceipts` must hold as
  many logs of the filter as eth_getLogs returned for it (indexer/chains/receipts.py): what
  replaces the bloom checks where blooms are empty. One receipts call per block.
- `final_tags`: the block tags the node serves for finality (`finalized`, `safe`); a config whose
  `finality.tag` the dialect lacks is refused at load time (use `confirmations`).
- `state_at`: how `eth_call` / `eth_getStorageAt` select a past block: `hash` (EIP-1898
  `{"blockHash": ...}`, exact even across reorgs), `number` (a hex height: exact at finalized
  heights), or `latest` (no past state: the supply and control checks at the finalized block are
  skipped, logged once).
- `timestamp_ms`: block timestamps in milliseconds rather than seconds.
- `addresses`: how the config may spell the token and watched addresses: `hex` (`0x` + 40 hex) or
  `tron` (base58check `T...` or 21-byte `41...` hex as well, converted to the 20-byte hex form
  the node's logs carry; indexer/chains/tron.py). Stored and compared as lowercase hex either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from indexer.chains import tron
from indexer.model import BlockRef

StateAt = Literal["hash", "number", "latest"]
AddressSpelling = Literal["hex", "tron"]


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    trust_blooms: bool = True
    receipts_check: bool = False
    final_tags: frozenset[str] = frozenset({"finalized", "safe"})
    state_at: StateAt = "hash"
    timestamp_ms: bool = False
    addresses: AddressSpelling = "hex"

    def state_block(self, block: BlockRef) -> Any | None:
        """The block parameter of a state read at `block`; None when the dialect cannot read past state."""
        match self.state_at:
            case "hash":
                return {"blockHash": block.hash}
            case "number":
                return hex(block.number)
            case "latest":
                return None

    def seconds(self, timestamp: int) -> int:
        return timestamp // 1000 if self.timestamp_ms else timestamp

    def config_address(self, value: Any) -> Any:
        """A configured address in the form the source compares (`0x` + 40 hex, lowercase).

        `hex` dialects return the value unchanged (the config's EVM address check judges it);
        `tron` converts any Tron spelling and raises ValueError naming what is wrong.
        """
        match self.addresses:
            case "hex":
                return value
            case "tron":
                return tron.to_hex(value) if isinstance(value, str) else value

    def parse_address(self, value: str) -> str:
        """An address a user typed (API parameter, CLI argument) -> the stored form (`0x` + 40
        lowercase hex). `hex`: `0x` + 40 hex digits; `tron`: base58check `T...`, 21-byte `41...`
        or 20-byte hex. ValueError naming what is wrong otherwise."""
        match self.addresses:
            case "hex":
                if not _HEX_ADDRESS.fullmatch(value):
                    raise ValueError("expected 0x + 40 hex digits")
                return value.lower()
            case "tron":
                try:
                    return tron.to_hex(value)
                except tron.TronAddressError as exc:
                    raise ValueError(
                        f"expected a Tron address (T... base58check, 41... or 0x hex): {exc.why}"
                    ) from None

    def show_address(self, value: str) -> str:
        """A stored address in the form people read: `hex` unchanged, `tron` base58check `T...`.
        A value that is not a stored 20-byte address (a role id, a Solana key) is returned as is."""
        match self.addresses:
            case "hex":
                return value
            case "tron":
                return tron.to_base58(value) if _HEX_ADDRESS.fullmatch(value) else value


_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")

DIALECTS: dict[str, Dialect] = {
    # Ethereum and the geth family: EIP-1898 state reads, finalized/safe tags, honest blooms.
    "ethereum": Dialect("ethereum"),
    # BNB Smart Chain: `finalized`/`safe` from fast finality (BEP-126), EIP-1898 reads. Its own
    # preset so that a BSC quirk is one edit here.
    "bsc": Dialect("bsc"),
    # Nodes from before the merge / EIP-1898: no finality tags (use `confirmations`), state by number.
    "legacy": Dialect("legacy", final_tags=frozenset(), state_at="number"),
    # Tron's java-tron JSON-RPC (realdata/tron/FACTS.md): logsBloom is all zeros (never skip on
    # it); `finalized` = the latest solidified block, `safe` unsupported; eth_call and
    # eth_getStorageAt run at `latest` only; timestamps already in seconds; addresses in logs are
    # 20-byte hex without the 41 prefix, users write base58check T....
    "tron": Dialect(
        "tron",
        trust_blooms=False,
        receipts_check=True,
        final_tags=frozenset({"finalized"}),
        state_at="latest",
        addresses="tron",
    ),
}
