"""The Solana devnet's admin JSON-RPC methods (`devnet_*`), for tests and drills.

Served by `SolanaDevnet(admin=True)` on its RPC port (loopback only), with named params (an object,
or a list holding one object). Each handler validates its params (a bad one is `-32602` naming it),
acts on the ledger synchronously (no await: nothing interleaves with the slot producer) and
returns what it did:

| method | params | does |
|---|---|---|
| `devnet_status` | - | tip, commitment slots, depths, fork epoch, producing, the mint and the keys the devnet holds |
| `devnet_produceSlots` | `count` | `count` blocks now (pending transactions land in the first) |
| `devnet_skipSlots` | `count` | `count` slots pass without blocks |
| `devnet_fork` | `slot` or `depth`, `reuseSlots`, `keepTxs`, `belowFinalized` | drops every block above `slot` (or the newest `depth` blocks; default: above finalized) |
| `devnet_fund` | `pubkey`, `lamports` | adds lamports (in the next block) |
| `devnet_mint` | `owner`, `amount` | mints to the owner's associated token account (created if needed) |
| `devnet_burn` | `owner`, `amount` | burns from the ATA of an owner whose key the devnet holds |
| `devnet_freeze` / `devnet_thaw` | `account` | freezes / thaws a token account of the mint |
| `devnet_setProducing` | `enabled` | pauses or resumes the slot producer (and its traffic) |

Token methods need the devnet's mint (`SolanaAdmin.token`, set by `run_solana_devnet`); without
it they answer `-32000`. Transactions are preflighted: one that would fail is `-32002` with its
logs, and nothing lands.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import structlog
from solders.compute_budget import set_compute_unit_limit
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address
from solders.transaction import Transaction
from spl.token import instructions as spl
from spl.token.models import BurnParams, FreezeAccountParams, MintToParams, ThawAccountParams

from indexer.devnet.solana_devnet import INVALID_PARAMS, RpcFault, TransactionRejected
from indexer.devnet.solana_wire import decode_token_account

if TYPE_CHECKING:
    from indexer.devnet.solana_devnet import SolanaDevnet
    from indexer.devnet.solana_traffic import SolanaTraffic

log = structlog.get_logger(__name__)

MAX_SLOTS_PER_CALL = 10_000
U64_MAX = 2**64 - 1
UNAVAILABLE = (
    -32000
)  # server error: the devnet lacks what the method needs (a mint, an authority, a producer)
REJECTED = -32002  # as sendTransaction's preflight failure


class Params:
    """Named params of one call: typed getters that raise -32602 naming the param."""

    def __init__(self, obj: dict[str, Any], allowed: Sequence[str]) -> None:
        unknown = sorted(set(obj) - set(allowed))
        if unknown:
            raise RpcFault(
                INVALID_PARAMS,
                f"Invalid params: unknown param {unknown[0]!r} (expected: {', '.join(allowed) or 'none'})",
            )
        self.obj = obj

    def _bad(self, name: str, want: str) -> RpcFault:
        return RpcFault(INVALID_PARAMS, f"Invalid params: {name} must be {want}, got {self.obj.get(name)!r}")

    def has(self, name: str) -> bool:
        return self.obj.get(name) is not None

    def int_(self, name: str, lo: int, hi: int, default: int | None = None) -> int:
        v = self.obj.get(name)
        if v is None:
            if default is None:
                raise RpcFault(INVALID_PARAMS, f"Invalid params: missing {name}")
            return default
        if isinstance(v, str) and v.isascii() and v.isdigit():
            v = int(v)  # amounts above 2**53 may come as decimal strings
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise self._bad(name, f"an integer from {lo} to {hi}")
        return v

    def bool_(self, name: str, default: bool = False) -> bool:
        v = self.obj.get(name)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise self._bad(name, "true or false")
        return v

    def pubkey(self, name: str) -> Pubkey:
        v = self.obj.get(name)
        if v is None:
            raise RpcFault(INVALID_PARAMS, f"Invalid params: missing {name}")
        try:
            return Pubkey.from_string(v)
        except (ValueError, TypeError):
            raise self._bad(name, "a base58 public key") from None


class SolanaAdmin:
    """The `devnet_*` methods over one `SolanaDevnet`; `token` is the mint whose authorities the
    devnet holds (a `SolanaTraffic`), when it has one."""

    def __init__(self, devnet: SolanaDevnet, token: SolanaTraffic | None = None) -> None:
        self.devnet = devnet
        self.token = token
        self._nonce = 0

    def methods(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {
            "devnet_status": self.status,
            "devnet_produceSlots": self.produce_slots,
            "devnet_skipSlots": self.skip_slots,
            "devnet_fork": self.fork,
            "devnet_fund": self.fund,
            "devnet_mint": self.mint,
            "devnet_burn": self.burn,
            "devnet_freeze": lambda p: self._freeze(p, thaw=False),
            "devnet_thaw": lambda p: self._freeze(p, thaw=True),
            "devnet_setProducing": self.set_producing,
        }

    # ---- chain ----

    def status(self, obj: dict[str, Any]) -> dict[str, Any]:
        Params(obj, ())
        led = self.devnet.ledger
        tok = self.token
        return {
            "tip": led.tip,
            "processed": led.commitment_slot("processed"),
            "confirmed": led.commitment_slot("confirmed"),
            "finalized": led.commitment_slot("finalized"),
            "confirmedDepth": led.confirmed_depth,
            "finalityDepth": led.finality_depth,
            "forkEpoch": led.fork_epoch,
            "producing": self.devnet.produces and self.devnet.producing,
            "slotSeconds": self.devnet.slot_seconds,
            "mint": tok.mint_address if tok else None,
            "tokenProgram": str(tok.program_id) if tok else None,
            "decimals": tok.decimals if tok else None,
            "mintAuthority": str(tok.mint_auth.pubkey()) if tok else None,
            "freezeAuthority": str(tok.freeze_auth.pubkey()) if tok and tok.freeze_auth else None,
            "owners": [str(o.pubkey()) for o in tok.owners] if tok else [],
        }

    def produce_slots(self, obj: dict[str, Any]) -> dict[str, Any]:
        count = Params(obj, ("count",)).int_("count", 1, MAX_SLOTS_PER_CALL)
        made = self.devnet.ledger.advance(count)
        log.info("solana_devnet_admin_produce", count=count, tip=self.devnet.ledger.tip)
        return {"slots": made, "tip": self.devnet.ledger.tip}

    def skip_slots(self, obj: dict[str, Any]) -> dict[str, Any]:
        count = Params(obj, ("count",)).int_("count", 1, MAX_SLOTS_PER_CALL)
        led = self.devnet.ledger
        first = led.tip + 1
        led.advance(count, skip=True)
        log.info("solana_devnet_admin_skip", count=count, tip=led.tip)
        return {"skipped": list(range(first, led.tip + 1)), "tip": led.tip}

    def fork(self, obj: dict[str, Any]) -> dict[str, Any]:
        p = Params(obj, ("slot", "depth", "reuseSlots", "keepTxs", "belowFinalized"))
        led = self.devnet.ledger
        if p.has("slot") and p.has("depth"):
            raise RpcFault(INVALID_PARAMS, "Invalid params: give slot or depth, not both")
        below = p.bool_("belowFinalized")
        fin = led.commitment_slot("finalized")
        at, name = fin, "slot"
        if p.has("slot"):
            at = p.int_("slot", 0, led.tip)
            if at not in led.blocks:
                raise RpcFault(INVALID_PARAMS, f"Invalid params: slot {at} is not a block (skipped)")
        elif p.has("depth"):
            name = "depth"
            blocks = led.block_slots(0, led.tip)
            depth = p.int_("depth", 1, MAX_SLOTS_PER_CALL)
            if depth >= len(blocks):
                raise RpcFault(
                    INVALID_PARAMS,
                    f"Invalid params: depth {depth} is more than the {len(blocks) - 1} blocks above genesis",
                )
            at = blocks[-1 - depth]
        if at < fin and not below:
            raise RpcFault(
                INVALID_PARAMS,
                f"Invalid params: {name} puts the fork point at {at}, below the finalized slot {fin} "
                "(set belowFinalized to break finality on purpose)",
            )
        dropped = led.fork(
            at, reuse_slots=p.bool_("reuseSlots"), keep_txs=p.bool_("keepTxs"), below_finalized=below
        )
        return {"at": at, "dropped": dropped, "tip": led.tip, "forkEpoch": led.fork_epoch}

    def fund(self, obj: dict[str, Any]) -> dict[str, Any]:
        p = Params(obj, ("pubkey", "lamports"))
        key = p.pubkey("pubkey")
        lamports = p.int_("lamports", 1, U64_MAX)
        led = self.devnet.ledger
        current = led.svm.get_account(key)
        if current is not None and (current.data or str(current.owner) != str(Pubkey.default())):
            raise RpcFault(
                INVALID_PARAMS, f"Invalid params: pubkey {key} is not a plain system account (it holds data)"
            )
        balance = (current.lamports if current is not None else 0) + lamports
        if balance > U64_MAX:
            raise RpcFault(INVALID_PARAMS, f"Invalid params: lamports would overflow {key}'s balance")
        led.fund(key, lamports)
        log.info("solana_devnet_admin_fund", pubkey=str(key), lamports=lamports)
        return {"pubkey": str(key), "lamports": balance}

    def set_producing(self, obj: dict[str, Any]) -> dict[str, Any]:
        p = Params(obj, ("enabled",))
        if not p.has("enabled"):
            raise RpcFault(INVALID_PARAMS, "Invalid params: missing enabled")
        enabled = p.bool_("enabled")
        if not self.devnet.produces:
            raise RpcFault(
                UNAVAILABLE, "this devnet has no slot producer (slots come from devnet_produceSlots)"
            )
        self.devnet.producing = enabled
        log.info("solana_devnet_admin_producing", enabled=self.devnet.producing)
        return {"producing": self.devnet.producing}

    # ---- token ----

    def _token(self) -> SolanaTraffic:
        if self.token is None:
            raise RpcFault(UNAVAILABLE, "this devnet holds no mint (start it with its traffic)")
        return self.token

    def _send(self, ixs: list[Instruction], signers: list[Keypair]) -> str:
        tok = self._token()
        led = self.devnet.ledger
        self._nonce += 1  # two identical calls must not be one duplicate transaction
        ixs = [set_compute_unit_limit(200_000 + self._nonce % 1_000_000), *ixs]
        blockhash = Hash.from_string(led.blocks[led.commitment_slot("processed")].blockhash)
        unique: dict[Pubkey, Keypair] = {}
        for k in [tok.payer, *signers]:
            unique.setdefault(k.pubkey(), k)
        msg = Message.new_with_blockhash(ixs, tok.payer.pubkey(), blockhash)
        try:
            rec = led.submit(Transaction(list(unique.values()), msg, blockhash), preflight=True)
        except TransactionRejected as rej:
            raise RpcFault(
                REJECTED, f"Transaction simulation failed: {rej.err}", {"err": rej.err, "logs": rej.logs}
            ) from None
        return rec.signature

    def mint(self, obj: dict[str, Any]) -> dict[str, Any]:
        p = Params(obj, ("owner", "amount"))
        owner = p.pubkey("owner")
        amount = p.int_("amount", 1, U64_MAX)
        tok = self._token()
        ata = get_associated_token_address(owner, tok.mint, tok.program_id)
        sig = self._send(
            [
                spl.create_idempotent_associated_token_account(
                    tok.payer.pubkey(), owner, tok.mint, tok.program_id
                ),
                spl.mint_to(
                    MintToParams(
                        program_id=tok.program_id,
                        mint=tok.mint,
                        dest=ata,
                        mint_authority=tok.mint_auth.pubkey(),
                        amount=amount,
                    )
                ),
            ],
            [tok.mint_auth],
        )
        log.info("solana_devnet_admin_mint", owner=str(owner), amount=amount, signature=sig)
        return {"signature": sig, "account": str(ata), "amount": str(amount)}

    def burn(self, obj: dict[str, Any]) -> dict[str, Any]:
        p = Params(obj, ("owner", "amount"))
        owner = p.pubkey("owner")
        amount = p.int_("amount", 1, U64_MAX)
        tok = self._token()
        key = next((o for o in tok.owners if o.pubkey() == owner), None)
        if key is None:
            raise RpcFault(
                INVALID_PARAMS,
                f"Invalid params: owner {owner} is not a key the devnet holds (devnet_status lists them)",
            )
        ata = get_associated_token_address(owner, tok.mint, tok.program_id)
        ix = spl.burn(
            BurnParams(program_id=tok.program_id, account=ata, mint=tok.mint, owner=owner, amount=amount)
        )
        sig = self._send([ix], [key])
        log.info("solana_devnet_admin_burn", owner=str(owner), amount=amount, signature=sig)
        return {"signature": sig, "account": str(ata), "amount": str(amount)}

    def _freeze(self, obj: dict[str, Any], *, thaw: bool) -> dict[str, Any]:
        account = Params(obj, ("account",)).pubkey("account")
        tok = self._token()
        if tok.freeze_auth is None:
            raise RpcFault(UNAVAILABLE, f"the devnet holds no freeze authority for mint {tok.mint}")
        acct = self.devnet.ledger.svm.get_account(account)
        st = decode_token_account(str(acct.owner), bytes(acct.data)) if acct is not None else None
        if st is None or st.mint != tok.mint_address:
            raise RpcFault(
                INVALID_PARAMS, f"Invalid params: account {account} is not a token account of mint {tok.mint}"
            )
        auth = tok.freeze_auth.pubkey()
        ix = (
            spl.thaw_account(
                ThawAccountParams(program_id=tok.program_id, account=account, mint=tok.mint, authority=auth)
            )
            if thaw
            else spl.freeze_account(
                FreezeAccountParams(program_id=tok.program_id, account=account, mint=tok.mint, authority=auth)
            )
        )
        sig = self._send([ix], [tok.freeze_auth])
        log.info("solana_devnet_admin_freeze", account=str(account), thaw=thaw, signature=sig)
        return {"signature": sig, "account": str(account)}
