"""Detached Ed25519 signatures of reserve attestations (pure; the `cryptography` library verifies).

Public key (`reserves.public_key`, a file): PEM (`-----BEGIN PUBLIC KEY-----`, as written by
`openssl pkey -pubout` or `usd1-indexer reserves keygen`), DER, or the raw 32-byte key as 64 hex
characters or base64.

Detached signature (`<attestation>.sig`, or `reserves.signature_url`), either
- bare: the 64 signature bytes, raw (`openssl pkeyutl -sign -rawin`), as hex or as base64; or
- JSON as written by `usd1-indexer reserves sign`:
  `{"scheme": "ed25519", "key_fingerprint": "sha256:...", "signature": "<base64>"}`.
  With the fingerprint a failed check can name its cause (another key or altered content).

The signature covers the document's exact bytes. Ed25519 cannot tell a wrong key from altered
content by itself, so a bare signature that fails is reported as "altered or signed with another key".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # cryptography is imported on first use: its OpenSSL binding is ~12 MB of RSS
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from indexer.errors import IndexerError

SIG_LEN = 64
KEY_LEN = 32
MAX_SIGNATURE = 16 * 1024

SignatureStatus = Literal["valid", "invalid", "missing", "unconfigured"]
_HEX_RE = re.compile(rb"^[0-9a-fA-F]+$")


class PublicKeyError(IndexerError):
    """The configured public key cannot be read as an Ed25519 key."""


@dataclass(frozen=True)
class SignatureCheck:
    """The outcome of checking one document. `reason` says why it is not valid (None if valid)."""

    status: SignatureStatus
    key_fingerprint: str | None
    reason: str | None = None

    @property
    def valid(self) -> bool:
        return self.status == "valid"

    def as_json(self) -> dict[str, str | None]:
        return {"status": self.status, "key_fingerprint": self.key_fingerprint, "reason": self.reason}


def _decode_text(data: bytes, length: int) -> bytes | None:
    """Hex or base64 text holding exactly `length` bytes, else None."""
    text = data.strip()
    if len(text) == 2 * length and _HEX_RE.match(text):
        return bytes.fromhex(text.decode())
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == length else None


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """PEM, DER, or raw 32 bytes as hex/base64 -> Ed25519 public key; PublicKeyError naming the problem."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    stripped = data.strip()
    if stripped.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(stripped)
        except ValueError as exc:
            raise PublicKeyError(f"not a readable PEM public key: {exc}") from None
    elif (raw := _decode_text(stripped, KEY_LEN)) is not None:
        return Ed25519PublicKey.from_public_bytes(raw)
    else:
        try:
            key = serialization.load_der_public_key(data)
        except ValueError:
            raise PublicKeyError(
                "not an Ed25519 public key (expected PEM, DER, or 32 bytes as hex or base64)"
            ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise PublicKeyError(f"expected an Ed25519 public key, got {type(key).__name__}")
    return key


def public_raw(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(key: Ed25519PublicKey) -> str:
    """`sha256:` + hex SHA-256 of the raw 32-byte public key."""
    return "sha256:" + hashlib.sha256(public_raw(key)).hexdigest()


@dataclass(frozen=True)
class ParsedSignature:
    signature: bytes
    key_fingerprint: str | None  # the signer's key as the signature file states it, if it does


def parse_signature(data: bytes) -> ParsedSignature | str:
    """Detached signature bytes -> ParsedSignature, or a message saying what is wrong with it."""
    if not data.strip():
        return "signature file is empty"
    if len(data) > MAX_SIGNATURE:
        return f"signature file larger than {MAX_SIGNATURE} bytes"
    if data.lstrip().startswith(b"{"):
        try:
            obj = json.loads(data)
        except ValueError as exc:
            return f"signature JSON is malformed: {exc}"
        if not isinstance(obj, dict):
            return "signature JSON must be an object"
        if obj.get("scheme", "ed25519") != "ed25519":
            return f"unsupported signature scheme {obj.get('scheme')!r} (expected ed25519)"
        value, fp = obj.get("signature"), obj.get("key_fingerprint")
        if not isinstance(value, str):
            return "signature JSON has no string 'signature'"
        if fp is not None and not isinstance(fp, str):
            return "signature JSON 'key_fingerprint' must be a string"
        sig = _decode_text(value.encode(), SIG_LEN)
        if sig is None:
            return _length_problem(value.encode())
        return ParsedSignature(sig, fp)
    if len(data) == SIG_LEN:
        return ParsedSignature(data, None)
    sig = _decode_text(data, SIG_LEN)
    if sig is None:
        return _length_problem(data)
    return ParsedSignature(sig, None)


def _length_problem(data: bytes) -> str:
    """Why `data` is not a 64-byte signature: its decoded length if it has one."""
    text = data.strip()
    n: int | None
    if _HEX_RE.match(text) and len(text) % 2 == 0:
        n = len(text) // 2
    elif not data.isascii():
        n = len(data)  # raw bytes
    else:
        try:
            n = len(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            n = None
    if n is None:
        return "signature malformed: expected 64 bytes raw, as hex or as base64"
    if n < SIG_LEN:
        return f"signature truncated: {n} bytes, an Ed25519 signature has {SIG_LEN}"
    return f"signature malformed: {n} bytes, an Ed25519 signature has {SIG_LEN}"


def check_signature(document: bytes, signature: bytes | None, key: Ed25519PublicKey | None) -> SignatureCheck:
    """Pure: the document's exact bytes, its detached signature (None: there is none) and the
    configured key (None: none configured) -> the status shown in the API and the metric."""
    if key is None:
        return SignatureCheck("unconfigured", None, "no reserves.public_key configured")
    fp = fingerprint(key)
    if signature is None:
        return SignatureCheck("missing", fp, "no detached signature found")
    parsed = parse_signature(signature)
    if isinstance(parsed, str):
        return SignatureCheck("invalid", fp, parsed)
    if parsed.key_fingerprint is not None and parsed.key_fingerprint != fp:
        return SignatureCheck("invalid", fp, f"wrong key: signed by {parsed.key_fingerprint}, expected {fp}")
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(parsed.signature, document)
    except InvalidSignature:
        reason = (
            "tampered content: the signature does not match the document's bytes"
            if parsed.key_fingerprint is not None
            else "signature does not verify: the document was altered or signed with another key"
        )
        return SignatureCheck("invalid", fp, reason)
    return SignatureCheck("valid", fp)


def sign_document(document: bytes, private_key: Ed25519PrivateKey) -> bytes:
    """The JSON detached signature of `document` (what `usd1-indexer reserves sign` writes)."""
    sig = private_key.sign(document)
    fp = fingerprint(private_key.public_key())
    out = {"scheme": "ed25519", "key_fingerprint": fp, "signature": base64.b64encode(sig).decode()}
    return (json.dumps(out) + "\n").encode()
