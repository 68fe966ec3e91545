"""`usd1-indexer reserves keygen|sign|verify`: what an issuer needs to publish signed attestations,
and what an operator runs to check one the way the daemon does.

- `keygen PREFIX` writes `PREFIX.key` (PEM PKCS#8 Ed25519 private key, mode 0600) and
  `PREFIX.pub.pem` (the public key to configure as `reserves.public_key`).
- `sign --key PREFIX.key FILE` writes `FILE.sig` (JSON: scheme, key fingerprint, base64 signature).
- `verify FILE --key PUB` or `verify --config CFG` (the configured `reserves.url`, its signature and
  `reserves.public_key`): validates the document (schema 1 or 2) and checks the signature; exit 0
  when both are good, 1 when not (the reason on stderr), 2 for a bad config or unreadable key.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # cryptography loads on first use (its OpenSSL binding is ~12 MB)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from indexer.attest_sig import (
    PublicKeyError,
    SignatureCheck,
    check_signature,
    fingerprint,
    load_public_key,
    sign_document,
)
from indexer.attestation import ReservesError, parse_attestation
from indexer.errors import ConfigError


@click.group()
def reserves() -> None:
    """Signed reserve attestations: make a key, sign a document, verify one."""


@reserves.command()
@click.argument("prefix", type=click.Path(dir_okay=False))
def keygen(prefix: str) -> None:
    """Write PREFIX.key (private, 0600) and PREFIX.pub.pem (public) for a new Ed25519 key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    priv, pub = Path(prefix + ".key"), Path(prefix + ".pub.pem")
    if priv.exists():
        raise click.ClickException(f"{priv} exists; not overwriting a private key")
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    click.echo(f"{priv}: private key (keep it secret)\n{pub}: public key {fingerprint(key.public_key())}")


def _private_key(path: str) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, TypeError) as exc:
        raise click.ClickException(f"{path}: not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise click.ClickException(f"{path}: expected an Ed25519 private key, got {type(key).__name__}")
    return key


@reserves.command()
@click.option(
    "--key", "key_path", required=True, type=click.Path(dir_okay=False), help="Ed25519 private key (PEM)."
)
@click.option("--out", "out", default=None, type=click.Path(dir_okay=False), help="Default: FILE.sig")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
def sign(key_path: str, out: str | None, file: str) -> None:
    """Sign FILE's exact bytes; write the detached signature to FILE.sig."""
    key = _private_key(key_path)
    data = Path(file).read_bytes()
    try:
        parse_attestation(data, file)
    except ReservesError as exc:
        raise click.ClickException(f"not signing an invalid attestation: {exc}") from None
    target = Path(out or file + ".sig")
    target.write_bytes(sign_document(data, key))
    click.echo(f"{target}: signed by {fingerprint(key.public_key())}")


def _report(check: SignatureCheck, document: str) -> bool:
    if check.valid:
        click.echo(f"{document}: signature valid (key {check.key_fingerprint})")
        return True
    click.echo(f"{document}: signature {check.status}: {check.reason}", err=True)
    return False


@reserves.command()
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Check the configured source.",
)
@click.option(
    "--key", "key_path", default=None, type=click.Path(dir_okay=False), help="Ed25519 public key file."
)
@click.option(
    "--signature", "sig_path", default=None, type=click.Path(dir_okay=False), help="Default: FILE.sig"
)
@click.argument("file", required=False, type=click.Path(dir_okay=False))
def verify(config_path: str | None, key_path: str | None, sig_path: str | None, file: str | None) -> None:
    """Validate an attestation and check its detached signature (exit 1 if either fails)."""
    if config_path is not None:
        if file or key_path or sig_path:
            raise click.UsageError("--config takes the document, signature and key from the config")
        data, source, sig, key = _configured(config_path)
    else:
        if file is None or key_path is None:
            raise click.UsageError("give FILE and --key, or --config")
        try:
            key = load_public_key(Path(key_path).read_bytes())
        except OSError as exc:
            raise click.ClickException(f"cannot read {key_path}: {exc.strerror}") from None
        except PublicKeyError as exc:
            click.echo(f"{key_path}: {exc}", err=True)
            sys.exit(2)
        data, source = Path(file).read_bytes(), file
        sig_file = Path(sig_path or file + ".sig")
        sig = sig_file.read_bytes() if sig_file.exists() else None
    # the signature first: a document that fails it is not read any further by the daemon either
    signed = _report(check_signature(data, sig, key), source)
    valid = _check_document(data, source)
    if not (signed and valid):
        sys.exit(1)


def _check_document(data: bytes, source: str) -> bool:
    try:
        att = parse_attestation(data, source)
    except ReservesError as exc:
        for p in exc.problems:
            click.echo(f"{source}: {p}", err=True)
        return False
    click.echo(
        f"{source}: attestation version {att.version} as of {att.as_of.isoformat()}, reserves {att.reserves_usd} USD"
    )
    return True


def _configured(config_path: str) -> tuple[bytes, str, bytes | None, Ed25519PublicKey | None]:
    """The configured document, its signature (None: none, or no key to check it with) and key."""
    import aiohttp

    from indexer.cli import load_or_exit
    from indexer.reserves import load_attestation_bytes, load_optional_bytes, load_reserves_key

    cfg = load_or_exit(config_path, configure=False)
    rcfg = cfg.reserves
    if rcfg is None:
        raise click.ClickException(f"{config_path}: no reserves section")
    base = Path(config_path).resolve().parent
    try:
        key = load_reserves_key(rcfg, base)
    except ConfigError as exc:
        for p in exc.problems:
            click.echo(p, err=True)
        sys.exit(2)

    async def fetch() -> tuple[bytes, bytes | None]:
        async with aiohttp.ClientSession() as session:
            data = await load_attestation_bytes(rcfg.url, session, base_dir=base)
            if key is None:
                return data, None
            return data, await load_optional_bytes(rcfg.signature_source, session, base_dir=base)

    try:
        data, sig = asyncio.run(fetch())
    except ReservesError as exc:
        raise click.ClickException(str(exc)) from None
    return data, rcfg.url, sig, key
