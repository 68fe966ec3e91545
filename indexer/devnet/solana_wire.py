"""Solana JSON-RPC wire shapes for the devnet: token-account decoding, token balances, and the
`json` / `jsonParsed` renderings of recorded transactions (as a real RPC node renders them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from solders.pubkey import Pubkey

from indexer.chains.solana_parse import AUTHORITY_TYPES, TOKEN_PROGRAMS, b58encode
from indexer.units import to_decimal_str

__all__ = ["b58encode", "decode_mint", "decode_token_account", "render_instruction", "ui_token_amount"]


def ui_token_amount(amount: int, decimals: int) -> dict[str, Any]:
    return {
        "amount": str(amount),
        "decimals": decimals,
        "uiAmount": amount / 10**decimals,
        "uiAmountString": to_decimal_str(amount, decimals),
    }


@dataclass(frozen=True, slots=True)
class TokenAccountState:
    mint: str
    owner: str
    amount: int
    program_id: str


def decode_token_account(program_id: str, data: bytes) -> TokenAccountState | None:
    """An initialized SPL token account (Token or Token-2022 layout), else None (mints, multisigs,
    other programs' accounts)."""
    if program_id not in TOKEN_PROGRAMS or len(data) < 165:
        return None
    if len(data) > 165 and (program_id != "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb" or data[165] != 2):
        return None  # Token-2022 AccountType 2 = Account (1 = Mint)
    if data[108] == 0:  # AccountState::Uninitialized
        return None
    return TokenAccountState(
        mint=str(Pubkey.from_bytes(data[0:32])),
        owner=str(Pubkey.from_bytes(data[32:64])),
        amount=int.from_bytes(data[64:72], "little"),
        program_id=program_id,
    )


def decode_mint(data: bytes) -> tuple[int, int] | None:
    """(supply, decimals) of an initialized mint account, else None."""
    if len(data) < 82 or data[45] != 1:
        return None
    if len(data) > 82 and not (len(data) > 165 and data[165] == 1):
        return None
    return int.from_bytes(data[36:44], "little"), data[44]


# ---- jsonParsed rendering of SPL Token instructions (a subset, as the node's spl-token parser) ----


def parse_token_instruction(accounts: Sequence[str], data: bytes) -> dict[str, Any] | None:
    """`{"type", "info"}` for the instructions the devnet's traffic uses; None for the rest
    (the node then renders them partially decoded, as real nodes do for unparsable data)."""
    if not data:
        return None
    tag = data[0]

    def amt() -> str:
        return str(int.from_bytes(data[1:9], "little"))

    def tok() -> dict[str, Any]:
        return ui_token_amount(int.from_bytes(data[1:9], "little"), data[9])

    a = list(accounts)
    try:
        if tag == 3 and len(data) >= 9:
            return {
                "type": "transfer",
                "info": {"source": a[0], "destination": a[1], "authority": a[2], "amount": amt()},
            }
        if tag == 12 and len(data) >= 10:
            info = {
                "source": a[0],
                "mint": a[1],
                "destination": a[2],
                "authority": a[3],
                "tokenAmount": tok(),
            }
            return {"type": "transferChecked", "info": info}
        if tag == 7 and len(data) >= 9:
            return {
                "type": "mintTo",
                "info": {"mint": a[0], "account": a[1], "mintAuthority": a[2], "amount": amt()},
            }
        if tag == 14 and len(data) >= 10:
            info = {"mint": a[0], "account": a[1], "mintAuthority": a[2], "tokenAmount": tok()}
            return {"type": "mintToChecked", "info": info}
        if tag == 8 and len(data) >= 9:
            return {
                "type": "burn",
                "info": {"account": a[0], "mint": a[1], "authority": a[2], "amount": amt()},
            }
        if tag == 15 and len(data) >= 10:
            info = {"account": a[0], "mint": a[1], "authority": a[2], "tokenAmount": tok()}
            return {"type": "burnChecked", "info": info}
        if tag == 9:
            return {"type": "closeAccount", "info": {"account": a[0], "destination": a[1], "owner": a[2]}}
        if tag == 18:
            owner = str(Pubkey.from_bytes(data[1:33]))
            return {"type": "initializeAccount3", "info": {"account": a[0], "mint": a[1], "owner": owner}}
        if tag == 20:
            mint_info: dict[str, Any] = {
                "mint": a[0],
                "decimals": data[1],
                "mintAuthority": str(Pubkey.from_bytes(data[2:34])),
            }
            if len(data) >= 67 and data[34] == 1:
                mint_info["freezeAuthority"] = str(Pubkey.from_bytes(data[35:67]))
            return {"type": "initializeMint2", "info": mint_info}
        if tag == 6:
            atype = AUTHORITY_TYPES[data[1]]
            owned = "account" if atype in ("accountOwner", "closeAccount") else "mint"
            new = str(Pubkey.from_bytes(data[3:35])) if data[2] == 1 else None
            auth = {owned: a[0], "authorityType": atype, "newAuthority": new, "authority": a[1]}
            return {"type": "setAuthority", "info": auth}
        if tag in (10, 11):
            name = "freezeAccount" if tag == 10 else "thawAccount"
            return {"type": name, "info": {"account": a[0], "mint": a[1], "freezeAuthority": a[2]}}
        if tag == 44 and data[1] in (1, 2):
            return {"type": "pause" if data[1] == 1 else "resume", "info": {"mint": a[0], "authority": a[1]}}
        if tag == 22:
            return {"type": "initializeImmutableOwner", "info": {"account": a[0]}}
    except IndexError:
        return None
    return None


def render_instruction(
    program_id_index: int,
    accounts: Sequence[int],
    data: bytes,
    keys: Sequence[str],
    stack_height: int | None,
    *,
    parsed: bool,
) -> dict[str, Any]:
    if not parsed:
        return {
            "programIdIndex": program_id_index,
            "accounts": list(accounts),
            "data": b58encode(data),
            "stackHeight": stack_height,
        }
    program_id = keys[program_id_index]
    names = [keys[i] for i in accounts]
    if program_id in TOKEN_PROGRAMS:
        p = parse_token_instruction(names, data)
        if p is not None:
            return {"program": "spl-token", "programId": program_id, "parsed": p, "stackHeight": stack_height}
    return {"programId": program_id, "accounts": names, "data": b58encode(data), "stackHeight": stack_height}
