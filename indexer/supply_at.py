"""PURE: the attestation package (issue #16 item 6, README "Supply at a time"): the supply of
every chain at the last block at or before a time TIME, its classes, the global figures and the
provenance an auditor needs to check them. `GET /api/v1/supply/at` and `usd1-indexer report
supply --at` print the same payload (`payload`); the store reads are in
`indexer.store.supply_at_queries`.

Rules:
- The block of a chain at TIME is the highest block the store knows (`queries.KnownBlock`: token
  or control events, the unfinalized window, the cursor) whose time is at or before TIME. Blocks
  the store does not hold have no token events, so the supply there equals the supply at that block.
- TIME must be final on every chain: at or before the time of the chain's last final block the
  store knows, and the block picked for TIME must be final itself. Otherwise `NotFinal` (the API's
  400) names the chain and the time up to which it is final.
- A chain with no indexed block at or before TIME (TIME before its first stored block, or a chain
  not indexed at all) is reported with `status: not_indexed` and left out of the global figures
  (`complete: false`).
- Frozen balances at TIME come from the control events folded up to the block, which is exact only
  when the chain decodes controls and their coverage reaches down to the chain's start block
  (`frozen_status: derived`). Otherwise `frozen` is null, the `owner` label cannot be resolved and
  `circulating` still counts those balances: `circulating_exact: false` says so.
- Global figures add the chains in the largest precision among them. `circulating` counts a
  bridged token once (README "Bridges": bridge_lock balances are not circulating on the native
  chains); with bridges configured (`bridges_deduplicated: true`) `global.bridges` gives each
  bridge's minted, locked and gap at TIME (null while one of its chains is not counted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, assert_never

from indexer import bridges
from indexer.store.queries import KnownBlock, classes_json, iso, scale
from indexer.supply_classes import SupplyClasses
from indexer.units import amount_json

FrozenStatus = Literal["derived", "not_decoded", "coverage_incomplete"]
FORMATS = ("json", "csv", "md")


class NotFinal(ValueError):
    """TIME is above what is final on a chain (the API answers 400 with this message)."""


@dataclass(frozen=True, slots=True)
class ChainAt:
    chain: str
    decimals: int
    start: int  # the configured first height (start_block / start_slot)
    finalized_block: int | None  # the cursor's finalized height (None: not indexed yet)
    final: KnownBlock | None  # the last final block the store knows with its time
    block: KnownBlock | None  # the block at or before TIME (None: not indexed at TIME)
    transfers_from: int | None  # the transfers family's coverage (None: none recorded)
    controls_from: int | None
    frozen_status: FrozenStatus
    classes: SupplyClasses | None = None  # at `block` (None while not read or not indexed)

    @property
    def indexed(self) -> bool:
        return self.block is not None and self.classes is not None

    @property
    def complete(self) -> bool:
        """The transfers history is complete up to `block`: coverage from the start block on
        (the cursor only moves over contiguous heights, so there is no gap above it)."""
        return (
            self.block is not None and self.transfers_from is not None and self.transfers_from <= self.start
        )

    @property
    def circulating_exact(self) -> bool:
        return self.frozen_status == "derived"


def frozen_status(decodes_controls: bool, controls_from: int | None, start: int) -> FrozenStatus:
    if not decodes_controls:
        return "not_decoded"
    if controls_from is None or controls_from > start:
        return "coverage_incomplete"
    return "derived"


def check_final(when: datetime, chains: Sequence[ChainAt]) -> None:
    """Raise `NotFinal` unless TIME is final on every chain (see the module's rules)."""
    for c in chains:
        if c.finalized_block is None:
            continue  # never indexed: reported as not_indexed
        if c.final is None:
            raise NotFinal(
                f"chain {c.chain} has no final block with a known time yet; nothing is final there"
            )
        if when > c.final.time:
            raise NotFinal(
                f"time {iso(when)} is above what is final on chain {c.chain}: its last final block"
                f" {c.final.number} is at {iso(c.final.time)}"
            )
        if c.block is not None and c.block.number > c.finalized_block:
            raise NotFinal(
                f"time {iso(when)} is above what is final on chain {c.chain}: block {c.block.number}"
                f" at {iso(c.block.time)} is not final yet (final up to block {c.finalized_block})"
            )


def _frozen_note(status: FrozenStatus) -> str | None:
    match status:
        case "derived":
            return None
        case "not_decoded":
            return "the chain decodes no control events: frozen balances at this time are unknown"
        case "coverage_incomplete":
            return (
                "the controls coverage does not reach the chain's start block (run `backfill --family"
                " controls`): frozen balances at this time are unknown"
            )
        case _:
            assert_never(status)


def chain_json(c: ChainAt) -> dict[str, Any]:
    body: dict[str, Any] = {
        "chain": c.chain,
        "decimals": c.decimals,
        "status": "indexed" if c.indexed else "not_indexed",
        "block": None,
        "total": None,
        "classes": None,
        "index": {
            "complete": c.complete,
            "start_block": c.start,
            "transfers_from_block": c.transfers_from,
            "controls_from_block": c.controls_from,
        },
    }
    if c.block is None or c.classes is None:
        body["reason"] = (
            "the chain has not been indexed yet"
            if c.finalized_block is None
            else "no indexed block of this chain is at or before the time"
        )
        return body
    classes = classes_json(c.classes, c.block.number, c.decimals)
    del classes["block"], classes["total"]
    if not c.circulating_exact:
        classes["frozen"] = None
    body["block"] = {
        "number": c.block.number,
        "hash": c.block.hash,
        "time": iso(c.block.time),
        "final": c.finalized_block is not None and c.block.number <= c.finalized_block,
    }
    body["total"] = amount_json(c.classes.total, c.decimals)
    body["classes"] = {
        **classes,
        "frozen_status": c.frozen_status,
        "frozen_note": _frozen_note(c.frozen_status),
        "circulating_exact": c.circulating_exact,
    }
    return body


def _maybe(raw: int | None, decimals: int) -> dict[str, str] | None:
    return None if raw is None else amount_json(raw, decimals)


def bridges_at(topology: bridges.Topology, counted: Sequence[ChainAt]) -> dict[str, Any]:
    """Each configured bridge at TIME (indexer.bridges.backing over the counted chains)."""
    positions = [bridges.Position(c.chain, c.decimals, c.classes) for c in counted]
    return {
        b.bridge: {
            "decimals": b.decimals,
            "native_chains": list(b.native),
            "bridged_chains": list(b.bridged),
            "in_flight_allowance": amount_json(b.allowance, b.decimals),
            "minted": _maybe(b.minted, b.decimals),
            "locked": _maybe(b.locked, b.decimals),
            "gap": _maybe(b.gap, b.decimals),
        }
        for b in bridges.backing(topology, positions)
    }


def payload(
    token: str,
    when: datetime,
    chains: Sequence[ChainAt],
    version: str,
    generated_at: datetime,
    topology: bridges.Topology | None = None,
) -> dict[str, Any]:
    """The attestation package (the API body and the report's JSON)."""
    topology = topology if topology is not None else bridges.Topology()
    counted = [c for c in chains if c.indexed]
    dp = max((c.decimals for c in chains), default=0)
    total = sum(scale(c.classes.total, c.decimals, dp) for c in counted if c.classes is not None)
    circulating = sum(scale(c.classes.circulating, c.decimals, dp) for c in counted if c.classes is not None)
    return {
        "token": token,
        "time": iso(when),
        "chains": [chain_json(c) for c in chains],
        "global": {
            "decimals": dp,
            "total": amount_json(total, dp),
            "circulating": amount_json(circulating, dp),
            "chains_counted": [c.chain for c in counted],
            "complete": len(counted) == len(chains) and all(c.complete for c in chains),
            "circulating_exact": all(c.circulating_exact for c in counted),
            "bridges_deduplicated": bool(topology.bridges),
            "bridges": bridges_at(topology, counted),
        },
        "provenance": {
            "indexer_version": version,
            "generated_at": iso(generated_at),
            "finalized": {
                c.chain: {
                    "block": c.finalized_block,
                    "known_block": None if c.final is None else c.final.number,
                    "time": None if c.final is None else iso(c.final.time),
                }
                for c in chains
            },
            "index_complete": {c.chain: c.complete for c in chains},
        },
    }


# ---- the report's CSV and Markdown renderings (from the payload, so all formats agree) ------------
CSV_COLUMNS = (
    "chain",
    "status",
    "as_of_block",
    "as_of_block_hash",
    "as_of_time",
    "final",
    "total",
    "non_circulating",
    "frozen",
    "circulating",
    "frozen_status",
    "circulating_exact",
    "index_complete",
)


def _labels(body: dict[str, Any]) -> list[str]:
    return sorted(
        {
            label
            for c in body["chains"]
            if c["classes"]
            for label in c["classes"]["non_circulating"]["by_label"]
        }
    )


def csv_rows(body: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows) of `payload`'s body: one row per chain and a `global` row; amounts in tokens."""
    labels = _labels(body)
    columns = [*CSV_COLUMNS, *(f"non_circulating_{label}" for label in labels)]
    rows: list[dict[str, Any]] = []
    for c in body["chains"]:
        row: dict[str, Any] = {
            "chain": c["chain"],
            "status": c["status"],
            "index_complete": c["index"]["complete"],
        }
        b, cl = c["block"], c["classes"]
        if b is not None and cl is not None:
            row |= {
                "as_of_block": b["number"],
                "as_of_block_hash": b["hash"],
                "as_of_time": b["time"],
                "final": b["final"],
                "total": c["total"]["amount"],
                "non_circulating": cl["non_circulating"]["amount"],
                "frozen": None if cl["frozen"] is None else cl["frozen"]["amount"],
                "circulating": cl["circulating"]["amount"],
                "frozen_status": cl["frozen_status"],
                "circulating_exact": cl["circulating_exact"],
            }
            for label, v in cl["non_circulating"]["by_label"].items():
                row[f"non_circulating_{label}"] = v["amount"]
        rows.append(row)
    g = body["global"]
    rows.append(
        {
            "chain": "global",
            "status": "complete" if g["complete"] else "incomplete",
            "as_of_time": body["time"],
            "total": g["total"]["amount"],
            "circulating": g["circulating"]["amount"],
            "circulating_exact": g["circulating_exact"],
            "index_complete": g["complete"],
        }
    )
    return columns, rows


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).replace("|", "\\|")


