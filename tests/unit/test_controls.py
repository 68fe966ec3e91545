"""The pure contract-state fold, the check plan and the comparison (indexer.controls)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.chains.evm_families import PROFILES, ControlFamily
from indexer.controls import (
    EIP1967_ADMIN,
    EIP1967_IMPLEMENTATION,
    ZERO,
    ZOS_IMPLEMENTATION,
    Field,
    Probe,
    compare,
    expected,
    fold,
    plan,
)
from indexer.model import ControlEvent, ControlKind

TOKEN, ADMIN = "0x" + "11" * 20, "0x" + "22" * 20
A, B, C = ("0x" + c * 40 for c in "abc")
CONTRACTS = [(TOKEN, "token"), (ADMIN, "proxy_admin")]
K = ControlKind


def ev(n: int, kind: ControlKind, address: str = TOKEN, **kw: Any) -> ControlEvent:
    return ControlEvent(
        "c", n, f"0x{n:064x}", f"0x{n:064x}", 0, kind, kind.value, address, timestamp=1000 + n, **kw
    )


def test_fold_follows_ownership_proxy_pause_freeze_roles_and_minters() -> None:
    events = [
        ev(1, K.UPGRADED, subject=B),
        ev(2, K.OWNERSHIP_TRANSFERRED, subject=A, previous=ZERO),
        ev(3, K.ADMIN_CHANGED, subject=ADMIN, previous=ZERO),
        ev(4, K.OWNERSHIP_TRANSFERRED, ADMIN, subject=A, previous=ZERO),
        ev(5, K.OWNERSHIP_TRANSFER_STARTED, subject=C, previous=A),
        ev(6, K.PAUSED, actor=A),
        ev(7, K.FROZEN, subject=B, actor=A),
        ev(8, K.FROZEN, subject=C, actor=A),
        ev(9, K.UNFROZEN, subject=B, actor=A),
        ev(10, K.ROLE_GRANTED, role="0x" + "00" * 32, subject=A, actor=A),
        ev(11, K.MINTER_CONFIGURED, subject=B, amount=500),
        ev(12, K.OWNERSHIP_TRANSFERRED, subject=C, previous=A),
        ev(13, K.UNPAUSED, actor=C),
        ev(14, K.MINTER_REMOVED, subject=B),
        ev(15, K.FROZEN, "0x" + "99" * 20, subject=A),  # a contract not watched (any more): ignored
    ]
    s = fold(events, CONTRACTS)
    t = s.token
    assert (t.owner, t.pending_owner, t.implementation, t.admin, t.paused) == (C, None, B, ADMIN, False)
    assert t.frozen == {C} and t.two_step and t.minters == {}
    assert t.roles == {("0x" + "00" * 32, A)}
    assert s.of(ADMIN) is not None and s.of(ADMIN).owner == A  # type: ignore[union-attr]
    assert t.events == 13 and s.last is not None and s.last.block_number == 14
    # Halfway: the pending owner, paused, a minter.
    mid = fold(events[:11], CONTRACTS).token
    assert (mid.owner, mid.pending_owner, mid.paused, dict(mid.minters)) == (A, C, True, {B: 500})


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([K.FROZEN, K.UNFROZEN, K.FROZEN_FUNDS_DESTROYED]), st.sampled_from([A, B, C])
        )
    )
)
def test_frozen_accounts_are_those_whose_last_freeze_event_froze_them(
    ops: list[tuple[ControlKind, str]],
) -> None:
    events = [ev(i, kind, subject=a) for i, (kind, a) in enumerate(ops)]
    last: dict[str, ControlKind] = {}
    for kind, a in ops:
        if kind is not K.FROZEN_FUNDS_DESTROYED:
            last[a] = kind
    assert fold(events, CONTRACTS).token.frozen == {a for a, k in last.items() if k is K.FROZEN}


def _families(profile: str) -> dict[str, tuple[ControlFamily, ...]]:
    return {TOKEN: PROFILES[profile], ADMIN: (ControlFamily.OWNABLE,)}


def test_plan_reads_what_each_profile_has() -> None:
    s = fold([ev(1, K.FROZEN, subject=a) for a in (A, B, C)], CONTRACTS)
    usd1 = plan(s, _families("usd1"), sample=2)
    assert [(p.field, p.address, p.call or p.slot) for p in usd1 if p.field is not Field.FROZEN] == [
        (Field.OWNER, TOKEN, "owner()"),
        (Field.PENDING_OWNER, TOKEN, "pendingOwner()"),
        (Field.IMPLEMENTATION, TOKEN, EIP1967_IMPLEMENTATION),
        (Field.ADMIN, TOKEN, EIP1967_ADMIN),
        (Field.PAUSED, TOKEN, "paused()"),
        (Field.OWNER, ADMIN, "owner()"),
    ]
    frozen = [p for p in usd1 if p.field is Field.FROZEN]
    assert [(p.call, p.account) for p in frozen] == [("frozen(address)", A), ("frozen(address)", B)]
    # The sample rotates over every frozen account.
    assert [p.account for p in plan(s, _families("usd1"), sample=2, offset=2) if p.field is Field.FROZEN] == [
        C,
        A,
    ]
    fiat = plan(s, _families("fiattoken"), sample=1)
    assert Field.PENDING_OWNER not in {
        p.field for p in fiat if p.address == TOKEN
    }  # Circle's Ownable: one step
    assert next(p.slot for p in fiat if p.field is Field.IMPLEMENTATION) == ZOS_IMPLEMENTATION
    assert next(p.call for p in fiat if p.field is Field.FROZEN) == "isBlacklisted(address)"
    tether = plan(s, _families("tether"), sample=1)
    assert {p.field for p in tether if p.address == TOKEN} == {Field.PAUSED, Field.FROZEN}
    assert next(p.call for p in tether if p.field is Field.FROZEN) == "isBlackListed(address)"
    assert plan(s, _families("erc20"), sample=5) == [Probe(Field.OWNER, ADMIN, "address", call="owner()")]


def test_compare_names_every_disagreement() -> None:
    s = fold(
        [ev(1, K.OWNERSHIP_TRANSFERRED, subject=A), ev(2, K.FROZEN, subject=B), ev(3, K.PAUSED)], CONTRACTS
    )
    owner = Probe(Field.OWNER, TOKEN, "address", call="owner()")
    pending = Probe(Field.PENDING_OWNER, TOKEN, "address", call="pendingOwner()")
    paused = Probe(Field.PAUSED, TOKEN, "bool", call="paused()")
    frozen = Probe(Field.FROZEN, TOKEN, "bool", call="frozen(address)", account=B)
    admin_owner = Probe(Field.OWNER, ADMIN, "address", call="owner()")
    assert expected(s, pending) == ZERO and expected(s, admin_owner) == ZERO and expected(s, frozen) is True
    ok = compare(s, [(owner, A), (pending, ZERO), (paused, True), (frozen, True), (admin_owner, ZERO)])
    assert ok == {Field.OWNER: [], Field.PENDING_OWNER: [], Field.PAUSED: [], Field.FROZEN: []}
    bad = compare(s, [(owner, A), (admin_owner, C), (paused, False), (frozen, False)])
    assert bad[Field.OWNER] == [f"owner of {ADMIN}: stored {ZERO}, chain {C}"]
    assert bad[Field.PAUSED] and bad[Field.FROZEN] == [f"frozen of {TOKEN} {B}: stored True, chain False"]
