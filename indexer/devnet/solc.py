"""Compile the devnet's Solidity with npm solc-js packages via node: the one compile path.

`compile_sources` takes entry sources (files of ours, or npm source unit names such as
`@openzeppelin/contracts/proxy/transparent/ProxyAdmin.sol`), resolves their imports here (relative
imports, then `remappings`, then the file under one of the roots: the entry file's own folder, then
`node_modules/`), and sends every file's text to solc as standard JSON, with the same remappings.
The sources are never modified. Optimizer on; the EVM version comes with the compiler choice.

The output (every contract's ABI and creation code) is cached as JSON under `.usd1/cache/solc/`,
keyed by the sha256 of every source text, the compiler package's version (read from its
package.json, no node start needed), the remappings and the settings, so later starts are instant
and any change to a source, an npm package or the compiler recompiles.

Two compilers (package.json): `solc` (the project's, 0.8.28, for our contracts) and
`solc-0.8.14` (npm alias of `solc@0.8.14-fixed`: the real USD1 source's original compiler,
`0.8.14+commit.80d49f37`; npm `solc@0.8.14` itself lacks `common/` and does not load).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import posixpath
import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
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

# `import "x";`, `import "x" as y;`, `import * as y from "x";`, `import {a, b as c} from "x";`
_IMPORT_RE = re.compile(r"""^\s*import\s+[^;]*?["']([^"']+)["']\s*(?:as\s+\w+\s*)?;""", re.MULTILINE)
_COMMENT_RE = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)


class SolcError(RuntimeError):
    """node or solc-js is missing, an import is not found, or the source did not compile."""


@dataclass(frozen=True, slots=True)
class Compiler:
    """An npm solc-js package (folder under node_modules/) and the EVM version to target."""

    package: str
    evm_version: str


PROJECT_SOLC = Compiler("solc", "cancun")
# The real USD1 Stablecoin's compiler; 0.8.14 knows EVM versions up to london (its default).
USD1_SOLC = Compiler("solc-0.8.14", "london")

# The USD1 repository's Foundry layout (lib/<repo>/contracts/...) onto the npm packages.
OZ_REMAPPINGS: tuple[str, ...] = (
    "openzeppelin-contracts-upgradeable/contracts/=@openzeppelin/contracts-upgradeable/",
    "openzeppelin-contracts/contracts/=@openzeppelin/contracts/",
)


@dataclass(frozen=True, slots=True)
class Artifact:
    contract: str
    abi: list[dict[str, Any]]
    bytecode: str  # 0x-prefixed creation code
    solc_version: str


@dataclass(frozen=True, slots=True)
class Compiled:
    """Every contract of one compilation, by `(source unit, contract name)`."""

    artifacts: Mapping[tuple[str, str], Artifact]

    def get(self, contract: str, source: str | None = None) -> Artifact:
        """The artifact named `contract` (in source unit `source`, needed only when ambiguous)."""
        found = [
            a for (unit, name), a in self.artifacts.items() if name == contract and source in (None, unit)
        ]
        if len(found) != 1:
            where = f" in {source}" if source else ""
            what = "not found" if not found else f"ambiguous ({len(found)} sources define it)"
            raise SolcError(f"contract {contract}{where}: {what}")
        return found[0]

    def by_name(self) -> dict[str, Artifact]:
        """{contract name: artifact}; raises SolcError if two sources define the same name."""
        return {name: self.get(name) for _, name in self.artifacts}


def node_modules(root: Path | None = None) -> Path:
    return (root or REPO_ROOT) / "node_modules"


def solc_dir(compiler: Compiler = PROJECT_SOLC, root: Path | None = None) -> Path:
    path = node_modules(root) / compiler.package
    if not (path / "package.json").is_file():
        raise SolcError(f"npm {compiler.package} not found at {path}; run `make install` (npm install) first")
    return path


def solc_package_version(compiler: Compiler = PROJECT_SOLC, root: Path | None = None) -> str:
    return str(json.loads((solc_dir(compiler, root) / "package.json").read_text())["version"])


def _settings(compiler: Compiler, remappings: Sequence[str], optimizer_runs: int) -> dict[str, Any]:
    return {
        "optimizer": {"enabled": True, "runs": optimizer_runs},
        "evmVersion": compiler.evm_version,
        "remappings": list(remappings),
        "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
    }


def _imports(text: str) -> list[str]:
    return _IMPORT_RE.findall(_COMMENT_RE.sub("", text))


def _remap(path: str, remappings: Sequence[str]) -> str:
    """solc's context-free remapping: the longest matching prefix wins."""
    best = ""
    target = ""
    for r in remappings:
        prefix, _, to = r.partition("=")
        if path.startswith(prefix) and len(prefix) > len(best):
            best, target = prefix, to
    return target + path[len(best) :] if best else path


