"""PURE: SPL Token movements of one mint from Solana `getBlock` / `getTransaction` replies.

Input is the reply as parsed by orjson (no I/O here). Both transaction encodings are handled:

- `json`: instructions carry `programIdIndex`, account indexes and base58 `data`, which is decoded
  here (SPL Token tags 3 Transfer, 7 MintTo, 8 Burn, 12 TransferChecked, 14 MintToChecked,
  15 BurnChecked; u64 little-endian amount after the tag). Versioned (v0) transactions resolve
  account indexes over `accountKeys` + `meta.loadedAddresses.writable` + `.readonly`.
- `jsonParsed`: `spl-token` instructions arrive as `{"parsed": {"type", "info"}}`; token-program
  instructions the node could not parse arrive partially decoded (account strings + base58 data)
  and are decoded like `json`.

Both the Token program and Token-2022 count; top-level and inner (CPI) instructions alike.
Failed transactions (`meta.err` not null) move nothing and are skipped.

Plain `Transfer` does not name its mint. It is attributed through the mint of its source or
destination token account, known from the transaction's `pre/postTokenBalances` and from the
transaction's own instructions that name a mint for an account (mintTo, burn, transferChecked,
initializeAccount*). A transfer whose accounts appear nowhere (a token account created and closed
inside the same transaction, moving between two such accounts) cannot be attributed and is counted
in `ParsedTx.unattributed`; the source logs it.

Event identity is (slot, signature, instruction path); the path is packed into
`TokenEvent.log_index` by `encode_path`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from indexer.errors import MalformedReply
from indexer.model import BlockRef, ControlEvent, ControlKind, EventKind, TokenEvent

TOKEN_PROGRAM_ID = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
TOKEN_2022_PROGRAM_ID = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"
TOKEN_PROGRAMS = frozenset({TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID})

# SPL Token instruction tags (shared by Token-2022 for these instructions).
TAG_INITIALIZE_MINT = 0
TAG_INITIALIZE_ACCOUNT = 1
TAG_SET_AUTHORITY = 6
TAG_FREEZE_ACCOUNT = 10
TAG_THAW_ACCOUNT = 11
TAG_INITIALIZE_MINT2 = 20
TAG_PAUSABLE_EXTENSION = 44  # Token-2022 only: sub-tag 0 Initialize, 1 Pause, 2 Resume
TAG_TRANSFER = 3
TAG_MINT_TO = 7
TAG_BURN = 8
TAG_TRANSFER_CHECKED = 12
TAG_MINT_TO_CHECKED = 14
TAG_BURN_CHECKED = 15
TAG_INITIALIZE_ACCOUNT2 = 16
TAG_INITIALIZE_ACCOUNT3 = 18

_MAX_INNER = 999
_PATH_BASE = 1000

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}


def encode_path(outer: int, inner: int | None) -> int:
    """Pack an instruction path into one integer: `outer * 1000 + (inner + 1 if inner is not None
    else 0)`.

    `outer` is the top-level instruction's index in the message; `inner` is the position in that
    instruction's `meta.innerInstructions[*].instructions` list (all CPI depths flattened, as the
    RPC reports them), or None for the top-level instruction itself. So 3000 is top-level
    instruction 3 and 3001 the first instruction it invoked. Ordering by the result orders events
    as executed. Inner positions must be below 999 (Solana's CPI limits keep them far below).
    """
    if outer < 0:
        raise ValueError(f"outer instruction index {outer} is negative")
    if inner is None:
        return outer * _PATH_BASE
    if not 0 <= inner < _MAX_INNER:
        raise ValueError(f"inner instruction index {inner} outside [0, {_MAX_INNER})")
    return outer * _PATH_BASE + inner + 1


def decode_path(log_index: int) -> tuple[int, int | None]:
    """Inverse of `encode_path`."""
    outer, rest = divmod(log_index, _PATH_BASE)
    return outer, (rest - 1 if rest else None)


def b58decode(text: str) -> bytes:
    """Base58 (Bitcoin alphabet) to bytes; MalformedReply on a bad character."""
    n = 0
    try:
        for ch in text:
            n = n * 58 + _B58_INDEX[ch]
    except KeyError:
        raise MalformedReply(f"instruction data is not base58: {text[:40]!r}") from None
    pad = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\x00" * pad + body


def b58encode(data: bytes) -> str:
    """Bytes to base58 (Bitcoin alphabet): a public key as the RPC prints it."""
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58_ALPHABET[r])
    pad = len(data) - len(data.lstrip(b"\x00"))
    return "1" * pad + "".join(reversed(out))


@dataclass(frozen=True, slots=True)
class ParsedTx:
    events: tuple[TokenEvent, ...]
    unattributed: int = 0  # plain transfers whose mint could not be determined
    controls: tuple[ControlEvent, ...] = ()  # only when asked for (`controls=True`)


@dataclass(frozen=True, slots=True)
class ParsedBlock:
    ref: BlockRef
    events: list[TokenEvent]
    unattributed: int
    controls: list[ControlEvent]


@dataclass(frozen=True, slots=True)
class _Ix:
    """One instruction, normalized over the two encodings."""

    outer: int
    inner: int | None
    program_id: str
    accounts: tuple[str, ...] | None  # None for a jsonParsed instruction
    data: str | None  # base58 (None for jsonParsed)
    parsed: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class _Move:
    path: int
    kind: EventKind
    mint: str | None  # None: plain transfer, attribute through the account map
    source: str | None
    dest: str | None
    amount: int


def _req(obj: Any, key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, Mapping):
        raise MalformedReply(f"{where} is not an object")
    val = obj.get(key)
    if not isinstance(val, typ) or isinstance(val, bool):
        raise MalformedReply(f"{where}.{key} is missing or not {getattr(typ, '__name__', typ)}: {val!r:.80}")
    return val


def block_ref(slot: int, block: Any) -> BlockRef:
    """The BlockRef of a `getBlock` result (any transactionDetails level)."""
    if not isinstance(block, Mapping):
        raise MalformedReply(f"getBlock({slot}) result is not an object: {block!r:.80}")
    blockhash = _req(block, "blockhash", str, f"block {slot}")
    prev = _req(block, "previousBlockhash", str, f"block {slot}")
    parent_slot = block.get("parentSlot")
    if not isinstance(parent_slot, int) or isinstance(parent_slot, bool) or parent_slot > slot:
        raise MalformedReply(f"block {slot}.parentSlot is missing or not below the slot: {parent_slot!r}")
    bt = block.get("blockTime")
    if bt is not None and (not isinstance(bt, int) or isinstance(bt, bool)):
        raise MalformedReply(f"block {slot}.blockTime is not an integer: {bt!r}")
    return BlockRef(number=slot, hash=blockhash, parent_hash=prev, timestamp=bt or 0)


def parent_slot(slot: int, block: Mapping[str, Any]) -> int:
    ps = block.get("parentSlot")
    if not isinstance(ps, int) or isinstance(ps, bool):
        raise MalformedReply(f"block {slot}.parentSlot is missing: {ps!r}")
    return ps


def parse_block(chain: str, mint: str, slot: int, block: Any) -> tuple[BlockRef, list[TokenEvent], int]:
    """Header, events of `mint` and the count of unattributable plain transfers of a full
    `getBlock` result (transactionDetails `full`, encoding `json` or `jsonParsed`)."""
    b = parse_block_families(chain, mint, slot, block, transfers=True, controls=False)
    return b.ref, b.events, b.unattributed


def parse_block_families(
    chain: str, mint: str, slot: int, block: Any, *, transfers: bool, controls: bool
) -> ParsedBlock:
    """`parse_block` for the families asked for: transfers (TokenEvent) and/or controls
    (ControlEvent) of `mint`."""
    ref = block_ref(slot, block)
    txs = block.get("transactions")
    if not isinstance(txs, list):
        raise MalformedReply(f"block {slot} has no transactions list (requested transactionDetails=full?)")
    events: list[TokenEvent] = []
    control_events: list[ControlEvent] = []
    unattributed = 0
    for i, tx in enumerate(txs):
        parsed = parse_transaction(
            chain,
            mint,
            slot,
            ref.hash,
            ref.timestamp,
            tx,
            where=f"block {slot} tx {i}",
            controls=controls,
            tx_index=i,
        )
        if transfers:
            events.extend(parsed.events)
            unattributed += parsed.unattributed
        control_events.extend(parsed.controls)
    return ParsedBlock(ref, events, unattributed, control_events)


def parse_transaction(
    chain: str,
    mint: str,
    slot: int,
    block_hash: str,
    timestamp: int,
    tx_with_meta: Any,
    *,
    where: str = "transaction",
    controls: bool = False,
    tx_index: int = 0,
) -> ParsedTx:
    """Movements of `mint` in one `{transaction, meta, version?}` object (a `getBlock` entry or a
    `getTransaction` result); with `controls`, also its control instructions (`ParsedTx.controls`),
    placed in the block by `tx_index` (the transaction's position in the block's list)."""
    if not isinstance(tx_with_meta, Mapping):
        raise MalformedReply(f"{where} is not an object")
    meta = tx_with_meta.get("meta")
    if not isinstance(meta, Mapping):
        raise MalformedReply(f"{where} has no meta (status unknown)")
    if "err" not in meta:
        raise MalformedReply(f"{where}.meta has no err field")
    if meta["err"] is not None:
        return ParsedTx(())
    tx = tx_with_meta.get("transaction")
    if isinstance(tx, list):
        raise MalformedReply(f"{where} is binary-encoded; request encoding json or jsonParsed")
    message = _req(tx, "message", Mapping, where)
    sigs = _req(tx, "signatures", list, where)
    if not sigs or not isinstance(sigs[0], str):
        raise MalformedReply(f"{where} has no signature")
    signature: str = sigs[0]

    keys = _account_keys(message, meta, where)
    ixs = list(_instructions(message, meta, keys, where))  # token-program instructions only
    if not ixs:
        return ParsedTx(())

    moves: list[_Move] = []
    account_mint: dict[str, str] = {}
    for side in ("preTokenBalances", "postTokenBalances"):
        balances = meta.get(side)
        if balances is None:
            continue
        if not isinstance(balances, list):
            raise MalformedReply(f"{where}.meta.{side} is not a list")
        for b in balances:
            idx = _req(b, "accountIndex", int, f"{where}.meta.{side}[]")
            bmint = _req(b, "mint", str, f"{where}.meta.{side}[]")
            account_mint[_key_at(keys, idx, where)] = bmint
    for ix in ixs:
        move, named = _token_move(ix, where)
        if named is not None:
            account_mint.setdefault(named[0], named[1])
        if move is not None:
            moves.append(move)
    found: tuple[ControlEvent, ...] = ()
    if controls:
        found = tuple(
            _control_events(
                chain, mint, slot, block_hash, timestamp, signature, tx_index, ixs, account_mint, where
            )
        )

    events: list[TokenEvent] = []
    unattributed = 0
    for mv in moves:
        mv_mint = mv.mint
        if mv_mint is None:
            src = account_mint.get(mv.source or "")
            dst = account_mint.get(mv.dest or "")
            if src is not None and dst is not None and src != dst:
                raise MalformedReply(f"{where}: transfer between accounts of different mints {src} and {dst}")
            mv_mint = src or dst
            if mv_mint is None:
                unattributed += 1
                continue
        if mv_mint != mint:
            continue
        events.append(
            TokenEvent(
                chain=chain,
                block_number=slot,
                block_hash=block_hash,
                tx_hash=signature,
                log_index=mv.path,
                kind=mv.kind,
                from_addr=mv.source,
                to_addr=mv.dest,
                amount=mv.amount,
                timestamp=timestamp,
            )
        )
    return ParsedTx(tuple(events), unattributed, found)


def accounts_of_mint(mint: str, tx_with_meta: Any, *, where: str = "transaction") -> set[str]:
    """The token accounts of `mint` a successful transaction shows: its pre/post token balances
    and the accounts its token instructions name with the mint (initializeAccount*, mintTo, burn,
    transferChecked). A signature-driven backfill learns the accounts to follow from these."""
    if not isinstance(tx_with_meta, Mapping):
        raise MalformedReply(f"{where} is not an object")
    meta = tx_with_meta.get("meta")
    if not isinstance(meta, Mapping) or meta.get("err") is not None:
        return set()
    message = _req(_req(tx_with_meta, "transaction", Mapping, where), "message", Mapping, where)
    keys = _account_keys(message, meta, where)
    out: set[str] = set()
    for side in ("preTokenBalances", "postTokenBalances"):
        for b in meta.get(side) or ():
            if _req(b, "mint", str, f"{where}.meta.{side}[]") == mint:
                out.add(_key_at(keys, _req(b, "accountIndex", int, f"{where}.meta.{side}[]"), where))
    for ix in _instructions(message, meta, keys, where):
        _, named = _token_move(ix, where)
        if named is not None and named[1] == mint:
            out.add(named[0])
    return out


def _account_keys(message: Mapping[str, Any], meta: Mapping[str, Any], where: str) -> list[str]:
    raw = message.get("accountKeys")
    if not isinstance(raw, list) or not raw:
        raise MalformedReply(f"{where}.message.accountKeys is missing or empty")
    if isinstance(raw[0], Mapping):  # jsonParsed: already includes lookup-table addresses
        keys = []
        for k in raw:
            keys.append(_req(k, "pubkey", str, f"{where}.message.accountKeys[]"))
        return keys
    if not all(isinstance(k, str) for k in raw):
        raise MalformedReply(f"{where}.message.accountKeys holds non-strings")
    keys = list(raw)
    loaded = meta.get("loadedAddresses")
    if loaded is not None:
        if not isinstance(loaded, Mapping):
            raise MalformedReply(f"{where}.meta.loadedAddresses is not an object")
        for part in ("writable", "readonly"):
            extra = loaded.get(part) or []
            if not isinstance(extra, list) or not all(isinstance(k, str) for k in extra):
                raise MalformedReply(f"{where}.meta.loadedAddresses.{part} is not a list of keys")
            keys.extend(extra)
    elif message.get("addressTableLookups"):
        raise MalformedReply(f"{where} uses address lookup tables but meta.loadedAddresses is missing")
    return keys


def _key_at(keys: Sequence[str], idx: Any, where: str) -> str:
    if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < len(keys):
        raise MalformedReply(f"{where}: account index {idx!r} outside the {len(keys)} account keys")
    return keys[idx]


def _one(raw: Any, outer: int, inner: int | None, keys: Sequence[str], where: str) -> _Ix | None:
    """The normalized instruction, or None when it is not a token-program instruction."""
    w = f"{where} instruction {outer}" + ("" if inner is None else f".{inner}")
    if not isinstance(raw, Mapping):
        raise MalformedReply(f"{w} is not an object")
    if "programIdIndex" in raw:  # json encoding
        program_id = _key_at(keys, raw["programIdIndex"], w)
        if program_id not in TOKEN_PROGRAMS:
            return None
        accounts = raw.get("accounts")
        if not isinstance(accounts, list):
            raise MalformedReply(f"{w}.accounts is not a list")
        data = raw.get("data")
        if not isinstance(data, str):
            raise MalformedReply(f"{w}.data is not a string")
        return _Ix(outer, inner, program_id, tuple(_key_at(keys, a, w) for a in accounts), data, None)
    program_id = _req(raw, "programId", str, w)
    if program_id not in TOKEN_PROGRAMS:
        return None
    parsed = raw.get("parsed")
    if parsed is not None:
        if isinstance(parsed, Mapping):
            return _Ix(outer, inner, program_id, None, None, parsed)
        return _Ix(outer, inner, program_id, None, None, {"type": None, "info": parsed})
    accounts = raw.get("accounts")
    data = raw.get("data")
    if not isinstance(accounts, list) or not all(isinstance(a, str) for a in accounts):
        raise MalformedReply(f"{w}.accounts is not a list of keys")
    if not isinstance(data, str):
        raise MalformedReply(f"{w}.data is not a string")
    return _Ix(outer, inner, program_id, tuple(accounts), data, None)


def _instructions(
    message: Mapping[str, Any], meta: Mapping[str, Any], keys: Sequence[str], where: str
) -> Iterator[_Ix]:
    outer_list = message.get("instructions")
    if not isinstance(outer_list, list):
        raise MalformedReply(f"{where}.message.instructions is not a list")
    inner_by_outer: dict[int, list[Any]] = {}
    inner = meta.get("innerInstructions")
    if inner is not None:
        if not isinstance(inner, list):
            raise MalformedReply(f"{where}.meta.innerInstructions is not a list")
        for group in inner:
            idx = _req(group, "index", int, f"{where}.meta.innerInstructions[]")
            ins = _req(group, "instructions", list, f"{where}.meta.innerInstructions[{idx}]")
            if not 0 <= idx < len(outer_list) or idx in inner_by_outer:
                raise MalformedReply(f"{where}.meta.innerInstructions index {idx} is invalid or repeated")
            if len(ins) >= _MAX_INNER:
                raise MalformedReply(
                    f"{where}: {len(ins)} inner instructions under {idx} (max {_MAX_INNER - 1})"
                )
            inner_by_outer[idx] = ins
    for i, raw in enumerate(outer_list):
        ix = _one(raw, i, None, keys, where)
        if ix is not None:
            yield ix
        for j, raw_inner in enumerate(inner_by_outer.get(i, ())):
            ix = _one(raw_inner, i, j, keys, where)
            if ix is not None:
                yield ix


def _amount(value: Any, w: str) -> int:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise MalformedReply(f"{w}: amount is not a non-negative integer: {value!r:.40}")


def _token_move(ix: _Ix, where: str) -> tuple[_Move | None, tuple[str, str] | None]:
    """(movement, (account, mint) the instruction names) of one token-program instruction."""
    w = f"{where} instruction {ix.outer}" + ("" if ix.inner is None else f".{ix.inner}")
    path = encode_path(ix.outer, ix.inner)
    if ix.parsed is not None:
        return _parsed_move(ix.parsed, path, w)
    assert ix.accounts is not None and ix.data is not None
    return _raw_move(ix.accounts, b58decode(ix.data), path, w)


def _parsed_move(parsed: Mapping[str, Any], path: int, w: str) -> tuple[_Move | None, tuple[str, str] | None]:
    kind = parsed.get("type")
    info = parsed.get("info")
    if kind not in {
        "transfer",
        "transferChecked",
        "mintTo",
        "mintToChecked",
        "burn",
        "burnChecked",
        "initializeAccount",
        "initializeAccount2",
        "initializeAccount3",
    }:
        return None, None
    if not isinstance(info, Mapping):
        raise MalformedReply(f"{w}: parsed {kind} has no info object")

    def s(key: str) -> str:
        return str(_req(info, key, str, f"{w}.parsed.info"))

    def checked_amount() -> int:
        ta = _req(info, "tokenAmount", Mapping, f"{w}.parsed.info")
        return _amount(ta.get("amount"), w)

    match kind:
        case "transfer":
            return _Move(
                path, EventKind.TRANSFER, None, s("source"), s("destination"), _amount(info.get("amount"), w)
            ), None
        case "transferChecked":
            m = s("mint")
            return _Move(path, EventKind.TRANSFER, m, s("source"), s("destination"), checked_amount()), (
                s("source"),
                m,
            )
        case "mintTo":
            m = s("mint")
            return _Move(path, EventKind.MINT, m, None, s("account"), _amount(info.get("amount"), w)), (
                s("account"),
                m,
            )
        case "mintToChecked":
            m = s("mint")
            return _Move(path, EventKind.MINT, m, None, s("account"), checked_amount()), (s("account"), m)
        case "burn":
            m = s("mint")
            return _Move(path, EventKind.BURN, m, s("account"), None, _amount(info.get("amount"), w)), (
                s("account"),
                m,
            )
        case "burnChecked":
            m = s("mint")
            return _Move(path, EventKind.BURN, m, s("account"), None, checked_amount()), (s("account"), m)
        case _:  # initializeAccount*
            return None, (s("account"), s("mint"))


@dataclass(frozen=True, slots=True)
class _RawSpec:
    """How one token-program instruction tag (json encoding) decodes: its kind, the data and
    account counts it needs, and which account is the mint, the source and the destination."""

    kind: EventKind
    data_len: int  # tag + u64 amount (+ u8 decimals for the *Checked forms)
    accounts: int
    mint: int | None  # None: a plain Transfer names no mint (attributed through its accounts)
    source: int | None
    dest: int | None


# The dispatch on the instruction tag, as EVM's on (address, topic0): one entry per decoded tag.
# The controls family's tags (6 SetAuthority, 10 FreezeAccount, 11 ThawAccount; Token-2022's
# pausable extension) get entries of their own that record an `indexer.model.ControlEvent` with
# the mint or token account as `address` (issue #14 section 3). Tags not here are no token
# movement of any family.
RAW_TAGS: dict[int, _RawSpec] = {
    TAG_TRANSFER: _RawSpec(EventKind.TRANSFER, 9, 3, None, 0, 1),
    TAG_MINT_TO: _RawSpec(EventKind.MINT, 9, 3, 0, None, 1),
    TAG_BURN: _RawSpec(EventKind.BURN, 9, 3, 1, 0, None),
    TAG_TRANSFER_CHECKED: _RawSpec(EventKind.TRANSFER, 10, 4, 1, 0, 2),
    TAG_MINT_TO_CHECKED: _RawSpec(EventKind.MINT, 10, 3, 0, None, 1),
    TAG_BURN_CHECKED: _RawSpec(EventKind.BURN, 10, 3, 1, 0, None),
}
_INITIALIZE_TAGS = (TAG_INITIALIZE_ACCOUNT, TAG_INITIALIZE_ACCOUNT2, TAG_INITIALIZE_ACCOUNT3)


def _raw_move(
    accounts: Sequence[str], data: bytes, path: int, w: str
) -> tuple[_Move | None, tuple[str, str] | None]:
    if not data:
        return None, None
    tag = data[0]
    if tag in _INITIALIZE_TAGS:
        if len(accounts) < 2:
            raise MalformedReply(f"{w}: initializeAccount with {len(accounts)} accounts")
        return None, (accounts[0], accounts[1])
    spec = RAW_TAGS.get(tag)
    if spec is None:
        return None, None
    if len(data) < spec.data_len or len(accounts) < spec.accounts:
        raise MalformedReply(
            f"{w}: token instruction {tag} has {len(data)} data bytes / {len(accounts)} accounts "
            f"(needs {spec.data_len} / {spec.accounts})"
        )
    amount = int.from_bytes(data[1:9], "little")

    def at(i: int | None) -> str | None:
        return None if i is None else accounts[i]

    mint = at(spec.mint)
    move = _Move(path, spec.kind, mint, at(spec.source), at(spec.dest), amount)
    if mint is None:
        return move, None
    # The account whose mint the instruction names: the destination of a mint, else the source.
    account = at(spec.dest) if spec.kind is EventKind.MINT else at(spec.source)
    assert account is not None
    return move, (account, mint)


# ---- the controls family (issue #14 section 3) -------------------------------------------------
# SetAuthority's AuthorityType, as the node's jsonParsed names them (index = the u8 on the wire).
AUTHORITY_TYPES = (
    "mintTokens",
    "freezeAccount",
    "accountOwner",
    "closeAccount",
    "transferFeeConfig",
    "withheldWithdraw",
    "closeMint",
    "interestRate",
    "permanentDelegate",
    "confidentialTransferMint",
    "transferHookProgramId",
    "confidentialTransferFeeConfig",
    "metadataPointer",
    "groupPointer",
    "groupMemberPointer",
    "scaledUiAmount",
    "pause",
)
_ACCOUNT_AUTHORITIES = frozenset({"accountOwner", "closeAccount"})  # of a token account, not the mint
# An instruction that records two control events (InitializeMint: the mint authority, and the
# freeze authority when it sets one) gives the second `path + SECOND_RECORD`. Inner positions stay
# below 64 (the runtime's instruction-trace limit), so it never meets another instruction's path.
SECOND_RECORD = 500
# A control event's log_index also orders it among the block's transactions (the state it folds
# into depends on that order, e.g. a Pause and a Resume in one slot): `tx_index * CONTROL_TX_BASE +
# path`, with paths below 64 * 1000 + 500 + 64.
CONTROL_TX_BASE = 100_000


def control_log_index(tx_index: int, path: int) -> int:
    if tx_index < 0 or not 0 <= path < CONTROL_TX_BASE:
        raise ValueError(f"control position ({tx_index}, {path}) out of range")
    return tx_index * CONTROL_TX_BASE + path


@dataclass(frozen=True, slots=True)
class _Control:
    """One control instruction, normalized over the two encodings. `mint` is the mint it names;
    None for a token account's SetAuthority (attributed through the account map, like a plain
    Transfer). `address` is what it acts on: the mint, or the token account."""

    path: int
    kind: ControlKind
    event: str
    address: str
    mint: str | None
    subject: str | None = None
    previous: str | None = None
    actor: str | None = None
    role: str | None = None


def _control_events(
    chain: str,
    mint: str,
    slot: int,
    block_hash: str,
    timestamp: int,
    signature: str,
    tx_index: int,
    ixs: Sequence[_Ix],
    account_mint: Mapping[str, str],
    where: str,
) -> Iterator[ControlEvent]:
    for ix in ixs:
        for c in _token_controls(ix, where):
            owner_mint = c.mint if c.mint is not None else account_mint.get(c.address)
            if owner_mint != mint:
                continue
            yield ControlEvent(
                chain=chain,
                block_number=slot,
                block_hash=block_hash,
                tx_hash=signature,
                log_index=control_log_index(tx_index, c.path),
                kind=c.kind,
                event=c.event,
                address=c.address,
                subject=c.subject,
                previous=c.previous,
                actor=c.actor,
                role=c.role,
                timestamp=timestamp,
            )


def _set_authority(
    path: int, where: str, owned: str, authority_type: str, new: str | None, current: str | None
) -> _Control:
    if authority_type in _ACCOUNT_AUTHORITIES:
        return _Control(
            path,
            ControlKind.AUTHORITY_CHANGED,
            "SetAuthority",
            owned,
            None,
            new,
            current,
            current,
            authority_type,
        )
    kind = {
        "mintTokens": ControlKind.MINT_AUTHORITY_CHANGED,
        "freezeAccount": ControlKind.FREEZE_AUTHORITY_CHANGED,
    }.get(authority_type, ControlKind.AUTHORITY_CHANGED)
    return _Control(path, kind, "SetAuthority", owned, owned, new, current, current, authority_type)


def _initialize_mint(path: int, event: str, mint: str, authority: str, freeze: str | None) -> list[_Control]:
    out = [
        _Control(path, ControlKind.MINT_AUTHORITY_CHANGED, event, mint, mint, authority, role="mintTokens")
    ]
    if freeze is not None:
        out.append(
            _Control(
                path + SECOND_RECORD,
                ControlKind.FREEZE_AUTHORITY_CHANGED,
                event,
                mint,
                mint,
                freeze,
                role="freezeAccount",
            )
        )
    return out


def _token_controls(ix: _Ix, where: str) -> list[_Control]:
    """The control records of one token-program instruction (usually none)."""
    w = f"{where} instruction {ix.outer}" + ("" if ix.inner is None else f".{ix.inner}")
    path = encode_path(ix.outer, ix.inner)
    if ix.parsed is not None:
        return _parsed_controls(ix.program_id, ix.parsed, path, w)
    assert ix.accounts is not None and ix.data is not None
    return _raw_controls(ix.program_id, ix.accounts, b58decode(ix.data), path, w)


def _pubkey_b58(data: bytes) -> str:
    return b58encode(data)


def _raw_controls(program_id: str, accounts: Sequence[str], data: bytes, path: int, w: str) -> list[_Control]:
    if not data:
        return []
    tag = data[0]

    def need(n_data: int, n_accounts: int, name: str) -> None:
        if len(data) < n_data or len(accounts) < n_accounts:
            raise MalformedReply(
                f"{w}: {name} has {len(data)} data bytes / {len(accounts)} accounts "
                f"(needs {n_data} / {n_accounts})"
            )

    def option_key(at: int, name: str) -> tuple[str | None, int]:
        """A packed COption<Pubkey> at `at`: (key or None, bytes used)."""
        need(at + 1, 0, name)
        match data[at]:
            case 0:
                return None, 1
            case 1:
                need(at + 33, 0, name)
                return _pubkey_b58(data[at + 1 : at + 33]), 33
            case flag:
                raise MalformedReply(f"{w}: {name} has option flag {flag} (not 0 or 1)")

    match tag:
        case 6:  # SetAuthority: [owned, current authority, signers...]; u8 type, COption<Pubkey>
            need(3, 2, "SetAuthority")
            if data[1] >= len(AUTHORITY_TYPES):
                raise MalformedReply(f"{w}: SetAuthority with unknown authority type {data[1]}")
            new, _ = option_key(2, "SetAuthority")
            return [_set_authority(path, w, accounts[0], AUTHORITY_TYPES[data[1]], new, accounts[1])]
        case 10 | 11:  # FreezeAccount / ThawAccount: [account, mint, authority]
            name = "FreezeAccount" if tag == 10 else "ThawAccount"
            need(1, 3, name)
            kind = ControlKind.FROZEN if tag == 10 else ControlKind.UNFROZEN
            return [_Control(path, kind, name, accounts[1], accounts[1], accounts[0], actor=accounts[2])]
        case 0:  # InitializeMint: [mint, rent]; u8 decimals, Pubkey, COption<Pubkey>
            need(35, 1, "InitializeMint")
            freeze, _ = option_key(34, "InitializeMint")
            return _initialize_mint(path, "InitializeMint", accounts[0], _pubkey_b58(data[2:34]), freeze)
        case 20:  # InitializeMint2: [mint]
            need(35, 1, "InitializeMint2")
            freeze, _ = option_key(34, "InitializeMint2")
            return _initialize_mint(path, "InitializeMint2", accounts[0], _pubkey_b58(data[2:34]), freeze)
        case 44 if program_id == TOKEN_2022_PROGRAM_ID:  # PausableExtension
            need(2, 1, "PausableExtension")
            match data[1]:
                case 0:  # Initialize {authority: Pubkey} on [mint], before InitializeMint
                    need(34, 1, "InitializePausableConfig")
                    key = _pubkey_b58(data[2:34])
                    return [
                        _Control(
                            path,
                            ControlKind.AUTHORITY_CHANGED,
                            "InitializePausableConfig",
                            accounts[0],
                            accounts[0],
                            key,
                            role="pause",
                        )
                    ]
                case 1 | 2:  # Pause / Resume: [mint, authority]
                    need(2, 2, "Pause")
                    paused = data[1] == 1
                    return [
                        _Control(
                            path,
                            ControlKind.PAUSED if paused else ControlKind.UNPAUSED,
                            "Pause" if paused else "Resume",
                            accounts[0],
                            accounts[0],
                            actor=accounts[1],
                        )
                    ]
                case sub:
                    raise MalformedReply(f"{w}: PausableExtension with unknown instruction {sub}")
        case _:
            return []


def _parsed_controls(program_id: str, parsed: Mapping[str, Any], path: int, w: str) -> list[_Control]:
    kind = parsed.get("type")
    if kind not in _PARSED_CONTROL_TYPES:
        return []
    info = parsed.get("info")
    if not isinstance(info, Mapping):
        raise MalformedReply(f"{w}: parsed {kind} has no info object")

    def s(key: str) -> str:
        return str(_req(info, key, str, f"{w}.parsed.info"))

    def opt(*keys: str) -> str | None:
        for key in keys:
            v = info.get(key)
            if v is not None:
                if not isinstance(v, str):
                    raise MalformedReply(f"{w}.parsed.info.{key} is not a key: {v!r:.60}")
                return v
        return None

    match kind:
        case "setAuthority":
            atype = s("authorityType")
            if atype not in AUTHORITY_TYPES:
                raise MalformedReply(f"{w}: setAuthority with unknown authorityType {atype!r}")
            owned = opt("mint", "account")
            if owned is None:
                raise MalformedReply(f"{w}.parsed.info names neither mint nor account")
            current = opt("authority", "multisigAuthority")
            return [_set_authority(path, w, owned, atype, opt("newAuthority"), current)]
        case "freezeAccount" | "thawAccount":
            frozen = kind == "freezeAccount"
            return [
                _Control(
                    path,
                    ControlKind.FROZEN if frozen else ControlKind.UNFROZEN,
                    "FreezeAccount" if frozen else "ThawAccount",
                    s("mint"),
                    s("mint"),
                    s("account"),
                    actor=opt("freezeAuthority", "multisigFreezeAuthority"),
                )
            ]
        case "initializeMint" | "initializeMint2":
            event = "InitializeMint" if kind == "initializeMint" else "InitializeMint2"
            return _initialize_mint(path, event, s("mint"), s("mintAuthority"), opt("freezeAuthority"))
        case "initializePausableConfig" if program_id == TOKEN_2022_PROGRAM_ID:
            return [
                _Control(
                    path,
                    ControlKind.AUTHORITY_CHANGED,
                    "InitializePausableConfig",
                    s("mint"),
                    s("mint"),
                    opt("authority"),
                    role="pause",
                )
            ]
        case "pause" | "resume" if program_id == TOKEN_2022_PROGRAM_ID:
            paused = kind == "pause"
            return [
                _Control(
                    path,
                    ControlKind.PAUSED if paused else ControlKind.UNPAUSED,
                    "Pause" if paused else "Resume",
                    s("mint"),
                    s("mint"),
                    actor=opt("authority", "multisigAuthority"),
                )
            ]
        case _:
            return []


_PARSED_CONTROL_TYPES = frozenset(
    {
        "setAuthority",
        "freezeAccount",
        "thawAccount",
        "initializeMint",
        "initializeMint2",
        "initializePausableConfig",
        "pause",
        "resume",
    }
)
