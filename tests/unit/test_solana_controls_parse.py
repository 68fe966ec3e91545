"""The Solana controls family's decoder (issue #14 section 3) and the mint-account reader used by
its check. Wire bytes come from solana-py's own SPL Token instruction builders (an encoder
independent of the parser) and from its account layouts; jsonParsed shapes are the node's
`spl-token` parser output. The recorded mainnet blocks (tests/fixtures/solana) hold no control
instruction of any mint: parsing them with controls on must find none and fail on none."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from solders.instruction import Instruction
from solders.pubkey import Pubkey
from spl.token import instructions as spl
from spl.token._layouts import ACCOUNT_LAYOUT, MINT_LAYOUT
from spl.token.models import (
    AuthorityType,
    FreezeAccountParams,
    InitializeMint2Params,
    InitializeMintParams,
    SetAuthorityParams,
    ThawAccountParams,
)

from indexer.chains.solana_parse import (
    CONTROL_TX_BASE,
    SECOND_RECORD,
    TOKEN_2022_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    control_log_index,
    parse_block_families,
    parse_transaction,
)
from indexer.controls import decode_mint_account, fold, token_account_frozen
from indexer.errors import MalformedReply
from indexer.model import ControlEvent
from tests.unit.test_solana_parse import AUTH, IDX, KEYS, MINT, OTHER, A, B, C, b58, json_tx, load

P = Pubkey.from_string


def raw(instr: Instruction) -> dict[str, Any]:
    """A solana-py instruction as a `json`-encoded instruction over the test's account keys."""
    return {
        "programIdIndex": IDX[str(instr.program_id)],
        "accounts": [IDX[str(m.pubkey)] for m in instr.accounts],
        "data": b58(bytes(instr.data)),
    }


def set_auth(program: str, account: str, kind: AuthorityType, new: str | None) -> dict[str, Any]:
    return raw(
        spl.set_authority(
            SetAuthorityParams(
                program_id=P(program),
                account=P(account),
                authority=kind,
                current_authority=P(AUTH),
                new_authority=None if new is None else P(new),
            )
        )
    )


def freeze(program: str, account: str, mint: str, *, thaw: bool = False) -> dict[str, Any]:
    fields = {"program_id": P(program), "account": P(account), "mint": P(mint), "authority": P(AUTH)}
    if thaw:
        return raw(spl.thaw_account(ThawAccountParams(**fields)))  # type: ignore[arg-type]
    return raw(spl.freeze_account(FreezeAccountParams(**fields)))  # type: ignore[arg-type]


def pausable(program: str, sub: int) -> dict[str, Any]:
    return {"programIdIndex": IDX[program], "accounts": [IDX[MINT], IDX[AUTH]], "data": b58(bytes([44, sub]))}


def rows(events: tuple[ControlEvent, ...] | list[ControlEvent]) -> list[tuple[Any, ...]]:
    return [
        (e.log_index, e.kind.value, e.event, e.address, e.subject, e.previous, e.actor, e.role)
        for e in events
    ]


def controls_of(tx: dict[str, Any], *, tx_index: int = 0) -> list[tuple[Any, ...]]:
    return rows(parse_transaction("sol", MINT, 7, "bh", 9, tx, controls=True, tx_index=tx_index).controls)


@pytest.mark.parametrize("program", [TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID])
def test_raw_control_instructions(program: str) -> None:
    tx = json_tx(
        [
            set_auth(program, MINT, AuthorityType.MINT_TOKENS, B),  # 0
            set_auth(program, MINT, AuthorityType.FREEZE_ACCOUNT, None),  # 1: removed
            set_auth(program, A, AuthorityType.CLOSE_ACCOUNT, C),  # 2: A is the mint's (balances)
            set_auth(program, C, AuthorityType.ACCOUNT_OWNER, B),  # 3: C is another mint's account
            freeze(program, A, MINT),  # 4
            freeze(program, A, MINT, thaw=True),  # 5
            freeze(program, C, OTHER),  # 6: another mint
            set_auth(program, OTHER, AuthorityType.MINT_TOKENS, B),  # 7: another mint
        ],
        balances=[(A, MINT), (C, OTHER)],
    )
    assert controls_of(tx) == [
        (0, "mint_authority_changed", "SetAuthority", MINT, B, AUTH, AUTH, "mintTokens"),
        (1000, "freeze_authority_changed", "SetAuthority", MINT, None, AUTH, AUTH, "freezeAccount"),
        (2000, "authority_changed", "SetAuthority", A, C, AUTH, AUTH, "closeAccount"),
        (4000, "frozen", "FreezeAccount", MINT, A, None, AUTH, None),
        (5000, "unfrozen", "ThawAccount", MINT, A, None, AUTH, None),
    ]
    # The transfers family of the same transaction is untouched; without `controls` none.
    plain = parse_transaction("sol", MINT, 7, "bh", 9, tx)
    assert plain.events == () and plain.controls == ()


