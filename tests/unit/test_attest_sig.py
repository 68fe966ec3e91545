"""Detached Ed25519 signatures of attestations: key formats, signature formats, every failure named."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.attest_sig import (
    PublicKeyError,
    check_signature,
    fingerprint,
    load_public_key,
    parse_signature,
    public_raw,
    sign_document,
)

DOC = b'{"version": 1, "as_of": "2025-05-31T23:59:59Z"}\n'


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_public_key_formats_load_the_same_key(key: Ed25519PrivateKey) -> None:
    pub = key.public_key()
    raw = public_raw(pub)
    pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    for data in (pem, der, raw.hex().encode() + b"\n", base64.b64encode(raw)):
        assert public_raw(load_public_key(data)) == raw
    assert fingerprint(pub).startswith("sha256:") and len(fingerprint(pub)) == 7 + 64


def test_non_ed25519_and_garbage_keys_are_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(PublicKeyError, match="expected an Ed25519 public key"):
        load_public_key(ec_pem)
    with pytest.raises(PublicKeyError, match="not an Ed25519 public key"):
        load_public_key(b"hello")
    with pytest.raises(PublicKeyError, match="PEM"):
        load_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


def test_valid_in_every_signature_form(key: Ed25519PrivateKey) -> None:
    pub = key.public_key()
    sig = key.sign(DOC)
    for form in (sign_document(DOC, key), sig, sig.hex().encode(), base64.b64encode(sig) + b"\n"):
        check = check_signature(DOC, form, pub)
        assert check.status == "valid" and check.reason is None, form
        assert check.key_fingerprint == fingerprint(pub)


def test_tampered_content(key: Ed25519PrivateKey) -> None:
    tampered = DOC.replace(b"2025-05-31", b"2025-06-30")
    check = check_signature(tampered, sign_document(DOC, key), key.public_key())
    assert check.status == "invalid"
    assert check.reason is not None and check.reason.startswith("tampered content")
    # a bare signature cannot tell the two causes apart, and says so
    bare = check_signature(tampered, key.sign(DOC), key.public_key())
    assert bare.status == "invalid" and "altered or signed with another key" in (bare.reason or "")


def test_wrong_key(key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    check = check_signature(DOC, sign_document(DOC, other), key.public_key())
    assert check.status == "invalid"
    assert check.reason == (
        f"wrong key: signed by {fingerprint(other.public_key())}, expected {fingerprint(key.public_key())}"
    )
    bare = check_signature(DOC, other.sign(DOC), key.public_key())
    assert bare.status == "invalid" and "another key" in (bare.reason or "")


@pytest.mark.parametrize(
    ("cut", "fragment"),
    [
        (lambda s: s[:40], "signature truncated: 40 bytes"),
        (lambda s: s[:63].hex().encode(), "signature truncated: 63 bytes"),
        (lambda s: base64.b64encode(s[:32]), "signature truncated: 32 bytes"),
        (lambda s: s + b"\x00" * 8, "signature malformed: 72 bytes"),
        (lambda s: b"not a signature!", "signature malformed"),
        (lambda s: b"", "signature file is empty"),
        (lambda s: b'{"signature": 5}', "signature JSON has no string 'signature'"),
        (lambda s: b'{"scheme": "pgp", "signature": "x"}', "unsupported signature scheme 'pgp'"),
        (lambda s: b'{"signature": ', "signature JSON is malformed"),
    ],
)
def test_truncated_and_malformed(key: Ed25519PrivateKey, cut: object, fragment: str) -> None:
    sig = key.sign(DOC)
    data = cut(sig)  # type: ignore[operator]
    check = check_signature(DOC, data, key.public_key())
    assert check.status == "invalid"
    assert check.reason is not None and check.reason.startswith(fragment), check.reason
    assert isinstance(parse_signature(data), str)


def test_truncated_json_signature(key: Ed25519PrivateKey) -> None:
    full = sign_document(DOC, key).decode()
    cut = full.replace(full.split('"signature": "')[1][:88], full.split('"signature": "')[1][:40])
    check = check_signature(DOC, cut.encode(), key.public_key())
    assert check.status == "invalid" and (check.reason or "").startswith("signature truncated")


def test_missing_and_unconfigured(key: Ed25519PrivateKey) -> None:
    missing = check_signature(DOC, None, key.public_key())
    assert missing.status == "missing" and missing.key_fingerprint == fingerprint(key.public_key())
    unconf = check_signature(DOC, key.sign(DOC), None)
    assert unconf.status == "unconfigured" and unconf.key_fingerprint is None
    assert not unconf.valid and not missing.valid


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_signature_bytes_give_a_status_never_an_exception(data: bytes) -> None:
    key = _FUZZ_KEY.public_key()
    check = check_signature(DOC, data, key)
    assert check.status == "invalid" and check.reason


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_any_key_bytes_load_or_raise_public_key_error(data: bytes) -> None:
    try:
        load_public_key(data)
    except PublicKeyError:
        pass


_FUZZ_KEY = Ed25519PrivateKey.generate()