def markdown(body: dict[str, Any]) -> str:
    """A human-readable rendering of `payload`'s body (same figures, exact decimals)."""
    g, p = body["global"], body["provenance"]
    out = [
        f"# {body['token']} supply at {body['time']}",
        "",
        f"Generated {p['generated_at']} by usd1-indexer {p['indexer_version']}.",
        "",
        "| chain | status | block | block time | final | total | non-circulating | frozen | circulating |"
        " index complete |",
        "|---|---|---:|---|---|---:|---:|---:|---:|---|",
    ]
    for c in body["chains"]:
        b, cl = c["block"], c["classes"]
        if b is None or cl is None:
            cells = [
                c["chain"],
                c["status"],
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                c["index"]["complete"],
            ]
        else:
            frozen = None if cl["frozen"] is None else cl["frozen"]["amount"]
            cells = [
                c["chain"],
                c["status"],
                b["number"],
                b["time"],
                b["final"],
                c["total"]["amount"],
                cl["non_circulating"]["amount"],
                frozen if frozen is not None else f"unknown ({cl['frozen_status']})",
                cl["circulating"]["amount"],
                c["index"]["complete"],
            ]
        out.append("| " + " | ".join(_cell(x) for x in cells) + " |")
    out += [
        "",
        f"**Global** ({', '.join(g['chains_counted']) or 'no chain'}): total {g['total']['amount']},"
        f" circulating {g['circulating']['amount']}"
        + ("" if g["circulating_exact"] else " (not exact: frozen balances unknown on some chain)")
        + ("" if g["complete"] else "; the index is NOT complete at this time")
        + ("" if g["bridges_deduplicated"] else "; bridged supply not de-duplicated")
        + ".",
        "",
        *(
            f"Bridge {name}: minted on {', '.join(b['bridged_chains']) or 'no chain'}"
            f" {_cell(None if b['minted'] is None else b['minted']['amount'])}, locked on"
            f" {', '.join(b['native_chains']) or 'no chain'} {_cell(None if b['locked'] is None else b['locked']['amount'])},"
            f" allowance {b['in_flight_allowance']['amount']}, gap"
            f" {_cell(None if b['gap'] is None else b['gap']['amount'])} (positive = under-backed)."
            for name, b in g.get("bridges", {}).items()
        ),
        *([""] if g.get("bridges") else []),
        "Non-circulating by label, per chain:",
        "",
    ]
    for c in body["chains"]:
        cl = c["classes"]
        if cl is None:
            out.append(f"- {c['chain']}: not indexed at this time ({c.get('reason', 'unknown')})")
            continue
        labels = ", ".join(f"{k} {v['amount']}" for k, v in cl["non_circulating"]["by_label"].items())
        out.append(f"- {c['chain']}: {labels or 'none configured'}")
        if cl["frozen_note"]:
            out.append(f"  - {cl['frozen_note']}")
    out += ["", "Provenance (finalized heights):", ""]
    for name, f in p["finalized"].items():
        out.append(f"- {name}: finalized block {_cell(f['block'])}, final up to {_cell(f['time'])}")
    return "\n".join(out) + "\n"
