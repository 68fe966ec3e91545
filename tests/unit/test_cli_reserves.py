"""`usd1-indexer reserves keygen|sign|verify`: an issuer's round trip, and every failure exits 1
with its reason (what the daemon would log), a bad key 2."""

from __future__ import annotations

import stat
from pathlib import Path

from click.testing import CliRunner

from indexer.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "reserves.v2.example.json"


def run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def test_keygen_sign_verify_round_trip_and_failures(tmp_path: Path) -> None:
    doc = tmp_path / "r.json"
    doc.write_bytes(EXAMPLE.read_bytes())
    prefix = str(tmp_path / "issuer")
    code, out, _ = run("reserves", "keygen", prefix)
    assert code == 0 and "public key sha256:" in out
    assert stat.S_IMODE((tmp_path / "issuer.key").stat().st_mode) == 0o600
    assert run("reserves", "keygen", prefix)[0] == 1  # never overwrites a private key
    code, out, _ = run("reserves", "sign", "--key", prefix + ".key", str(doc))
    assert code == 0 and (tmp_path / "r.json.sig").is_file()
    code, out, err = run("reserves", "verify", str(doc), "--key", prefix + ".pub.pem")
    assert code == 0, err
    assert "signature valid" in out and "attestation version 2" in out

    # the same via a config: reserves.url, its .sig, reserves.public_key
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "chains: [{name: a, kind: evm, rpc: ['http://127.0.0.1:9'], token: '0x"
        + "11" * 20
        + "', decimals: 18}]\n"
        "reserves: {url: 'file://r.json', public_key: issuer.pub.pem, cadence: monthly}\n"
    )
    code, out, err = run("reserves", "verify", "--config", str(cfg))
    assert code == 0, err

    doc.write_bytes(EXAMPLE.read_bytes().replace(b"25000000.25", b"25000001.25"))
    code, _, err = run("reserves", "verify", str(doc), "--key", prefix + ".pub.pem")
    assert code == 1 and "signature invalid: tampered content" in err
    assert "does not equal the sum of assets" in err  # and the document's own problem

    doc.write_bytes(EXAMPLE.read_bytes())
    (tmp_path / "r.json.sig").unlink()
    code, _, err = run("reserves", "verify", "--config", str(cfg))
    assert code == 1 and "signature missing: no detached signature found" in err

    (tmp_path / "issuer.pub.pem").write_text("not a key")
    code, _, err = run("reserves", "verify", "--config", str(cfg))
    assert code == 2 and err.startswith("reserves.public_key: ")

    # signing refuses an invalid document
    doc.write_text('{"version": 2}')
    code, _, err = run("reserves", "sign", "--key", prefix + ".key", str(doc))
    assert code == 1 and "not signing an invalid attestation" in err
