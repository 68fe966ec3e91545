"""A local Solana JSON-RPC node over `solders.litesvm.LiteSVM` (the real SPL Token programs).

`SolanaLedger` (synchronous, in-process) executes transactions on LiteSVM and groups them into
slots with blockhashes, parent links, skipped slots and three commitment levels:

- processed = the newest block; confirmed = newest block at or below `tip - confirmed_depth`;
  finalized = newest block at or below `tip - finality_depth` (never moves backwards).

Forks: LiteSVM state cannot be rewound, so `fork(at)` drops every block above `at` (which must be
at or above finalized, unless `below_finalized=True`: a deliberate fault, a cluster or node that
takes back what it called final, for tests of the indexer's finality checks) and rebuilds a fresh LiteSVM by replaying the surviving slots' operations
in order (deterministic), so supply and balances always match the visible chain. By default the
dropped slot numbers become skipped and new blocks continue at higher slots (as on mainnet, where
slots are clock-driven); `reuse_slots=True` refills the same numbers with new blockhashes.
`keep_txs=True` re-executes the dropped transactions in the next block (the same signatures in a
different block).

`SolanaRpcServer` serves the JSON-RPC methods the indexer and solana-py's AsyncClient use, in the
node's wire format (aiohttp, loopback, port 0 by default). `SolanaDevnet` owns both plus an optional
slot producer; `run_solana_devnet(stop, ...)` is the demo entry point (with traffic).
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import hashlib
import ipaddress
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import orjson
import structlog
from aiohttp import web
from solders.account import Account
from solders.hash import Hash
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.transaction import Transaction, VersionedTransaction

from indexer.chains.solana_parse import TOKEN_PROGRAMS, b58decode
from indexer.devnet.solana_wire import (
    decode_mint,
    decode_token_account,
    render_instruction,
    ui_token_amount,
)

if TYPE_CHECKING:
    from indexer.devnet.solana_admin_rpc import SolanaAdmin

log = structlog.get_logger(__name__)

Commitment = Literal["processed", "confirmed", "finalized"]
ALT_PROGRAM = "AddressLookupTab1e1111111111111111111111111"
_LANDS_WITH_ERROR = ("InstructionError", "InsufficientFundsForRent", "ProgramExecutionTemporarilyRestricted")
API_VERSION = "2.0.0"


class TransactionRejected(Exception):
    """The transaction would not land (preflight failure, bad signature, duplicate, ...)."""

    def __init__(self, err: Any, logs: Sequence[str]) -> None:
        self.err = err
        self.logs = list(logs)
        super().__init__(f"transaction rejected: {err}")


@dataclass(frozen=True, slots=True)
class TxOp:
    tx: VersionedTransaction


@dataclass(frozen=True, slots=True)
class SetAccountOp:
    pubkey: Pubkey
    account: Account


Op = TxOp | SetAccountOp


@dataclass(slots=True)
class TxRecord:
    signature: str
    tx: VersionedTransaction
    version: Literal["legacy"] | int
    keys: list[str]  # static keys + loaded writable + loaded readonly
    loaded_writable: list[str]
    loaded_readonly: list[str]
    err: Any
    fee: int
    logs: list[str]
    inner: list[list[tuple[int, list[int], bytes, int | None]]]
    pre_balances: list[int]
    post_balances: list[int]
    pre_token: list[dict[str, Any]]
    post_token: list[dict[str, Any]]
    compute_units: int


@dataclass(slots=True)
class Block:
    slot: int
    parent_slot: int
    blockhash: str
    previous_blockhash: str
    block_time: int
    block_height: int
    ops: list[Op] = field(default_factory=list)
    txs: list[TxRecord] = field(default_factory=list)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _new_svm() -> LiteSVM:
    return LiteSVM().with_blockhash_check(False)


class SolanaLedger:
    """Slots, commitments and forks over LiteSVM. Not thread-safe; use from one event loop."""

    def __init__(
        self,
        *,
        seed: int = 0,
        confirmed_depth: int = 1,
        finality_depth: int = 8,
        genesis_time: int | None = None,
        slot_seconds: float = 0.4,
    ) -> None:
        if not 0 <= confirmed_depth <= finality_depth:
            raise ValueError("need 0 <= confirmed_depth <= finality_depth")
        self.seed = seed
        self.confirmed_depth = confirmed_depth
        self.finality_depth = finality_depth
        self.genesis_time = int(time.time()) if genesis_time is None else genesis_time
        self.slot_seconds = slot_seconds
        self.svm = _new_svm()
        self.tip = 0
        self.fork_epoch = 0
        genesis_hash = str(Hash(hashlib.sha256(f"usd1-devnet-genesis:{seed}".encode()).digest()))
        self.blocks: dict[int, Block] = {
            0: Block(0, 0, genesis_hash, "11111111111111111111111111111111", self.genesis_time, 0)
        }
        self._slots: list[int] = [0]
        self._pending_ops: list[Op] = []
        self._pending_txs: list[TxRecord] = []
        self._finalized_floor = 0
        self._acct_hist: dict[str, list[tuple[int, Account | None]]] = {}
        self._sig_index: dict[str, int] = {}
        self._on_change: list[Callable[[], None]] = []

    # ---- writes -------------------------------------------------------------------------------

    def submit(self, tx: VersionedTransaction | Transaction, *, preflight: bool = False) -> TxRecord:
        """Execute now (it lands in the next produced block). With `preflight`, a transaction that
        would fail is rejected instead (like sendTransaction without skipPreflight)."""
        vtx = VersionedTransaction.from_legacy(tx) if isinstance(tx, Transaction) else tx
        if preflight:
            sim = self.svm.simulate_transaction(vtx)
            if type(sim).__name__ == "FailedTransactionMetadata":
                err = orjson.loads(sim.to_json())["err"]  # type: ignore[union-attr]
                raise TransactionRejected(err, sim.meta().logs())  # type: ignore[union-attr]
        rec = self._execute(vtx)
        self._pending_ops.append(TxOp(vtx))
        self._pending_txs.append(rec)
        return rec

    def set_account(self, pubkey: Pubkey, account: Account) -> None:
        self.svm.set_account(pubkey, account)
        self._pending_ops.append(SetAccountOp(pubkey, account))

    def fund(self, pubkey: Pubkey, lamports: int) -> None:
        current = self.svm.get_account(pubkey)
        base = current.lamports if current is not None else 0
        self.set_account(pubkey, Account(lamports=base + lamports, data=b"", owner=Pubkey.default()))

    def advance(self, n: int = 1, *, skip: bool = False) -> list[int]:
        """Produce `n` slots; with `skip`, the slots pass without blocks (pending transactions wait
        for the next block). Returns the slot numbers of the new blocks."""
        made: list[int] = []
        for _ in range(n):
            self.tip += 1
            if not skip:
                self._seal(self.tip, self._pending_ops, self._pending_txs)
                self._pending_ops, self._pending_txs = [], []
                made.append(self.tip)
            self._finalized_floor = max(
                self._finalized_floor, self._block_at_or_below(self.tip - self.finality_depth)
            )
        return made

    def fork(
        self,
        at: int | None = None,
        *,
        reuse_slots: bool = False,
        keep_txs: bool = False,
        below_finalized: bool = False,
    ) -> list[int]:
        """Drop every block above `at` (default: the finalized slot); returns the dropped slots.
        `below_finalized`: allow `at` below the finalized slot (a finality violation, on purpose);
        the finalized slot then falls back to at most `at`."""
        fin = self.commitment_slot("finalized")
        at = fin if at is None else at
        if at < fin and not below_finalized:
            raise ValueError(f"fork point {at} is below the finalized slot {fin}")
        if at not in self.blocks:
            raise ValueError(f"fork point {at} is not a block")
        self._finalized_floor = min(self._finalized_floor, at)
        dropped = [s for s in self._slots if s > at]
        replay_ops: list[Op] = []
        for s in dropped:
            for op in self.blocks[s].ops:
                if keep_txs or isinstance(op, SetAccountOp):
                    replay_ops.append(op)
            del self.blocks[s]
        replay_ops.extend(self._pending_ops)
        self._slots = [s for s in self._slots if s <= at]
        self.fork_epoch += 1
        if reuse_slots:
            self.tip = at
        self._rebuild()
        self._pending_ops, self._pending_txs = [], []
        for op in replay_ops:
            if isinstance(op, SetAccountOp):
                self.set_account(op.pubkey, op.account)
            else:
                try:
                    self.submit(op.tx)
                except TransactionRejected:
                    pass  # e.g. it depended on a dropped transaction
        log.info("solana_devnet_fork", at=at, dropped=len(dropped), reuse_slots=reuse_slots)
        return dropped

    # ---- reads --------------------------------------------------------------------------------

    def _block_at_or_below(self, slot: int) -> int:
        i = bisect.bisect_right(self._slots, slot)
        return self._slots[i - 1] if i else 0

    def commitment_slot(self, commitment: Commitment) -> int:
        if commitment == "processed":
            return self._slots[-1]
        fin = max(self._finalized_floor, self._block_at_or_below(self.tip - self.finality_depth))
        if commitment == "finalized":
            return fin
        return max(fin, self._block_at_or_below(self.tip - self.confirmed_depth))

    def block_slots(self, start: int, end: int) -> list[int]:
        lo = bisect.bisect_left(self._slots, start)
        hi = bisect.bisect_right(self._slots, end)
        return self._slots[lo:hi]

    def account(self, pubkey: Pubkey, commitment: Commitment) -> Account | None:
        if commitment == "processed":
            return self.svm.get_account(pubkey)
        hist = self._acct_hist.get(str(pubkey))
        if hist is None:
            return self.svm.get_account(pubkey)  # never touched since genesis (programs, sysvars)
        at = self.commitment_slot(commitment)
        i = bisect.bisect_right(hist, at, key=lambda e: e[0])
        return hist[i - 1][1] if i else None

    def find_tx(self, signature: str) -> tuple[Block, TxRecord] | None:
        slot = self._sig_index.get(signature)
        if slot is None or slot not in self.blocks:
            return None
        block = self.blocks[slot]
        for rec in block.txs:
            if rec.signature == signature:
                return block, rec
        return None

    # ---- internals ----------------------------------------------------------------------------

    def _seal(self, slot: int, ops: list[Op], txs: list[TxRecord]) -> Block:
        parent = self.blocks[self._slots[-1]]
        sigs = ",".join(r.signature for r in txs)
        digest = hashlib.sha256(
            f"{self.seed}:{self.fork_epoch}:{slot}:{parent.blockhash}:{sigs}".encode()
        ).digest()
        block = Block(
            slot=slot,
            parent_slot=parent.slot,
            blockhash=str(Hash(digest)),
            previous_blockhash=parent.blockhash,
            block_time=self.genesis_time + int(slot * self.slot_seconds),
            block_height=parent.block_height + 1,
            ops=list(ops),
            txs=list(txs),
        )
        self.blocks[slot] = block
        self._slots.append(slot)
        self._record_accounts(slot, ops, txs)
        for r in txs:
            self._sig_index[r.signature] = slot
        return block

    def _record_accounts(self, slot: int, ops: Sequence[Op], txs: Sequence[TxRecord]) -> None:
        touched: set[str] = set()
        for op in ops:
            if isinstance(op, SetAccountOp):
                touched.add(str(op.pubkey))
        for r in txs:
            touched.update(r.keys)
        for key in touched:
            acct = self.svm.get_account(Pubkey.from_string(key))
            self._acct_hist.setdefault(key, []).append((slot, acct))

    def _rebuild(self) -> None:
        """A fresh LiteSVM with every surviving block's operations replayed in order."""
        self.svm = _new_svm()
        self._acct_hist = {}
        for slot in self._slots:
            block = self.blocks[slot]
            i = 0
            for op in block.ops:
                if isinstance(op, SetAccountOp):
                    self.svm.set_account(op.pubkey, op.account)
                    continue
                rec = self._execute(op.tx)
                old = block.txs[i]
                i += 1
                if rec.signature != old.signature or rec.err != old.err:
                    raise RuntimeError(f"replay of slot {slot} diverged at {old.signature}")
            self._record_accounts(slot, block.ops, block.txs)

    def _loaded(self, vtx: VersionedTransaction) -> tuple[list[str], list[str]]:
        lookups = getattr(vtx.message, "address_table_lookups", None) or []
        writable: list[str] = []
        readonly: list[str] = []
        for lk in lookups:
            acct = self.svm.get_account(lk.account_key)
            if acct is None or str(acct.owner) != ALT_PROGRAM:
                raise TransactionRejected("AddressLookupTableNotFound", [])
            data = bytes(acct.data)
            addrs = [
                str(Pubkey.from_bytes(data[56 + 32 * k : 88 + 32 * k])) for k in range((len(data) - 56) // 32)
            ]
            try:
                writable += [addrs[k] for k in lk.writable_indexes]
                readonly += [addrs[k] for k in lk.readonly_indexes]
            except IndexError:
                raise TransactionRejected("InvalidAddressLookupTableIndex", []) from None
        return writable, readonly

    def _token_balances(self, keys: Sequence[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        decimals: dict[str, int] = {}
        for i, key in enumerate(keys):
            acct = self.svm.get_account(Pubkey.from_string(key))
            if acct is None:
                continue
            st = decode_token_account(str(acct.owner), bytes(acct.data))
            if st is None:
                continue
            if st.mint not in decimals:
                m = self.svm.get_account(Pubkey.from_string(st.mint))
                dm = decode_mint(bytes(m.data)) if m is not None else None
                decimals[st.mint] = dm[1] if dm else 0
            out.append(
                {
                    "accountIndex": i,
                    "mint": st.mint,
                    "owner": st.owner,
                    "programId": st.program_id,
                    "uiTokenAmount": ui_token_amount(st.amount, decimals[st.mint]),
                }
            )
        return out

    def _execute(self, vtx: VersionedTransaction) -> TxRecord:
        msg = vtx.message
        static = [str(k) for k in msg.account_keys]
        writable, readonly = self._loaded(vtx)
        keys = static + writable + readonly
        pubkeys = [Pubkey.from_string(k) for k in keys]

        def lamports() -> list[int]:
            out = []
            for pk in pubkeys:
                a = self.svm.get_account(pk)
                out.append(a.lamports if a is not None else 0)
            return out

        pre_bal, pre_tok = lamports(), self._token_balances(keys)
        res = self.svm.send_transaction(vtx)
        failed = type(res).__name__ == "FailedTransactionMetadata"
        if failed:
            err = orjson.loads(res.to_json())["err"]
            meta = res.meta()  # type: ignore[union-attr]
            name = next(iter(err)) if isinstance(err, dict) else str(err)
            if name not in _LANDS_WITH_ERROR:
                raise TransactionRejected(err, meta.logs())
        else:
            err, meta = None, res
        inner = [
            [
                (
                    ii.instruction().program_id_index,
                    list(ii.instruction().accounts),
                    bytes(ii.instruction().data),
                    ii.stack_height(),
                )
                for ii in group
            ]
            for group in meta.inner_instructions()
        ]
        return TxRecord(
            signature=str(vtx.signatures[0]),
            tx=vtx,
            version="legacy" if type(msg).__name__ == "Message" else 0,
            keys=keys,
            loaded_writable=writable,
            loaded_readonly=readonly,
            err=err,
            fee=meta.fee(),
            logs=list(meta.logs()),
            inner=inner,
            pre_balances=pre_bal,
            post_balances=lamports(),
            pre_token=pre_tok,
            post_token=self._token_balances(keys),
            compute_units=meta.compute_units_consumed(),
        )


# ---- rendering --------------------------------------------------------------------------------


def render_tx(rec: TxRecord, *, parsed: bool, with_version: bool) -> dict[str, Any]:
    """`{transaction, meta[, version]}` as in a `getBlock` entry, json or jsonParsed encoding."""
    msg = rec.tx.message
    header = msg.header
    n_static = len(msg.account_keys)
    n_sig = header.num_required_signatures
    inner_json = [
        {
            "index": i,
            "instructions": [
                render_instruction(p, accts, data, rec.keys, sh, parsed=parsed)
                for (p, accts, data, sh) in group
            ],
        }
        for i, group in enumerate(rec.inner)
        if group
    ]
    instructions = [
        render_instruction(
            ci.program_id_index, list(ci.accounts), bytes(ci.data), rec.keys, None, parsed=parsed
        )
        for ci in msg.instructions
    ]
    lookups = getattr(msg, "address_table_lookups", None)
    message: dict[str, Any]
    if parsed:

        def is_writable(i: int) -> bool:
            if i < n_sig:
                return i < n_sig - header.num_readonly_signed_accounts
            if i < n_static:
                return i < n_static - header.num_readonly_unsigned_accounts
            return i < n_static + len(rec.loaded_writable)

        message = {
            "accountKeys": [
                {
                    "pubkey": k,
                    "signer": i < n_sig,
                    "writable": is_writable(i),
                    "source": "transaction" if i < n_static else "lookupTable",
                }
                for i, k in enumerate(rec.keys)
            ],
            "instructions": instructions,
            "recentBlockhash": str(msg.recent_blockhash),
        }
    else:
        message = {
            "accountKeys": rec.keys[:n_static],
            "header": {
                "numRequiredSignatures": header.num_required_signatures,
                "numReadonlySignedAccounts": header.num_readonly_signed_accounts,
                "numReadonlyUnsignedAccounts": header.num_readonly_unsigned_accounts,
            },
            "instructions": instructions,
            "recentBlockhash": str(msg.recent_blockhash),
        }
    if lookups is not None:
        message["addressTableLookups"] = [
            {
                "accountKey": str(lk.account_key),
                "writableIndexes": list(lk.writable_indexes),
                "readonlyIndexes": list(lk.readonly_indexes),
            }
            for lk in lookups
        ]
    meta: dict[str, Any] = {
        "err": rec.err,
        "status": {"Ok": None} if rec.err is None else {"Err": rec.err},
        "fee": rec.fee,
        "preBalances": rec.pre_balances,
        "postBalances": rec.post_balances,
        "innerInstructions": inner_json,
        "logMessages": rec.logs,
        "preTokenBalances": rec.pre_token,
        "postTokenBalances": rec.post_token,
        "rewards": [],
        "computeUnitsConsumed": rec.compute_units,
    }
    if not parsed:
        meta["loadedAddresses"] = {"writable": rec.loaded_writable, "readonly": rec.loaded_readonly}
    out: dict[str, Any] = {
        "transaction": {"signatures": [str(s) for s in rec.tx.signatures], "message": message},
        "meta": meta,
    }
    if with_version:
        out["version"] = rec.version
    return out


# ---- JSON-RPC server --------------------------------------------------------------------------


class RpcFault(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"{code}: {message}")


INVALID_PARAMS = -32602


def _config(params: list[Any], index: int) -> dict[str, Any]:
    if len(params) > index and params[index] is not None:
        if not isinstance(params[index], dict):
            raise RpcFault(INVALID_PARAMS, f"Invalid params: expected a config object at {index}")
        return {k: v for k, v in params[index].items() if v is not None}  # clients send nulls
    return {}


def _commitment(cfg: dict[str, Any], *, block_query: bool = False) -> Commitment:
    c = cfg.get("commitment", "finalized")
    if c not in ("processed", "confirmed", "finalized"):
        raise RpcFault(INVALID_PARAMS, f"Invalid params: unknown commitment {c!r}")
    if block_query and c == "processed":
        raise RpcFault(INVALID_PARAMS, "Method does not support commitment below `confirmed`")
    return c  # type: ignore[no-any-return]


def _pubkey(value: Any) -> Pubkey:
    try:
        return Pubkey.from_string(value)
    except (ValueError, TypeError):
        raise RpcFault(INVALID_PARAMS, f"Invalid param: Invalid pubkey {value!r}") from None


def _slot_param(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RpcFault(INVALID_PARAMS, f"Invalid params: slot must be a non-negative integer, got {value!r}")
    return value


def _reply(rid: Any, call: Callable[[], Any]) -> dict[str, Any]:
    try:
        return {"jsonrpc": "2.0", "id": rid, "result": call()}
    except RpcFault as f:
        err: dict[str, Any] = {"code": f.code, "message": f.message}
        if f.data is not None:
            err["data"] = f.data
        return {"jsonrpc": "2.0", "id": rid, "error": err}


class SolanaRpcServer:
    """JSON-RPC over HTTP for a `SolanaLedger` (single and batch requests)."""

    def __init__(self, ledger: SolanaLedger, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.ledger = ledger
        self.host = host
        self.port = port
        self.calls: Counter[str] = Counter()
        self.bytes_out: Counter[str] = Counter()  # reply bytes per method (measurement)
        self._runner: web.AppRunner | None = None
        self._methods: dict[str, Callable[[list[Any]], Any]] = {
            "getSlot": self._get_slot,
            "getBlockHeight": self._get_block_height,
            "getBlocks": self._get_blocks,
            "getBlocksWithLimit": self._get_blocks_with_limit,
            "getBlock": self._get_block,
            "getTransaction": self._get_transaction,
            "getSignaturesForAddress": self._get_signatures_for_address,
            "getSignatureStatuses": self._get_signature_statuses,
            "getTokenSupply": self._get_token_supply,
            "getTokenAccountBalance": self._get_token_account_balance,
            "getLatestBlockhash": self._get_latest_blockhash,
            "getBalance": self._get_balance,
            "getAccountInfo": self._get_account_info,
            "getMultipleAccounts": self._get_multiple_accounts,
            "sendTransaction": self._send_transaction,
            "getHealth": lambda p: "ok",
            "getVersion": lambda p: {"solana-core": f"{API_VERSION}-usd1-devnet", "feature-set": 0},
            "getGenesisHash": lambda p: self.ledger.blocks[0].blockhash,
            "getFirstAvailableBlock": lambda p: 0,
            "minimumLedgerSlot": lambda p: 0,
        }
        self._named: dict[str, Callable[[dict[str, Any]], Any]] = {}

    def register(self, methods: Mapping[str, Callable[[dict[str, Any]], Any]]) -> None:
        """Serve more methods that take named params: an object, or a list holding one object
        (the devnet's admin methods, `solana_admin_rpc`)."""
        clash = set(methods) & (set(self._methods) | set(self._named))
        if clash:
            raise ValueError(f"methods already served: {sorted(clash)}")
        self._named.update(methods)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = getattr(site, "_server", None)
        if self.port == 0 and server is not None and server.sockets:
            self.port = int(server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self._json(
                {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}
            )
        if isinstance(body, list):
            if not body:
                return self._json(
                    {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid request"}}
                )
            parts = [self._counted(item) for item in body]
            return web.Response(body=b"[" + b",".join(parts) + b"]", content_type="application/json")
        return web.Response(body=self._counted(body), content_type="application/json")

    def _counted(self, req: Any) -> bytes:
        """One request's reply, serialized; its size counted per method (`bytes_out`)."""
        out = orjson.dumps(self._dispatch(req))
        method = req.get("method") if isinstance(req, dict) else None
        self.bytes_out[method if isinstance(method, str) else "?"] += len(out)
        return out

    @staticmethod
    def _json(obj: Any) -> web.Response:
        return web.Response(body=orjson.dumps(obj), content_type="application/json")

    def _dispatch(self, req: Any) -> dict[str, Any]:
        if not isinstance(req, dict) or not isinstance(req.get("method"), str):
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid request"}}
        rid = req.get("id")
        method = req["method"]
        params = req.get("params") or []
        self.calls[method] += 1
        named = self._named.get(method)
        if named is not None:
            return self._dispatch_named(rid, named, req.get("params"))
        fn = self._methods.get(method)
        if fn is None:
            return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "Method not found"}}
        if not isinstance(params, list):
            return {
                "jsonrpc": "2.0",
                "id": rid,
                "error": {"code": INVALID_PARAMS, "message": "Invalid params"},
            }
        return _reply(rid, lambda: fn(params))

    @staticmethod
    def _dispatch_named(rid: Any, fn: Callable[[dict[str, Any]], Any], params: Any) -> dict[str, Any]:
        if params is None or params == []:
            obj: Any = {}
        elif isinstance(params, list) and len(params) == 1:
            obj = params[0]
        else:
            obj = params
        if not isinstance(obj, dict):
            message = "Invalid params: expected an object of named params (or a list holding one)"
            return {"jsonrpc": "2.0", "id": rid, "error": {"code": INVALID_PARAMS, "message": message}}
        return _reply(rid, lambda: fn(obj))

    def _context(self, slot: int) -> dict[str, Any]:
        return {"slot": slot, "apiVersion": API_VERSION}

    # ---- methods ----

    def _get_slot(self, params: list[Any]) -> int:
        return self.ledger.commitment_slot(_commitment(_config(params, 0)))

    def _get_block_height(self, params: list[Any]) -> int:
        slot = self.ledger.commitment_slot(_commitment(_config(params, 0)))
        return self.ledger.blocks[slot].block_height

    def _get_blocks(self, params: list[Any]) -> list[int]:
        if not params:
            raise RpcFault(INVALID_PARAMS, "Invalid params: missing start slot")
        start = _slot_param(params[0])
        cfg_index = 2
        end: int | None = None
        if len(params) > 1:
            if isinstance(params[1], dict):
                cfg_index = 1
            elif params[1] is not None:
                end = _slot_param(params[1])
        top = self.ledger.commitment_slot(_commitment(_config(params, cfg_index), block_query=True))
        end = top if end is None else min(end, top)
        if end - start > 500_000:
            raise RpcFault(INVALID_PARAMS, "Slot range too large; max 500000")
        return self.ledger.block_slots(start, end)

    def _get_blocks_with_limit(self, params: list[Any]) -> list[int]:
        if len(params) < 2:
            raise RpcFault(INVALID_PARAMS, "Invalid params: expected start slot and limit")
        start, limit = _slot_param(params[0]), _slot_param(params[1])
        top = self.ledger.commitment_slot(_commitment(_config(params, 2), block_query=True))
        return self.ledger.block_slots(start, top)[:limit]

    def _get_block(self, params: list[Any]) -> Any:
        if not params:
            raise RpcFault(INVALID_PARAMS, "Invalid params: missing slot")
        slot = _slot_param(params[0])
        cfg = _config(params, 1)
        top = self.ledger.commitment_slot(_commitment(cfg, block_query=True))
        encoding = cfg.get("encoding", "json")
        if encoding not in ("json", "jsonParsed"):
            raise RpcFault(
                INVALID_PARAMS, f"Invalid params: encoding {encoding!r} not supported by the devnet"
            )
        details = cfg.get("transactionDetails", "full")
        if details not in ("full", "signatures", "none"):
            raise RpcFault(INVALID_PARAMS, f"Invalid params: transactionDetails {details!r} not supported")
        max_version = cfg.get("maxSupportedTransactionVersion")
        if slot > top:
            raise RpcFault(-32004, f"Block not available for slot {slot}")
        block = self.ledger.blocks.get(slot)
        if block is None:
            raise RpcFault(
                -32007, f"Slot {slot} was skipped, or missing due to ledger jump to recent snapshot"
            )
        out: dict[str, Any] = {
            "blockHeight": block.block_height,
            "blockTime": block.block_time,
            "blockhash": block.blockhash,
            "parentSlot": block.parent_slot,
            "previousBlockhash": block.previous_blockhash,
        }
        if details != "none" and max_version is None and any(r.version != "legacy" for r in block.txs):
            raise RpcFault(
                -32015,
                "Transaction version (0) is not supported by the requesting client. Please try the request "
                'again with the following configuration parameter: "maxSupportedTransactionVersion": 0',
            )
        if details == "full":
            parsed = encoding == "jsonParsed"
            out["transactions"] = [
                render_tx(r, parsed=parsed, with_version=max_version is not None) for r in block.txs
            ]
        elif details == "signatures":
            out["signatures"] = [r.signature for r in block.txs]
        if cfg.get("rewards", True):
            out["rewards"] = []
        return out

    def _get_transaction(self, params: list[Any]) -> Any:
        if not params or not isinstance(params[0], str):
            raise RpcFault(INVALID_PARAMS, "Invalid params: missing signature")
        cfg = _config(params, 1)
        top = self.ledger.commitment_slot(_commitment(cfg, block_query=True))
        found = self.ledger.find_tx(params[0])
        if found is None or found[0].slot > top:
            return None
        block, rec = found
        max_version = cfg.get("maxSupportedTransactionVersion")
        if rec.version != "legacy" and max_version is None:
            raise RpcFault(-32015, "Transaction version (0) is not supported by the requesting client.")
        out = render_tx(rec, parsed=cfg.get("encoding") == "jsonParsed", with_version=max_version is not None)
        out["slot"] = block.slot
        out["blockTime"] = block.block_time
        return out

    def _get_signatures_for_address(self, params: list[Any]) -> list[dict[str, Any]]:
        if not params:
            raise RpcFault(INVALID_PARAMS, "Invalid params: missing address")
        address = str(_pubkey(params[0]))
        cfg = _config(params, 1)
        top = self.ledger.commitment_slot(_commitment(cfg, block_query=True))
        limit = int(cfg.get("limit", 1000))
        before, until = cfg.get("before"), cfg.get("until")
        out: list[dict[str, Any]] = []
        started = before is None
        for slot in reversed(self.ledger.block_slots(0, top)):
            block = self.ledger.blocks[slot]
            for rec in reversed(block.txs):
                if rec.signature == until:
                    return out
                if not started:
                    started = rec.signature == before
                    continue
                if address in rec.keys:
                    out.append(
                        {
                            "signature": rec.signature,
                            "slot": slot,
                            "err": rec.err,
                            "memo": None,
                            "blockTime": block.block_time,
                            "confirmationStatus": self._status_of(slot),
                        }
                    )
                    if len(out) >= limit:
                        return out
        return out

    def _status_of(self, slot: int) -> str:
        if slot <= self.ledger.commitment_slot("finalized"):
            return "finalized"
        if slot <= self.ledger.commitment_slot("confirmed"):
            return "confirmed"
        return "processed"

    def _get_signature_statuses(self, params: list[Any]) -> dict[str, Any]:
        if not params or not isinstance(params[0], list):
            raise RpcFault(INVALID_PARAMS, "Invalid params: expected a list of signatures")
        value: list[Any] = []
        for sig in params[0]:
            found = self.ledger.find_tx(sig) if isinstance(sig, str) else None
            if found is None:
                value.append(None)
                continue
            block, rec = found
            status = self._status_of(block.slot)
            value.append(
                {
                    "slot": block.slot,
                    "confirmations": None if status == "finalized" else max(0, self.ledger.tip - block.slot),
                    "err": rec.err,
                    "status": {"Ok": None} if rec.err is None else {"Err": rec.err},
                    "confirmationStatus": status,
                }
            )
        return {"context": self._context(self.ledger.commitment_slot("processed")), "value": value}

    def _get_token_supply(self, params: list[Any]) -> dict[str, Any]:
        if not params:
            raise RpcFault(INVALID_PARAMS, "Invalid params: missing mint")
        mint = _pubkey(params[0])
        c = _commitment(_config(params, 1))
        acct = self.ledger.account(mint, c)
        dm = decode_mint(bytes(acct.data)) if acct is not None and str(acct.owner) in TOKEN_PROGRAMS else None
        if dm is None:
            raise RpcFault(INVALID_PARAMS, "Invalid param: not a Token mint")
        return {"context": self._context(self.ledger.commitment_slot(c)), "value": ui_token_amount(*dm)}

    def _get_token_account_balance(self, params: list[Any]) -> dict[str, Any]:
        if not params:
            raise RpcFault(INVALID_PARAMS, "Invalid params: missing account")
        key = _pubkey(params[0])
        c = _commitment(_config(params, 1))
        acct = self.ledger.account(key, c)
        st = decode_token_account(str(acct.owner), bytes(acct.data)) if acct is not None else None
        if st is None:
            raise RpcFault(INVALID_PARAMS, "Invalid param: not a Token account")
        mint_acct = self.ledger.account(Pubkey.from_string(st.mint), c)
        dm = decode_mint(bytes(mint_acct.data)) if mint_acct is not None else None
        return {
            "context": self._context(self.ledger.commitment_slot(c)),
            "value": ui_token_amount(st.amount, dm[1] if dm else 0),
        }

    def _get_latest_blockhash(self, params: list[Any]) -> dict[str, Any]:
        slot = self.ledger.commitment_slot(_commitment(_config(params, 0)))
        block = self.ledger.blocks[slot]
        return {
            "context": self._context(slot),
            "value": {"blockhash": block.blockhash, "lastValidBlockHeight": block.block_height + 150},
        }

    def _get_balance(self, params: list[Any]) -> dict[str, Any]:
        if not params:
            raise RpcFault(INVALID_PARAMS, "Invalid params: missing address")
        c = _commitment(_config(params, 1))
        acct = self.ledger.account(_pubkey(params[0]), c)
        return {
            "context": self._context(self.ledger.commitment_slot(c)),
            "value": acct.lamports if acct else 0,
        }

    @staticmethod
    def _account_json(acct: Account | None, encoding: str) -> dict[str, Any] | None:
        if acct is None:
            return None
        if encoding != "base64":
            raise RpcFault(
                INVALID_PARAMS, f"Invalid params: encoding {encoding!r} not supported by the devnet"
            )
        return {
            "data": [base64.b64encode(bytes(acct.data)).decode(), "base64"],
            "executable": acct.executable,
            "lamports": acct.lamports,
            "owner": str(acct.owner),
            "rentEpoch": 18446744073709551615,
            "space": len(bytes(acct.data)),
        }

    def _get_account_info(self, params: list[Any]) -> dict[str, Any]:
        if not params:
            raise RpcFault(INVALID_PARAMS, "Invalid params: missing address")
        cfg = _config(params, 1)
        c = _commitment(cfg)
        acct = self.ledger.account(_pubkey(params[0]), c)
        return {
            "context": self._context(self.ledger.commitment_slot(c)),
            "value": self._account_json(acct, cfg.get("encoding", "base64")),
        }

    def _get_multiple_accounts(self, params: list[Any]) -> dict[str, Any]:
        if not params or not isinstance(params[0], list):
            raise RpcFault(INVALID_PARAMS, "Invalid params: expected a list of addresses")
        if len(params[0]) > 100:
            raise RpcFault(INVALID_PARAMS, "Too many inputs provided; max 100")
        cfg = _config(params, 1)
        c = _commitment(cfg)
        encoding = cfg.get("encoding", "base64")
        values = [self._account_json(self.ledger.account(_pubkey(k), c), encoding) for k in params[0]]
        return {"context": self._context(self.ledger.commitment_slot(c)), "value": values}

    def _send_transaction(self, params: list[Any]) -> str:
        if not params or not isinstance(params[0], str):
            raise RpcFault(INVALID_PARAMS, "Invalid params: missing transaction")
        cfg = _config(params, 1)
        try:
            if cfg.get("encoding", "base58") == "base64":
                wire = base64.b64decode(params[0], validate=True)
            else:
                wire = b58decode(params[0])
            vtx = VersionedTransaction.from_bytes(wire)
        except Exception as exc:
            raise RpcFault(INVALID_PARAMS, f"Invalid params: cannot decode transaction: {exc}") from None
        try:
            rec = self.ledger.submit(vtx, preflight=not cfg.get("skipPreflight", False))
        except TransactionRejected as rej:
            raise RpcFault(
                -32002,
                f"Transaction simulation failed: {rej.err}",
                {"err": rej.err, "logs": rej.logs, "accounts": None, "unitsConsumed": 0},
            ) from None
        return rec.signature


# ---- the devnet as one object -----------------------------------------------------------------


class SolanaDevnet:
    """Ledger + RPC server (+ optional background slot producer). Use `async with`.

    `admin=True` also serves the `devnet_*` admin methods (`solana_admin_rpc`: fork, produce or
    skip slots, fund, mint, freeze, pause production); only on a loopback host."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        confirmed_depth: int = 1,
        finality_depth: int = 8,
        slot_seconds: float = 0.4,
        skip_rate: float = 0.0,
        produce: bool = False,
        admin: bool = False,
    ) -> None:
        if admin and not _is_loopback(host):
            raise ValueError(f"the devnet's admin methods are served on a loopback host only, not {host!r}")
        self.ledger = SolanaLedger(
            seed=seed,
            confirmed_depth=confirmed_depth,
            finality_depth=finality_depth,
            slot_seconds=slot_seconds,
        )
        self.server = SolanaRpcServer(self.ledger, host=host, port=port)
        self.slot_seconds = slot_seconds
        self.skip_rate = skip_rate
        self._rng = random.Random(seed)
        self._produce = produce
        self._task: asyncio.Task[None] | None = None
        self.on_slot: list[Callable[[], None]] = []
        self.producing = True  # the producer makes slots (and runs `on_slot`) while this is set
        self.admin: SolanaAdmin | None = None
        if admin:
            from indexer.devnet.solana_admin_rpc import SolanaAdmin

            self.admin = SolanaAdmin(self)
            self.server.register(self.admin.methods())

    @property
    def produces(self) -> bool:
        """Whether a background producer makes slots (`produce=True`)."""
        return self._produce

    @property
    def url(self) -> str:
        return self.server.url

    async def start(self) -> SolanaDevnet:
        await self.server.start()
        if self._produce:
            self._task = asyncio.create_task(self._producer(), name="solana-devnet-slots")
        log.info("solana_devnet_started", url=self.url, finality_depth=self.ledger.finality_depth)
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.server.stop()
        log.info("solana_devnet_stopped", url=self.url, tip=self.ledger.tip)

    async def __aenter__(self) -> SolanaDevnet:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def advance(self, n: int = 1, *, skip: bool = False) -> list[int]:
        return self.ledger.advance(n, skip=skip)

    def fork(
        self,
        at: int | None = None,
        *,
        reuse_slots: bool = False,
        keep_txs: bool = False,
        below_finalized: bool = False,
    ) -> list[int]:
        return self.ledger.fork(
            at, reuse_slots=reuse_slots, keep_txs=keep_txs, below_finalized=below_finalized
        )

    async def _producer(self) -> None:
        while True:
            await asyncio.sleep(self.slot_seconds)
            if not self.producing:
                continue
            for hook in self.on_slot:
                hook()
            self.ledger.advance(1, skip=self._rng.random() < self.skip_rate)


async def run_solana_devnet(
    stop: asyncio.Event,
    port: int = 8899,
    *,
    host: str = "127.0.0.1",
    seed: int = 0,
    slot_seconds: float = 0.4,
    finality_depth: int = 8,
    skip_rate: float = 0.1,
    owners: int = 12,
    tx_per_slot: float = 1.5,
    fork_every: int = 0,
    admin: bool = False,
    ready: Callable[[SolanaDevnet], None] | None = None,
) -> None:
    """The demo devnet: slots every `slot_seconds`, random USD1 traffic (mint address
    `solana_traffic.devnet_mint(seed)`), a fork above finalized every `fork_every` slots (0: never),
    until `stop` is set. `admin`: serve the `devnet_*` methods, with the traffic's mint."""
    from indexer.devnet.solana_traffic import SolanaTraffic

    devnet = SolanaDevnet(
        host=host,
        port=port,
        seed=seed,
        slot_seconds=slot_seconds,
        finality_depth=finality_depth,
        skip_rate=skip_rate,
        produce=True,
        admin=admin,
    )
    traffic = SolanaTraffic(devnet.ledger, seed=seed, owners=owners)
    traffic.setup()
    if devnet.admin is not None:
        devnet.admin.token = traffic
    rng = random.Random(seed)
    produced = 0

    def on_slot() -> None:
        nonlocal produced
        produced += 1
        n = int(tx_per_slot) + (1 if rng.random() < tx_per_slot % 1 else 0)
        for _ in range(n):
            traffic.step(rng)
        if fork_every and produced % fork_every == 0:
            devnet.ledger.fork(devnet.ledger.commitment_slot("finalized"))

    devnet.on_slot.append(on_slot)
    async with devnet:
        log.info("solana_devnet_ready", url=devnet.url, mint=traffic.mint_address, admin=admin)
        if ready is not None:
            ready(devnet)
        await stop.wait()
