"""Import resolution of the devnet compile path (indexer.devnet.solc): no compiler run here."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.devnet.solc import OZ_REMAPPINGS, SolcError, _imports, _remap, resolve_sources
from indexer.devnet.usd1 import USD1_SOURCE


def test_import_forms_and_comments() -> None:
    text = """
    import "./A.sol";
    import {B, C as D} from "../B.sol";
    import * as E from 'lib/E.sol';
    import "F.sol" as F;
    // import "commented.sol";
    /* import "block-commented.sol"; */
    """
    assert _imports(text) == ["./A.sol", "../B.sol", "lib/E.sol", "F.sol"]


def test_remap_longest_prefix_wins() -> None:
    remaps = ["a/=x/", "a/b/=y/"]
    assert _remap("a/b/c.sol", remaps) == "y/c.sol"
    assert _remap("a/c.sol", remaps) == "x/c.sol"
    assert _remap("z/c.sol", remaps) == "z/c.sol"


def test_usd1_source_resolves_onto_the_npm_openzeppelin_packages() -> None:
    sources = resolve_sources([USD1_SOURCE], OZ_REMAPPINGS)
    assert sources["Stablecoin.sol"] == USD1_SOURCE.read_text()  # sent unmodified
    assert "@openzeppelin/contracts-upgradeable/token/ERC20/ERC20Upgradeable.sol" in sources
    assert "@openzeppelin/contracts-upgradeable/proxy/utils/Initializable.sol" in sources
    # The Foundry paths the source imports are all remapped; nothing is left unresolved.
    assert not [u for u in sources if u.startswith("openzeppelin-contracts")]
    assert all(u == "Stablecoin.sol" or u.startswith("@openzeppelin/contracts-upgradeable/") for u in sources)


def test_missing_import_names_the_importer(tmp_path: Path) -> None:
    main = tmp_path / "Main.sol"
    main.write_text('pragma solidity ^0.8.0;\nimport "./Helper.sol";\n')
    (tmp_path / "Helper.sol").write_text('import "nope/Missing.sol";\n')
    with pytest.raises(SolcError, match=r"source nope/Missing.sol \(imported by Helper.sol\) not found"):
        resolve_sources([main])
    with pytest.raises(SolcError, match="not found"):
        resolve_sources([tmp_path / "Absent.sol"])
