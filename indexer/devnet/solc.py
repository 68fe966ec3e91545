"""Compile the devnet's Solidity with the npm `solc` package (solc-js) via node.

Standard JSON input, optimizer on. The artifact is cached as JSON keyed by the sha256 of the
source, the solc version (read from node_modules/solc/package.json, no node start needed) and the
settings, so later starts are instant.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.devnet.anvil import REPO_ROOT

CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts"
TOKEN_SOURCE = CONTRACTS_DIR / "TestToken.sol"
DEFAULT_CACHE_DIR = REPO_ROOT / ".usd1" / "cache"

_NODE_SCRIPT = r"""
const solc = require(process.argv[1]);
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (c) => { input += c; });
process.stdin.on('end', () => {
  process.stdout.write(JSON.stringify({version: solc.version(), output: JSON.parse(solc.compile(input))}));
});
"""


class SolcError(RuntimeError):
    """node or solc-js is missing, or the source did not compile."""


@dataclass(frozen=True, slots=True)
class Artifact:
    contract: str
    abi: list[dict[str, Any]]
    bytecode: str  # 0x-prefixed creation code
    solc_version: str


def solc_dir(root: Path | None = None) -> Path:
    path = (root or REPO_ROOT) / "node_modules" / "solc"
    if not (path / "package.json").is_file():
        raise SolcError(f"npm solc not found at {path}; run `make install` (npm install) first")
    return path


def solc_package_version(root: Path | None = None) -> str:
    return str(json.loads((solc_dir(root) / "package.json").read_text())["version"])


def _settings(optimizer_runs: int) -> dict[str, Any]:
    return {
        "optimizer": {"enabled": True, "runs": optimizer_runs},
        "evmVersion": "cancun",
        "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
    }


def compile_contract(
    source: Path = TOKEN_SOURCE,
    contract: str = "TestToken",
    *,
    cache_dir: Path | None = None,
    optimizer_runs: int = 200,
) -> Artifact:
    """Compile (or load from cache) one contract of one self-contained source file. Blocking."""
    text = source.read_text()
    settings = _settings(optimizer_runs)
    version = solc_package_version()
    key_material = json.dumps([text, version, contract, settings], sort_keys=True).encode()
    key = hashlib.sha256(key_material).hexdigest()[:32]
    cache = cache_dir or DEFAULT_CACHE_DIR
    cached = cache / f"{contract}-{key}.json"
    if cached.is_file():
        data = json.loads(cached.read_text())
        return Artifact(contract, data["abi"], data["bytecode"], data["solc_version"])

    std_input = {"language": "Solidity", "sources": {source.name: {"content": text}}, "settings": settings}
    try:
        proc = subprocess.run(
            ["node", "-e", _NODE_SCRIPT, str(solc_dir())],
            input=json.dumps(std_input).encode(),
            capture_output=True,
            timeout=120,
            check=False,
        )
    except FileNotFoundError:
        raise SolcError("node is not installed (needed to run npm solc)") from None
    if proc.returncode != 0:
        raise SolcError(f"solc-js failed (exit {proc.returncode}): {proc.stderr.decode()[-2000:]}")
    result = json.loads(proc.stdout)
    output = result["output"]
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise SolcError("; ".join(e.get("formattedMessage", e.get("message", "")) for e in errors))
    try:
        compiled = output["contracts"][source.name][contract]
    except KeyError:
        raise SolcError(f"contract {contract} not found in {source.name}") from None
    artifact = Artifact(
        contract=contract,
        abi=compiled["abi"],
        bytecode="0x" + compiled["evm"]["bytecode"]["object"],
        solc_version=str(result["version"]),
    )
    cache.mkdir(parents=True, exist_ok=True)
    # Atomic write: parallel test workers may compile at the same time.
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=f".{contract}-", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(
            {"abi": artifact.abi, "bytecode": artifact.bytecode, "solc_version": artifact.solc_version}, fh
        )
    os.replace(tmp, cached)
    return artifact


async def compile_token(cache_dir: Path | None = None) -> Artifact:
    """The TestToken artifact (cached); runs the compiler off the event loop."""
    return await asyncio.to_thread(compile_contract, TOKEN_SOURCE, "TestToken", cache_dir=cache_dir)