def test_initialize_mint_records_both_authorities_and_orders_by_transaction() -> None:
    init = spl.initialize_mint(
        InitializeMintParams(
            decimals=6,
            program_id=P(TOKEN_PROGRAM_ID),
            mint=P(MINT),
            mint_authority=P(AUTH),
            freeze_authority=P(B),
        )
    )
    init2 = spl.initialize_mint2(
        InitializeMint2Params(decimals=6, program_id=P(TOKEN_PROGRAM_ID), mint=P(MINT), mint_authority=P(A))
    )
    # InitializeMint takes the rent sysvar as its second account: give it any key of the list.
    one = {
        "programIdIndex": IDX[TOKEN_PROGRAM_ID],
        "accounts": [IDX[MINT], IDX[OTHER]],
        "data": b58(bytes(init.data)),
    }
    tx = json_tx([one, raw(init2)])
    base = 3 * CONTROL_TX_BASE
    assert controls_of(tx, tx_index=3) == [
        (base, "mint_authority_changed", "InitializeMint", MINT, AUTH, None, None, "mintTokens"),
        (
            base + SECOND_RECORD,
            "freeze_authority_changed",
            "InitializeMint",
            MINT,
            B,
            None,
            None,
            "freezeAccount",
        ),
        (base + 1000, "mint_authority_changed", "InitializeMint2", MINT, A, None, None, "mintTokens"),
    ]
    assert control_log_index(2, 1001) == 200_000 + 1001
    with pytest.raises(ValueError):
        control_log_index(0, CONTROL_TX_BASE)


def test_pause_resume_only_on_token_2022_and_inner_instructions_count() -> None:
    tx = json_tx(
        [
            pausable(TOKEN_2022_PROGRAM_ID, 1),
            pausable(TOKEN_PROGRAM_ID, 1),
            {**pausable(TOKEN_2022_PROGRAM_ID, 9), "programIdIndex": IDX[AUTH]},
        ],
        inner=[
            {
                "index": 2,
                "instructions": [pausable(TOKEN_2022_PROGRAM_ID, 2), freeze(TOKEN_2022_PROGRAM_ID, A, MINT)],
            }
        ],
    )
    assert controls_of(tx) == [
        (0, "paused", "Pause", MINT, None, None, AUTH, None),
        (2001, "unpaused", "Resume", MINT, None, None, AUTH, None),
        (2002, "frozen", "FreezeAccount", MINT, A, None, AUTH, None),
    ]


def parsed(program: str, kind: str, **info: Any) -> dict[str, Any]:
    return {"program": "spl-token", "programId": program, "parsed": {"type": kind, "info": info}}


def parsed_tx(
    instructions: list[dict[str, Any]], inner: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    tx = json_tx([], inner=inner, balances=[(A, MINT)])
    tx["transaction"]["message"]["accountKeys"] = [
        {"pubkey": k, "signer": False, "writable": True} for k in KEYS
    ]
    tx["transaction"]["message"]["instructions"] = instructions
    return tx


def test_json_parsed_encoding_gives_the_same_records() -> None:
    program = TOKEN_2022_PROGRAM_ID
    wire = json_tx(
        [
            set_auth(program, MINT, AuthorityType.MINT_TOKENS, B),
            set_auth(program, A, AuthorityType.ACCOUNT_OWNER, C),
            freeze(program, A, MINT),
            freeze(program, A, MINT, thaw=True),
            pausable(program, 1),
            pausable(program, 2),
        ],
        balances=[(A, MINT)],
    )
    node = parsed_tx(
        [
            parsed(
                program, "setAuthority", mint=MINT, authorityType="mintTokens", newAuthority=B, authority=AUTH
            ),
            parsed(
                program,
                "setAuthority",
                account=A,
                authorityType="accountOwner",
                newAuthority=C,
                authority=AUTH,
            ),
            parsed(program, "freezeAccount", account=A, mint=MINT, freezeAuthority=AUTH),
            parsed(program, "thawAccount", account=A, mint=MINT, freezeAuthority=AUTH),
            parsed(program, "pause", mint=MINT, authority=AUTH),
            parsed(program, "resume", mint=MINT, authority=AUTH),
        ]
    )
    assert controls_of(node) == controls_of(wire)
    assert len(controls_of(node)) == 6


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (bytes([6, 0, 2]) + bytes(32), "option flag 2"),
        (bytes([6, 17, 0]), "unknown authority type 17"),
        (bytes([6, 0, 1]) + bytes(5), "SetAuthority has"),
        (bytes([20, 6]) + bytes(10), "InitializeMint2 has"),
        (bytes([44, 7]), "PausableExtension with unknown instruction 7"),
    ],
)
def test_malformed_control_instructions_raise(data: bytes, message: str) -> None:
    tx = json_tx(
        [
            {
                "programIdIndex": IDX[TOKEN_2022_PROGRAM_ID],
                "accounts": [IDX[MINT], IDX[AUTH]],
                "data": b58(data),
            }
        ]
    )
    with pytest.raises(MalformedReply, match=message):
        controls_of(tx)


