"""Random SPL token traffic on a `SolanaLedger`: one mint (6 decimals, Token or Token-2022),
associated token accounts for many owners, and a mix of

- mintTo / mintToChecked / burn / burnChecked / transfer / transferChecked (top-level),
- several movements in one transaction (outer instruction index > 0),
- a v0 transaction whose token accounts come from an address lookup table,
- inner (CPI) movements: the Associated Token Account program's `RecoverNested` moves a nested
  ATA's tokens with `transferChecked` via CPI (no custom program needed),
- failing transactions that land with an error (no movement may be indexed from them).

Every keypair derives from the seed, so the mint address is a constant per (seed, program).
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections.abc import Callable, Sequence

from solders.account import Account
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account, transfer
from solders.system_program import TransferParams as TransferLamportsParams
from solders.token.associated import get_associated_token_address
from solders.transaction import Transaction, VersionedTransaction
from spl.token import instructions as spl
from spl.token.constants import ASSOCIATED_TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID
from spl.token.models import (
    AuthorityType,
    BurnCheckedParams,
    BurnParams,
    FreezeAccountParams,
    InitializeMint2Params,
    MintToCheckedParams,
    MintToParams,
    SetAuthorityParams,
    ThawAccountParams,
    TransferCheckedParams,
    TransferParams,
)

from indexer.devnet.solana_devnet import ALT_PROGRAM, SolanaLedger, TransactionRejected
from indexer.devnet.solana_wire import decode_token_account

# A Token-2022 mint with the PausableConfig extension: the base mint padded to the token account
# size, the account type byte, then one TLV entry (type u16, length u16, authority 32 + paused 1).
PAUSABLE_MINT_SIZE = 165 + 1 + 4 + 33

__all__ = [
    "TOKEN_2022_PROGRAM_ID",
    "TOKEN_PROGRAM_ID",
    "NoiseTraffic",
    "SolanaTraffic",
    "devnet_mint",
    "keypair_for",
]


def keypair_for(seed: int, label: str) -> Keypair:
    return Keypair.from_seed(hashlib.sha256(f"usd1-devnet:{seed}:{label}".encode()).digest())


def devnet_mint(seed: int = 0, program_id: Pubkey = TOKEN_PROGRAM_ID) -> str:
    """The mint address `SolanaTraffic(seed=seed, program_id=program_id)` creates."""
    return str(keypair_for(seed, f"mint:{program_id}").pubkey())


def _alt_data(authority: Pubkey, addresses: Sequence[Pubkey]) -> bytes:
    """On-chain layout of an active address lookup table (ProgramState::LookupTable)."""
    meta = (
        (1).to_bytes(4, "little")
        + (2**64 - 1).to_bytes(8, "little")  # deactivation_slot: active
        + (0).to_bytes(8, "little")  # last_extended_slot
        + b"\x00"  # last_extended_slot_start_index
        + b"\x01"
        + bytes(authority)
        + b"\x00\x00"
    )
    return meta + b"".join(bytes(a) for a in addresses)


class SolanaTraffic:
    def __init__(
        self,
        ledger: SolanaLedger,
        *,
        seed: int = 0,
        owners: int = 12,
        program_id: Pubkey = TOKEN_PROGRAM_ID,
        decimals: int = 6,
        freeze_authority: bool = True,
        pausable: bool = False,
    ) -> None:
        if pausable and program_id != TOKEN_2022_PROGRAM_ID:
            raise ValueError("only a Token-2022 mint can be pausable")
        self.ledger = ledger
        self.program_id = program_id
        self.decimals = decimals
        self.payer = keypair_for(seed, f"payer:{program_id}")  # also the mint authority
        self.mint_kp = keypair_for(seed, f"mint:{program_id}")
        self.mint = self.mint_kp.pubkey()
        self.owners = [keypair_for(seed, f"owner:{program_id}:{i}") for i in range(owners)]
        self.atas = [get_associated_token_address(o.pubkey(), self.mint, program_id) for o in self.owners]
        self.alt_key = keypair_for(seed, f"alt:{program_id}").pubkey()
        self.counts: dict[str, int] = {}
        self.mint_auth = self.payer  # the current mint authority (SetAuthority moves it)
        self.freeze_auth: Keypair | None = self.payer if freeze_authority else None
        self.pause_auth: Keypair | None = self.payer if pausable else None
        self.frozen: set[int] = set()  # owner indexes whose token account is frozen
        self._extra_keys: list[Keypair] = []

    @property
    def mint_address(self) -> str:
        return str(self.mint)

    # ---- plumbing ----

    def _blockhash(self) -> Hash:
        return Hash.from_string(self.ledger.blocks[self.ledger.commitment_slot("processed")].blockhash)

    def _send(
        self, ixs: Sequence[Instruction], signers: Sequence[Keypair], *, preflight: bool = True
    ) -> bool:
        msg = Message.new_with_blockhash(list(ixs), self.payer.pubkey(), self._blockhash())
        return self._submit(Transaction(list(signers), msg, self._blockhash()), preflight)

    def _submit(self, tx: Transaction | VersionedTransaction, preflight: bool) -> bool:
        try:
            rec = self.ledger.submit(tx, preflight=preflight)
        except TransactionRejected:
            return False
        return rec.err is None

    def balance(self, account: Pubkey) -> int:
        acct = self.ledger.svm.get_account(account)
        st = decode_token_account(str(acct.owner), bytes(acct.data)) if acct is not None else None
        return st.amount if st is not None else 0

    def _signers(self, *kps: Keypair) -> list[Keypair]:
        out = [self.payer]
        for kp in kps:
            if kp.pubkey() not in {k.pubkey() for k in out}:
                out.append(kp)
        return out

    # ---- setup ----

    def setup(self) -> None:
        """Fund the keys, create the mint, every owner's ATA and a lookup table of them."""
        self.ledger.fund(self.payer.pubkey(), 10**12)
        for o in self.owners:
            self.ledger.fund(o.pubkey(), 10**10)
        space = PAUSABLE_MINT_SIZE if self.pause_auth is not None else 82
        rent = self.ledger.svm.minimum_balance_for_rent_exemption(space)
        init: list[Instruction] = [
            create_account(
                CreateAccountParams(
                    from_pubkey=self.payer.pubkey(),
                    to_pubkey=self.mint,
                    lamports=rent,
                    space=space,
                    owner=self.program_id,
                )
            )
        ]
        if self.pause_auth is not None:
            init.append(
                Instruction(
                    self.program_id,
                    bytes([44, 0]) + bytes(self.pause_auth.pubkey()),
                    [AccountMeta(self.mint, False, True)],
                )
            )
        init.append(
            spl.initialize_mint2(
                InitializeMint2Params(
                    program_id=self.program_id,
                    mint=self.mint,
                    decimals=self.decimals,
                    mint_authority=self.payer.pubkey(),
                    freeze_authority=None if self.freeze_auth is None else self.freeze_auth.pubkey(),
                )
            )
        )
        ok = self._send(init, [self.payer, self.mint_kp])
        if not ok:
            raise RuntimeError("solana devnet: creating the mint failed")
        for i in range(0, len(self.owners), 4):
            ixs = [
                spl.create_associated_token_account(
                    self.payer.pubkey(), o.pubkey(), self.mint, self.program_id
                )
                for o in self.owners[i : i + 4]
            ]
            if not self._send(ixs, [self.payer]):
                raise RuntimeError("solana devnet: creating token accounts failed")
        data = _alt_data(self.payer.pubkey(), [self.mint, *self.atas])
        lamports = self.ledger.svm.minimum_balance_for_rent_exemption(len(data))
        self.ledger.set_account(
            self.alt_key,
            Account(lamports=lamports, data=data, owner=Pubkey.from_string(ALT_PROGRAM), executable=False),
        )

    # ---- operations ----

    def mint_to(self, i: int, amount: int, *, checked: bool = False) -> bool:
        if checked:
            ix = spl.mint_to_checked(
                MintToCheckedParams(
                    program_id=self.program_id,
                    mint=self.mint,
                    dest=self.atas[i],
                    mint_authority=self.mint_auth.pubkey(),
                    amount=amount,
                    decimals=self.decimals,
                )
            )
        else:
            ix = spl.mint_to(
                MintToParams(
                    program_id=self.program_id,
                    mint=self.mint,
                    dest=self.atas[i],
                    mint_authority=self.mint_auth.pubkey(),
                    amount=amount,
                )
            )
        return self._send([ix], self._signers(self.mint_auth))

    def _burn_ix(self, i: int, amount: int, checked: bool) -> Instruction:
        owner = self.owners[i].pubkey()
        if checked:
            return spl.burn_checked(
                BurnCheckedParams(
                    program_id=self.program_id,
                    mint=self.mint,
                    account=self.atas[i],
                    owner=owner,
                    amount=amount,
                    decimals=self.decimals,
                )
            )
        return spl.burn(
            BurnParams(
                program_id=self.program_id, account=self.atas[i], mint=self.mint, owner=owner, amount=amount
            )
        )

    def _transfer_ix(self, i: int, j: int, amount: int, checked: bool) -> Instruction:
        owner = self.owners[i].pubkey()
        if checked:
            return spl.transfer_checked(
                TransferCheckedParams(
                    program_id=self.program_id,
                    source=self.atas[i],
                    mint=self.mint,
                    dest=self.atas[j],
                    owner=owner,
                    amount=amount,
                    decimals=self.decimals,
                )
            )
        return spl.transfer(
            TransferParams(
                program_id=self.program_id, source=self.atas[i], dest=self.atas[j], owner=owner, amount=amount
            )
        )

    def burn(self, i: int, amount: int, *, checked: bool = False, preflight: bool = True) -> bool:
        return self._send(
            [self._burn_ix(i, amount, checked)], self._signers(self.owners[i]), preflight=preflight
        )

    def transfer(self, i: int, j: int, amount: int, *, checked: bool = False, preflight: bool = True) -> bool:
        ix = self._transfer_ix(i, j, amount, checked)
        return self._send([ix], self._signers(self.owners[i]), preflight=preflight)

    def multi(self, i: int, j: int, amount: int) -> bool:
        """mintTo i, transfer i->j, burn j (three movements, outer indexes 0..2)."""
        ixs = [
            spl.mint_to(
                MintToParams(
                    program_id=self.program_id,
                    mint=self.mint,
                    dest=self.atas[i],
                    mint_authority=self.mint_auth.pubkey(),
                    amount=amount,
                )
            ),
            self._transfer_ix(i, j, amount, False),
            self._burn_ix(j, amount // 2, True),
        ]
        return self._send(ixs, self._signers(self.mint_auth, self.owners[i], self.owners[j]))

    def lookup_transfer(self, i: int, j: int, amount: int) -> bool:
        """A v0 transaction whose token accounts and mint are loaded from the lookup table."""
        ix = self._transfer_ix(i, j, amount, True)
        table = AddressLookupTableAccount(self.alt_key, [self.mint, *self.atas])
        msg = MessageV0.try_compile(self.payer.pubkey(), [ix], [table], self._blockhash())
        tx = VersionedTransaction(msg, self._signers(self.owners[i]))
        return self._submit(tx, True)

    def nested_recover(self, i: int, amount: int) -> bool:
        """Mint into the nested ATA (an ATA owned by owner i's ATA), then `RecoverNested`: the ATA
        program moves it to owner i's ATA with an inner `transferChecked` and closes it."""
        owner_ata = self.atas[i]
        nested = get_associated_token_address(owner_ata, self.mint, self.program_id)
        ok = self._send(
            [
                spl.create_idempotent_associated_token_account(
                    self.payer.pubkey(), owner_ata, self.mint, self.program_id
                ),
                spl.mint_to(
                    MintToParams(
                        program_id=self.program_id,
                        mint=self.mint,
                        dest=nested,
                        mint_authority=self.mint_auth.pubkey(),
                        amount=amount,
                    )
                ),
            ],
            self._signers(self.mint_auth),
        )
        if not ok:
            return False
        recover = Instruction(
            ASSOCIATED_TOKEN_PROGRAM_ID,
            bytes([2]),
            [
                AccountMeta(nested, False, True),
                AccountMeta(self.mint, False, False),
                AccountMeta(owner_ata, False, True),
                AccountMeta(owner_ata, False, False),
                AccountMeta(self.mint, False, False),
                AccountMeta(self.owners[i].pubkey(), True, True),
                AccountMeta(self.program_id, False, False),
            ],
        )
        return self._send([recover], self._signers(self.owners[i]))

    def failing(self, i: int, j: int) -> bool:
        """A transaction that lands with an error: mintTo then a transfer above the balance."""
        amount = self.balance(self.atas[i]) + 10**6 + 1
        ixs = [
            spl.mint_to(
                MintToParams(
                    program_id=self.program_id,
                    mint=self.mint,
                    dest=self.atas[j],
                    mint_authority=self.mint_auth.pubkey(),
                    amount=10**6,
                )
            ),
            self._transfer_ix(i, j, amount, False),
        ]
        self._send(ixs, self._signers(self.mint_auth, self.owners[i]), preflight=False)
        return True

    # ---- controls (issue #14 section 3) ----

    def new_key(self, label: str) -> Keypair:
        kp = keypair_for(len(self._extra_keys), f"authority:{self.program_id}:{label}")
        self._extra_keys.append(kp)
        return kp

    def set_mint_authority(self, new: Keypair | None) -> bool:
        """SetAuthority(MintTokens) on the mint, signed by the current mint authority."""
        ix = spl.set_authority(
            SetAuthorityParams(
                program_id=self.program_id,
                account=self.mint,
                authority=AuthorityType.MINT_TOKENS,
                current_authority=self.mint_auth.pubkey(),
                new_authority=None if new is None else new.pubkey(),
            )
        )
        ok = self._send([ix], self._signers(self.mint_auth))
        if ok and new is not None:
            self.mint_auth = new
        return ok

    def set_freeze_authority(self, new: Keypair | None) -> bool:
        assert self.freeze_auth is not None, "the mint has no freeze authority"
        ix = spl.set_authority(
            SetAuthorityParams(
                program_id=self.program_id,
                account=self.mint,
                authority=AuthorityType.FREEZE_ACCOUNT,
                current_authority=self.freeze_auth.pubkey(),
                new_authority=None if new is None else new.pubkey(),
            )
        )
        ok = self._send([ix], self._signers(self.freeze_auth))
        if ok:
            self.freeze_auth = new
        return ok

    def set_close_authority(self, i: int, new: Keypair) -> bool:
        """SetAuthority(CloseAccount) on owner i's token account (an account-level authority)."""
        ix = spl.set_authority(
            SetAuthorityParams(
                program_id=self.program_id,
                account=self.atas[i],
                authority=AuthorityType.CLOSE_ACCOUNT,
                current_authority=self.owners[i].pubkey(),
                new_authority=new.pubkey(),
            )
        )
        return self._send([ix], self._signers(self.owners[i]))

    def freeze(self, i: int, *, thaw: bool = False) -> bool:
        assert self.freeze_auth is not None, "the mint has no freeze authority"
        auth = self.freeze_auth.pubkey()
        ix = (
            spl.thaw_account(
                ThawAccountParams(
                    program_id=self.program_id, account=self.atas[i], mint=self.mint, authority=auth
                )
            )
            if thaw
            else spl.freeze_account(
                FreezeAccountParams(
                    program_id=self.program_id, account=self.atas[i], mint=self.mint, authority=auth
                )
            )
        )
        ok = self._send([ix], self._signers(self.freeze_auth))
        if ok:
            (self.frozen.discard if thaw else self.frozen.add)(i)
        return ok

    def pause(self, *, resume: bool = False) -> bool:
        """Token-2022 PausableExtension Pause (or Resume), signed by the pause authority."""
        assert self.pause_auth is not None, "the mint is not pausable"
        ix = Instruction(
            self.program_id,
            bytes([44, 2 if resume else 1]),
            [AccountMeta(self.mint, False, True), AccountMeta(self.pause_auth.pubkey(), True, False)],
        )
        return self._send([ix], self._signers(self.pause_auth))

    def step(self, rng: random.Random) -> str:
        """One random operation; returns its name."""
        n = len(self.owners)
        i, j = rng.randrange(n), rng.randrange(n)
        bal = self.balance(self.atas[i])
        part = rng.randint(1, bal) if bal > 0 else 0
        ops: list[tuple[str, int, Callable[[], bool]]] = [
            ("mintTo", 4, lambda: self.mint_to(i, rng.randint(1, 10**9))),
            ("mintToChecked", 2, lambda: self.mint_to(i, rng.randint(1, 10**9), checked=True)),
            ("multi", 1, lambda: self.multi(i, j, rng.randint(2, 10**8))),
            ("nested", 1, lambda: self.nested_recover(i, rng.randint(1, 10**8))),
            ("failing", 1, lambda: self.failing(i, j)),
        ]
        if part:
            ops += [
                ("burn", 2, lambda: self.burn(i, part)),
                ("burnChecked", 1, lambda: self.burn(i, part, checked=True)),
                ("transfer", 4, lambda: self.transfer(i, j, part)),
                ("transferChecked", 3, lambda: self.transfer(i, j, part, checked=True)),
                ("lookup", 2, lambda: self.lookup_transfer(i, j, part)),
            ]
        name, _, fn = rng.choices(ops, weights=[w for _, w, _ in ops])[0]
        fn()
        self.counts[name] = self.counts.get(name, 0) + 1
        return name


class NoiseTraffic:
    """Transactions unrelated to the indexed mint, to fill blocks as on mainnet: SOL transfers
    between funded keys and random traffic of another mint (`other`, its own SolanaTraffic)."""

    def __init__(self, ledger: SolanaLedger, *, seed: int = 1000, keys: int = 16) -> None:
        self.ledger = ledger
        self.keys = [keypair_for(seed, f"noise:{i}") for i in range(keys)]
        self.other = SolanaTraffic(ledger, seed=seed, owners=8)
        self._n = 0

    def setup(self) -> None:
        for kp in self.keys:
            self.ledger.fund(kp.pubkey(), 10**12)
        self.other.setup()

    def step(self, rng: random.Random) -> None:
        self._n += 1
        if rng.random() < 0.5:
            self.other.step(rng)
            return
        src, dst = rng.sample(self.keys, 2)
        ix = transfer(
            TransferLamportsParams(from_pubkey=src.pubkey(), to_pubkey=dst.pubkey(), lamports=self._n)
        )
        blockhash = Hash.from_string(self.ledger.blocks[self.ledger.commitment_slot("processed")].blockhash)
        msg = Message.new_with_blockhash([ix], src.pubkey(), blockhash)
        with contextlib.suppress(TransactionRejected):
            self.ledger.submit(Transaction([src], msg, blockhash))