def _unit_name(importer: str, path: str, remappings: Sequence[str]) -> str:
    if path.startswith(("./", "../")):
        path = posixpath.normpath(posixpath.join(posixpath.dirname(importer), path))
    return _remap(path, remappings)


def resolve_sources(
    entries: Iterable[Path | str], remappings: Sequence[str] = (), *, root: Path | None = None
) -> dict[str, str]:
    """{source unit name: text} of the entries and everything they import.

    A `Path` entry is a file of ours: its unit name is its file name and its folder is searched
    first for its imports. A `str` entry is a unit name found under node_modules/."""
    roots: list[Path] = []
    pending: list[str] = []
    for entry in entries:
        if isinstance(entry, Path):
            if not entry.is_file():
                raise SolcError(f"source {entry} not found")
            if entry.parent not in roots:
                roots.append(entry.parent)
            pending.append(entry.name)
        else:
            pending.append(entry)
    roots.append(node_modules(root))
    sources: dict[str, str] = {}
    importers: dict[str, str] = {}
    while pending:
        unit = pending.pop()
        if unit in sources:
            continue
        file = next((r / unit for r in roots if (r / unit).is_file()), None)
        if file is None:
            by = f" (imported by {importers[unit]})" if unit in importers else ""
            raise SolcError(f"source {unit}{by} not found under {', '.join(map(str, roots))}")
        text = file.read_text()
        sources[unit] = text
        for imp in _imports(text):
            name = _unit_name(unit, imp, remappings)
            importers.setdefault(name, unit)
            pending.append(name)
    return dict(sorted(sources.items()))


def compile_sources(
    entries: Iterable[Path | str],
    *,
    compiler: Compiler = PROJECT_SOLC,
    remappings: Sequence[str] = (),
    cache_dir: Path | None = None,
    optimizer_runs: int = 200,
) -> Compiled:
    """Compile (or load from cache) the entries with everything they import. Blocking."""
    sources = resolve_sources(entries, remappings)
    settings = _settings(compiler, remappings, optimizer_runs)
    version = solc_package_version(compiler)
    key_material = json.dumps([sources, compiler.package, version, settings], sort_keys=True).encode()
    key = hashlib.sha256(key_material).hexdigest()[:32]
    cache = (cache_dir or DEFAULT_CACHE_DIR) / "solc"
    cached = cache / f"{key}.json"
    if cached.is_file():
        return _from_json(json.loads(cached.read_text()))
    std_input = {
        "language": "Solidity",
        "sources": {unit: {"content": text} for unit, text in sources.items()},
        "settings": settings,
    }
    result = _run_solc(compiler, std_input)
    output = result["output"]
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise SolcError("; ".join(e.get("formattedMessage", e.get("message", "")) for e in errors))
    data = {
        "solc_version": str(result["version"]),
        "contracts": [
            {
                "source": unit,
                "contract": name,
                "abi": c["abi"],
                "bytecode": "0x" + c["evm"]["bytecode"]["object"],
            }
            for unit, contracts in sorted(output.get("contracts", {}).items())
            for name, c in sorted(contracts.items())
        ],
    }
    cache.mkdir(parents=True, exist_ok=True)
    # Atomic write: parallel test workers may compile at the same time.
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=f".{key}-", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, cached)
    return _from_json(data)


def _run_solc(compiler: Compiler, std_input: dict[str, Any]) -> dict[str, Any]:
    try:
        proc = subprocess.run(
            ["node", "-e", _NODE_SCRIPT, str(solc_dir(compiler))],
            input=json.dumps(std_input).encode(),
            capture_output=True,
            timeout=300,
            check=False,
        )
    except FileNotFoundError:
        raise SolcError("node is not installed (needed to run npm solc)") from None
    if proc.returncode != 0:
        raise SolcError(f"solc-js failed (exit {proc.returncode}): {proc.stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _from_json(data: dict[str, Any]) -> Compiled:
    version = str(data["solc_version"])
    return Compiled(
        {
            (c["source"], c["contract"]): Artifact(c["contract"], c["abi"], c["bytecode"], version)
            for c in data["contracts"]
        }
    )


def compile_contract(
    source: Path | str = TOKEN_SOURCE,
    contract: str = "TestToken",
    *,
    compiler: Compiler = PROJECT_SOLC,
    remappings: Sequence[str] = (),
    cache_dir: Path | None = None,
    optimizer_runs: int = 200,
) -> Artifact:
    """One contract of one entry source (see `compile_sources`). Blocking."""
    compiled = compile_sources(
        [source], compiler=compiler, remappings=remappings, cache_dir=cache_dir, optimizer_runs=optimizer_runs
    )
    unit = source.name if isinstance(source, Path) else source
    return compiled.get(contract, unit)


async def compile_token(cache_dir: Path | None = None) -> Artifact:
    """The TestToken artifact (cached); runs the compiler off the event loop."""
    return await asyncio.to_thread(compile_contract, TOKEN_SOURCE, "TestToken", cache_dir=cache_dir)