def test_parsed_set_authority_naming_nothing_is_malformed() -> None:
    tx = parsed_tx([parsed(TOKEN_PROGRAM_ID, "setAuthority", authorityType="mintTokens", newAuthority=B)])
    with pytest.raises(MalformedReply, match="neither mint nor account"):
        controls_of(tx)


def test_failed_transaction_records_no_control() -> None:
    tx = json_tx([freeze(TOKEN_PROGRAM_ID, A, MINT)], err={"InstructionError": [0, "AccountFrozen"]})
    assert controls_of(tx) == []


@pytest.mark.parametrize(
    ("name", "mint"),
    [
        ("parser_solana_block_241043141_v2.json", "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"),
        (
            "parser_solana_block_with_versioned_tx__slot154808473.json",
            "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
        ),
        ("client_solana_block_v2__slot100000000.json", "So11111111111111111111111111111111111111112"),
    ],
)
def test_real_blocks_hold_no_control_instruction(name: str, mint: str) -> None:
    reply = load(name)
    block = reply.get("result", reply)
    slot = int(name.rsplit("slot", 1)[-1].split(".")[0]) if "slot" in name else 241043141
    with_controls = parse_block_families(
        "sol", mint, slot, copy.deepcopy(block), transfers=True, controls=True
    )
    without = parse_block_families("sol", mint, slot, block, transfers=True, controls=False)
    assert with_controls.controls == [] and with_controls.events == without.events


# ---- the mint account, as the check reads it ----------------------------------------------------
def mint_bytes(authority: str | None, freeze_authority: str | None, supply: int = 5) -> bytes:
    return bytes(
        MINT_LAYOUT.build(
            {
                "mint_authority_option": 0 if authority is None else 1,
                "mint_authority": bytes(P(authority)) if authority else bytes(32),
                "supply": supply,
                "decimals": 6,
                "is_initialized": 1,
                "freeze_authority_option": 0 if freeze_authority is None else 1,
                "freeze_authority": bytes(P(freeze_authority)) if freeze_authority else bytes(32),
            }
        )
    )


def test_decode_mint_account_classic_and_token_2022_pausable() -> None:
    m = decode_mint_account(mint_bytes(AUTH, None, 123))
    assert (m.mint_authority, m.freeze_authority, m.supply, m.decimals, m.paused) == (
        AUTH,
        None,
        123,
        6,
        None,
    )
    pad = bytes(165 - 82) + bytes([1])
    for flag in (0, 1):
        tlv = (26).to_bytes(2, "little") + (33).to_bytes(2, "little") + bytes(P(B)) + bytes([flag])
        ext = decode_mint_account(
            mint_bytes(None, A)
            + pad
            + (3).to_bytes(2, "little")
            + (32).to_bytes(2, "little")
            + bytes(32)
            + tlv
        )
        assert (ext.mint_authority, ext.freeze_authority, ext.paused) == (None, A, bool(flag))
    with pytest.raises(ValueError, match="not initialized"):
        decode_mint_account(bytes(82))
    with pytest.raises(ValueError, match="account type is not Mint"):
        decode_mint_account(mint_bytes(AUTH, None) + bytes(165 - 82) + bytes([2]))
    with pytest.raises(ValueError, match="runs past"):
        decode_mint_account(
            mint_bytes(AUTH, None) + pad + (26).to_bytes(2, "little") + (33).to_bytes(2, "little")
        )


def test_token_account_frozen_state() -> None:
    def account(state: int, mint: str = MINT) -> bytes:
        return bytes(
            ACCOUNT_LAYOUT.build(
                {
                    "mint": bytes(P(mint)),
                    "owner": bytes(P(AUTH)),
                    "amount": 9,
                    "delegate_option": 0,
                    "delegate": bytes(32),
                    "state": state,
                    "is_native_option": 0,
                    "is_native": 0,
                    "delegated_amount": 0,
                    "close_authority_option": 0,
                    "close_authority": bytes(32),
                }
            )
        )

    assert token_account_frozen(account(2), MINT) and not token_account_frozen(account(1), MINT)
    with pytest.raises(ValueError, match="not initialized"):
        token_account_frozen(account(0), MINT)
    with pytest.raises(ValueError, match="belongs to mint"):
        token_account_frozen(account(2, OTHER), MINT)


def test_fold_of_solana_records() -> None:
    tx = json_tx(
        [
            set_auth(TOKEN_PROGRAM_ID, MINT, AuthorityType.MINT_TOKENS, B),
            freeze(TOKEN_PROGRAM_ID, A, MINT),
            set_auth(TOKEN_PROGRAM_ID, A, AuthorityType.CLOSE_ACCOUNT, C),
            pausable(TOKEN_2022_PROGRAM_ID, 1),
        ],
        balances=[(A, MINT)],
    )
    events = parse_transaction("sol", MINT, 7, "bh", 9, tx, controls=True).controls
    state = fold(events, [(MINT, "token")]).token
    assert (state.mint_authority, state.freeze_authority, state.frozen, state.paused) == (B, None, {A}, True)
    assert state.events == 3  # the token account's close authority is recorded, not mint state
