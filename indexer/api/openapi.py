"""The OpenAPI 3.0 document served at /api/openapi.json.

Query parameters are declared once here; the handlers accept exactly the names declared for their
route (`allowed(path)`), so the document and the code cannot drift apart on what is accepted.
"""

from __future__ import annotations

from typing import Any

from indexer import __version__
from indexer.api.validate import MAX_HEIGHT
from indexer.model import CONTROL_KINDS
from indexer.store.control_queries import HOLDER_FIELDS
from indexer.store.queries import DEFAULT_PAGE, EVENT_KINDS, MAX_BUCKETS, MAX_PAGE

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {**schema, "nullable": True}


def _q(name: str, schema: Schema, description: str, *, required: bool = False) -> Schema:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def _path(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": description,
    }


HEIGHT: Schema = {"type": "integer", "minimum": 0, "maximum": MAX_HEIGHT}
TIME_DOC = "ISO-8601 (a missing zone means UTC) or Unix seconds; 1970 .. 2200."
CHAIN_Q = _q("chain", {"type": "string"}, "A configured chain name.")

# Shared by the paged event routes (transfers, control events).
CHAIN_ONE = _q(
    "chain", {"type": "string"}, "A configured chain name (may be omitted when only one chain is configured)."
)
BLOCK_TIMES = [
    _q("since", {"type": "string"}, f"Block time at or after. {TIME_DOC}"),
    _q("until", {"type": "string"}, f"Block time before. {TIME_DOC}"),
]
PAGE = [
    _q(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
        f"Page size (default {DEFAULT_PAGE}, at most {MAX_PAGE}).",
    ),
    _q(
        "order",
        {"type": "string", "enum": ["desc", "asc"]},
        "Order by (block_number, log_index, tx_hash): desc (newest first, default) or asc.",
    ),
    _q(
        "cursor",
        {"type": "string"},
        "`next_cursor` of the previous page, with the same filters; refused with other filters.",
    ),
]

QUERY_PARAMS: dict[str, list[Schema]] = {
    "/healthz": [],
    "/api/v1/supply": [],
    "/api/v1/status": [],
    "/api/v1/supply/history": [
        _q("chain", {"type": "string"}, "A configured chain name; default: every chain, plus a total."),
        _q(
            "since",
            {"type": "string"},
            f"Start of the range (inclusive). {TIME_DOC} Default: 100 intervals before `until`.",
        ),
        _q("until", {"type": "string"}, f"End of the range (exclusive). {TIME_DOC} Default: now."),
        _q(
            "interval",
            {"type": "string", "pattern": "^[0-9]{1,6}[mhdw]$"},
            f"Bucket width: N + m|h|d|w, 1m .. 366d (default 1d). Buckets are aligned to multiples of the "
            f"interval since the Unix epoch (UTC); at most {MAX_BUCKETS} per request.",
        ),
    ],
    "/api/v1/supply/at": [
        _q(
            "time",
            {"type": "string"},
            f"The time to report at (required). {TIME_DOC} Must be final on every chain.",
            required=True,
        ),
    ],
    "/api/v1/transfers": [
        CHAIN_ONE,
        _q(
            "address",
            {"type": "string"},
            "Only events where this address is the sender or the receiver (Tron: any spelling).",
        ),
        _q(
            "kind",
            {"type": "string"},
            f"Comma-separated subset of {', '.join(EVENT_KINDS)} (default: all).",
        ),
        _q("from_block", HEIGHT, "Lowest block (inclusive)."),
        _q("to_block", HEIGHT, "Highest block (inclusive)."),
        *BLOCK_TIMES,
        _q("min_amount", {"type": "string"}, "Minimum amount in tokens, exact decimal (e.g. 1000 or 0.5)."),
        _q(
            "flagged",
            {"type": "string", "enum": ["true", "false"]},
            "true: only events from or to an address on a configured watchlist (the lists in force"
            " now); false: only the others.",
        ),
        *PAGE,
    ],
    "/api/v1/tx/{chain}/{hash}": [],
    "/api/v1/accounts/{chain}/{address}": [
        _q("block", HEIGHT, "Also report the balance as of this block (at most the indexed head)."),
    ],
    "/api/v1/controls": [
        _q("chain", {"type": "string"}, "A configured chain name (default: every chain)."),
    ],
    "/api/v1/control-events": [
        CHAIN_ONE,
        _q(
            "kind",
            {"type": "string"},
            f"Comma-separated subset of {', '.join(CONTROL_KINDS)} (default: all).",
        ),
        _q(
            "address",
            {"type": "string"},
            "Only events emitted by this contract or naming this account (subject, previous or actor).",
        ),
        *BLOCK_TIMES,
        *PAGE,
    ],
    "/api/v1/reorgs": [
        _q("chain", {"type": "string"}, "A configured chain name (default: every chain)."),
        _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "Most recent N (default 100)."),
    ],
    "/api/v1/reserves": [],
    "/api/v1/depegs": [
        _q("venue", {"type": "string"}, "Only this configured venue's episodes (scope venue)."),
        _q(
            "scope",
            {"type": "string", "enum": ["venue", "aggregate"]},
            "venue: per-venue episodes; aggregate: episodes of the median across live venues (default: both).",
        ),
        _q("since", {"type": "string"}, f"Episodes still open at or ended after this time. {TIME_DOC}"),
        _q("until", {"type": "string"}, f"Episodes started before this time. {TIME_DOC}"),
        _q(
            "open",
            {"type": "string", "enum": ["true", "false"]},
            "Only open (true) or closed (false) episodes.",
        ),
        _q(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
            f"Page size (default {DEFAULT_PAGE}, at most {MAX_PAGE}).",
        ),
        _q(
            "cursor",
            {"type": "string"},
            "`next_cursor` of the previous page, with the same filters; refused with other filters.",
        ),
        _q(
            "format",
            {"type": "string", "enum": ["json", "csv"]},
            "json (default) or csv (the next page's cursor in the X-Next-Cursor header).",
        ),
    ],
    "/api/openapi.json": [],
}

PATH_PARAMS: dict[str, list[Schema]] = {
    "/api/v1/tx/{chain}/{hash}": [
        _path("chain", "A configured chain name."),
        _path("hash", "Transaction hash (EVM: 0x + 64 hex) or signature (Solana: base58)."),
    ],
    "/api/v1/accounts/{chain}/{address}": [
        _path("chain", "A configured chain name."),
        _path(
            "address",
            "Account address (EVM: 0x + 40 hex, case-insensitive; Tron: base58check T..., 41... or 0x hex,"
            " answered in base58; Solana: base58).",
        ),
    ],
}


def allowed(path: str) -> set[str]:
    return {p["name"] for p in QUERY_PARAMS[path]}


AMOUNT: Schema = {
    "type": "object",
    "required": ["raw", "amount"],
    "properties": {
        "raw": {"type": "string", "pattern": "^-?[0-9]+$", "description": "Integer base units."},
        "amount": {
            "type": "string",
            "pattern": r"^-?[0-9]+(\.[0-9]+)?$",
            "description": "Exact decimal tokens.",
        },
    },
}

BPS: Schema = {
    "type": "string",
    "pattern": r"^-?[0-9]+(\.[0-9]+)?$",
    "description": "Exact deviation from the peg in basis points (decimal string).",
}

HOLDERS: Schema = {k: _nullable({"type": "string"}) for k in HOLDER_FIELDS}

SCHEMAS: dict[str, Schema] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "Amount": AMOUNT,
    "AsOf": {
        "type": "object",
        "description": "Where the chain's index stood when the answer was read (all null: not indexed yet).",
        "required": ["chain", "block", "finalized_block"],
        "properties": {
            "chain": {"type": "string"},
            "block": _nullable({"type": "integer"}),
            "block_hash": _nullable({"type": "string"}),
            "block_time": _nullable({"type": "string", "format": "date-time"}),
            "finalized_block": _nullable({"type": "integer"}),
            "updated_at": _nullable({"type": "string", "format": "date-time"}),
        },
    },
    "Event": {
        "type": "object",
        "required": [
            "chain",
            "block_number",
            "block_hash",
            "tx_hash",
            "log_index",
            "kind",
            "from",
            "to",
            "raw",
            "amount",
            "finalized",
        ],
        "properties": {
            "chain": {"type": "string"},
            "block_number": {"type": "integer"},
            "block_hash": {"type": "string"},
            "block_time": _nullable({"type": "string", "format": "date-time"}),
            "tx_hash": {"type": "string"},
            "log_index": {"type": "integer"},
            "kind": {"type": "string", "enum": list(EVENT_KINDS)},
            "from": _nullable({"type": "string"}),
            "to": _nullable({"type": "string"}),
            "raw": AMOUNT["properties"]["raw"],
            "amount": AMOUNT["properties"]["amount"],
            "finalized": {"type": "boolean", "description": "At or below the finalized block."},
            "flagged": {
                "type": "boolean",
                "description": "Transfers only: the sender or the receiver is on a watchlist in force now.",
            },
            "lists": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Transfers only, when flagged: the watchlists (config order).",
            },
        },
    },
    "Transfers": {
        "type": "object",
        "required": ["chain", "order", "limit", "as_of", "transfers", "next_cursor"],
        "properties": {
            "chain": {"type": "string"},
            "order": {"type": "string", "enum": ["desc", "asc"]},
            "limit": {"type": "integer"},
            "as_of": _ref("AsOf"),
            "transfers": {"type": "array", "items": _ref("Event")},
            "next_cursor": _nullable({"type": "string", "description": "null on the last page"}),
        },
    },
    "Tx": {
        "type": "object",
        "required": ["chain", "tx_hash", "as_of", "events"],
        "properties": {
            "chain": {"type": "string"},
            "tx_hash": {"type": "string"},
            "as_of": _ref("AsOf"),
            "events": {"type": "array", "items": _ref("Event")},
        },
    },
    "HistoryPoint": {
        "type": "object",
        "required": ["t", "end", "block", "raw", "amount", "finalized"],
        "properties": {
            "t": {"type": "string", "format": "date-time", "description": "Bucket start."},
            "end": {"type": "string", "format": "date-time", "description": "Bucket end (clipped to until)."},
            "block": _nullable({"type": "integer", "description": "Last block with events before `end`."}),
            "block_time": _nullable({"type": "string", "format": "date-time"}),
            "raw": AMOUNT["properties"]["raw"],
            "amount": AMOUNT["properties"]["amount"],
            "minted": {"type": "string", "description": "Cumulative minted base units."},
            "burned": {"type": "string", "description": "Cumulative burned base units."},
            "mints": {"type": "integer"},
            "burns": {"type": "integer"},
            "transfers": {"type": "integer"},
            "finalized": {"type": "boolean"},
        },
    },
    "SupplyHistory": {
        "type": "object",
        "required": ["interval", "since", "until", "chains"],
        "properties": {
            "interval": {"type": "string"},
            "interval_seconds": {"type": "integer"},
            "since": {"type": "string", "format": "date-time"},
            "until": {"type": "string", "format": "date-time"},
            "chains": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["chain", "decimals", "as_of", "points"],
                    "properties": {
                        "chain": {"type": "string"},
                        "decimals": {"type": "integer"},
                        "as_of": _ref("AsOf"),
                        "points": {"type": "array", "items": _ref("HistoryPoint")},
                    },
                },
            },
            "total": _nullable(
                {
                    "type": "object",
                    "properties": {
                        "decimals": {"type": "integer"},
                        "points": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["t", "raw", "amount", "finalized"],
                                "properties": {
                                    "t": {"type": "string", "format": "date-time"},
                                    "raw": AMOUNT["properties"]["raw"],
                                    "amount": AMOUNT["properties"]["amount"],
                                    "finalized": {"type": "boolean"},
                                },
                            },
                        },
                    },
                }
            ),
        },
    },
    "SupplyClasses": {
        "type": "object",
        "description": (
            "A chain's supply classes at one block: total = circulating + frozen + non_circulating;"
            " each account subtracted once (a configured label wins over frozen)."
        ),
        "required": ["block", "total", "non_circulating", "frozen", "circulating"],
        "properties": {
            "block": {"type": "integer"},
            "total": _ref("Amount"),
            "non_circulating": {
                "allOf": [_ref("Amount")],
                "required": ["by_label"],
                "properties": {
                    "by_label": {
                        "type": "object",
                        "description": "Per configured label (non_circulating in the chain's config).",
                        "additionalProperties": _ref("Amount"),
                    }
                },
            },
            "frozen": {"allOf": [_ref("Amount")], "description": "Frozen accounts carrying no label."},
            "circulating": _ref("Amount"),
        },
    },
    "Supply": {
        "type": "object",
        "required": ["chains", "total"],
        "properties": {
            "token": {"type": "string"},
            "chains": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["chain", "decimals", "finalized", "head"],
                    "properties": {
                        "chain": {"type": "string"},
                        "decimals": {"type": "integer"},
                        "finalized": {
                            "allOf": [_ref("Amount")],
                            "properties": {"block": _nullable({"type": "integer"})},
                        },
                        "head": {
                            "allOf": [_ref("Amount")],
                            "properties": {
                                "block": _nullable({"type": "integer"}),
                                "block_hash": _nullable({"type": "string"}),
                            },
                        },
                        "classes": _nullable(
                            {
                                "type": "object",
                                "description": "Supply classes (null: the chain is not indexed yet).",
                                "required": ["finalized", "head"],
                                "properties": {
                                    "finalized": _ref("SupplyClasses"),
                                    "head": _ref("SupplyClasses"),
                                },
                            }
                        ),
                        "as_of": _ref("AsOf"),
                    },
                },
            },
            "total": {
                "type": "object",
                "required": ["decimals", "finalized", "head"],
                "properties": {
                    "decimals": {"type": "integer"},
                    "finalized": _ref("Amount"),
                    "head": _ref("Amount"),
                    "circulating": {
                        "type": "object",
                        "description": (
                            "The global circulating figure: the chains' circulating supply summed, each"
                            " token once (bridge_lock balances are not circulating; null until every"
                            ' chain is indexed). README "Bridges".'
                        ),
                        "properties": {
                            "finalized": _nullable({"allOf": [_ref("Amount")]}),
                            "head": _nullable({"allOf": [_ref("Amount")]}),
                        },
                    },
                },
            },
            "bridges": {
                "type": "object",
                "description": 'Per configured bridge (README "Bridges").',
                "additionalProperties": _ref("BridgeBacking"),
            },
        },
    },
    "BridgeBacking": {
        "type": "object",
        "description": (
            "gap = minted on the bridged chains - locked (bridge_lock) on the native chains -"
            " in_flight_allowance; positive = under-backed. Amounts in `decimals` (the bridge's most"
            " precise chain); null while one of the bridge's chains is not indexed."
        ),
        "required": [
            "decimals",
            "native_chains",
            "bridged_chains",
            "in_flight_allowance",
            "finalized",
            "head",
        ],
        "properties": {
            "decimals": {"type": "integer"},
            "native_chains": {"type": "array", "items": {"type": "string"}},
            "bridged_chains": {"type": "array", "items": {"type": "string"}},
            "in_flight_allowance": _ref("Amount"),
            **{
                f: {
                    "type": "object",
                    "required": ["minted", "locked", "gap"],
                    "properties": {
                        k: _nullable({"allOf": [_ref("Amount")]}) for k in ("minted", "locked", "gap")
                    },
                }
                for f in ("finalized", "head")
            },
        },
    },
    "Status": {
        "type": "object",
        "required": ["chains"],
        "properties": {
            "chains": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["chain", "head", "indexed", "finalized", "lag_seconds", "state"],
                    "properties": {
                        "chain": {"type": "string"},
                        "kind": {"type": "string"},
                        "head": _nullable({"type": "integer"}),
                        "indexed": _nullable({"type": "integer"}),
                        "finalized": _nullable({"type": "integer"}),
                        "lag_seconds": _nullable({"type": "number"}),
                        "state": {"type": "string"},
                        "coverage": {
                            "type": "object",
                            "description": "Per event family: complete from `from_block` up to the head"
                            " (`complete`: from the chain's start block).",
                        },
                        "indexes_deferred": {
                            "type": "boolean",
                            "description": "true while a long first backfill runs without the"
                            " chain's sender/receiver/tx indexes: address and tx queries scan",
                        },
                        "audit": _nullable(
                            {
                                "type": "object",
                                "description": "The last balance audit at the finalized block: time,"
                                " block, accounts_checked, mismatches found in that round and every"
                                " account still mismatched (address, block, onchain, indexed)",
                                "properties": {
                                    "time": {"type": "string"},
                                    "block": {"type": "integer"},
                                    "accounts_checked": {"type": "integer"},
                                    "mismatched_accounts": {"type": "integer"},
                                    "mismatches": {"type": "array", "items": {"type": "object"}},
                                    "mismatched": {"type": "array", "items": {"type": "object"}},
                                },
                            }
                        ),
                        "range_audit": _nullable(
                            {
                                "type": "object",
                                "description": "The last re-read of a finalized range from every"
                                " endpoint: start, end, stored_events, and per endpoint its event"
                                " count, digest and whether it matches the store",
                            }
                        ),
                    },
                },
            }
        },
    },
    "Account": {
        "type": "object",
        "required": ["chain", "address", "finalized", "head", "as_of"],
        "properties": {
            "chain": {"type": "string"},
            "address": {"type": "string"},
            "finalized": {"allOf": [_ref("Amount")], "properties": {"block": {"type": "integer"}}},
            "head": {"allOf": [_ref("Amount")], "properties": {"block": {"type": "integer"}}},
            "at": {
                "allOf": [_ref("Amount")],
                "properties": {
                    "block": {"type": "integer"},
                    "finality": {"type": "string", "enum": ["finalized", "head"]},
                },
            },
            "as_of": _ref("AsOf"),
        },
    },
    "Reorgs": {
        "type": "object",
        "required": ["reorgs"],
        "properties": {
            "reorgs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["chain", "detected_at", "depth", "ancestor", "old_tip", "new_tip"],
                    "properties": {
                        "chain": {"type": "string"},
                        "detected_at": {"type": "string", "format": "date-time"},
                        "depth": {"type": "integer"},
                        "ancestor": {"type": "object"},
                        "old_tip": {"type": "object"},
                        "new_tip": {"type": "object"},
                        "orphaned_events": {"type": "integer"},
                        "orphaned_blocks": {"type": "array", "items": {"type": "object"}},
                        "orphaned": {
                            "type": "object",
                            "description": "Rows rolled back per event family (transfers, controls).",
                        },
                    },
                },
            }
        },
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "database_unavailable"]},
            "database": {"type": "string", "enum": ["up", "down"]},
            "error": {"type": "string"},
        },
    },
    "ControlEvent": {
        "type": "object",
        "required": [
            "chain",
            "block_number",
            "block_hash",
            "tx_hash",
            "log_index",
            "kind",
            "event",
            "address",
        ],
        "properties": {
            "chain": {"type": "string"},
            "block_number": {"type": "integer"},
            "block_hash": {"type": "string"},
            "block_time": _nullable({"type": "string", "format": "date-time"}),
            "tx_hash": {"type": "string"},
            "log_index": {"type": "integer"},
            "kind": {"type": "string", "enum": list(CONTROL_KINDS)},
            "event": {"type": "string", "description": "The original event name (e.g. Blacklisted)."},
            "address": {"type": "string", "description": "The emitting contract."},
            "contract": _nullable({"type": "string", "description": "`token` or the watch label."}),
            "subject": _nullable({"type": "string", "description": "The account acted on / the new holder."}),
            "previous": _nullable({"type": "string"}),
            "actor": _nullable({"type": "string"}),
            "role": _nullable({"type": "string"}),
            "amount": _nullable(
                {
                    "type": "object",
                    "required": ["raw"],
                    "properties": {
                        "raw": AMOUNT["properties"]["raw"],
                        "amount": AMOUNT["properties"]["amount"],
                    },
                }
            ),
            "finalized": {"type": "boolean"},
        },
    },
    "ControlEvents": {
        "type": "object",
        "required": ["chain", "order", "limit", "as_of", "coverage", "events", "next_cursor"],
        "properties": {
            "chain": {"type": "string"},
            "order": {"type": "string", "enum": ["desc", "asc"]},
            "limit": {"type": "integer"},
            "as_of": _ref("AsOf"),
            "coverage": _nullable(
                {
                    "type": "object",
                    "description": "Control events are complete from this block up (null: not configured).",
                    "properties": {"from_block": {"type": "integer"}},
                }
            ),
            "events": {"type": "array", "items": _ref("ControlEvent")},
            "next_cursor": _nullable({"type": "string", "description": "null on the last page"}),
        },
    },
    "ContractState": {
        "type": "object",
        "required": ["owner", "pending_owner", "implementation", "admin", "paused"],
        "properties": {
            "address": {"type": "string"},
            "label": {"type": "string"},
            **HOLDERS,
            "paused": {"type": "boolean"},
        },
    },
    "ControlState": {
        "type": "object",
        "description": "The token's state folded from its control events at `block` (null: never set).",
        "required": ["block", "owner", "admin", "implementation", "paused", "frozen", "last_change"],
        "properties": {
            "block": {"type": "integer"},
            **HOLDERS,
            "paused": {"type": "boolean"},
            "frozen": {
                "type": "object",
                "required": ["count", "raw", "amount", "accounts"],
                "properties": {
                    "count": {"type": "integer"},
                    "raw": AMOUNT["properties"]["raw"],
                    "amount": AMOUNT["properties"]["amount"],
                    "accounts": {
                        "type": "array",
                        "description": "The largest frozen balances (at most 100).",
                        "items": {
                            "type": "object",
                            "properties": {
                                "address": {"type": "string"},
                                "raw": AMOUNT["properties"]["raw"],
                                "amount": AMOUNT["properties"]["amount"],
                            },
                        },
                    },
                },
            },
            "minters": {"type": "array", "items": {"type": "object"}},
            "roles": {"type": "array", "items": {"type": "object"}},
            "watched": {"type": "array", "items": _ref("ContractState")},
            "last_change": _nullable(
                {
                    "type": "object",
                    "properties": {
                        "block": {"type": "integer"},
                        "block_time": _nullable({"type": "string", "format": "date-time"}),
                        "tx_hash": {"type": "string"},
                        "kind": {"type": "string", "enum": list(CONTROL_KINDS)},
                        "event": {"type": "string"},
                        "address": {"type": "string"},
                    },
                }
            ),
            "events": {"type": "integer"},
        },
    },
    "SignatureCheck": {
        "type": "object",
        "required": ["status", "key_fingerprint", "reason"],
        "properties": {
            "status": {"type": "string", "enum": ["valid", "invalid", "missing", "unconfigured"]},
            "key_fingerprint": _nullable({"type": "string", "description": "sha256: + hex of the raw key"}),
            "reason": _nullable({"type": "string", "description": "why it is not valid"}),
        },
    },
    "Reserves": {
        "type": "object",
        "required": [
            "configured",
            "up",
            "attestation",
            "backing_ratio",
            "age_seconds",
            "next_due",
            "stale",
            "last_success",
            "last_error",
            "signature",
            "latest_signature",
            "at_as_of",
            "now",
            "drift",
            "oracle",
        ],
        "properties": {
            "configured": {"type": "boolean", "description": "false: no `reserves` in the config"},
            "up": {"type": "boolean", "description": "the last read succeeded and was adopted"},
            "attestation": _nullable(
                {
                    "type": "object",
                    "description": "The document in force as read (amounts as exact decimal strings),"
                    " with `reserves_usd`, `by_category`, `by_custodian` and `custodian_concentration`"
                    " (version 2 only, else null).",
                    "required": ["version", "as_of", "assets", "reserves_usd", "by_category"],
                    "properties": {
                        "version": {"type": "integer", "enum": [1, 2]},
                        "as_of": {"type": "string", "format": "date-time"},
                        "assets": {"type": "array", "items": {"type": "object"}},
                        "reserves_usd": {"type": "string"},
                        "by_category": {"type": "object", "additionalProperties": {"type": "string"}},
                        "by_custodian": _nullable(
                            {"type": "object", "additionalProperties": {"type": "string"}}
                        ),
                        "custodian_concentration": _nullable({"type": "string"}),
                    },
                }
            ),
            "backing_ratio": _nullable(
                {
                    "type": "string",
                    "description": "reserves / global circulating supply at the finalized blocks"
                    " (the same figure as `now.coverage`)",
                }
            ),
            "age_seconds": _nullable({"type": "integer"}),
            "next_due": _nullable({"type": "string", "format": "date-time"}),
            "stale": {"type": "boolean", "description": "past next_due"},
            "last_success": _nullable({"type": "string", "format": "date-time"}),
            "last_error": _nullable({"type": "string"}),
            "signature": _nullable(_ref("SignatureCheck")),
            "latest_signature": _nullable(_ref("SignatureCheck")),
            "at_as_of": _nullable(
                {
                    "type": "object",
                    "description": "Reserves against the global circulating supply at the attestation's"
                    " as_of (the audited figure): per chain the last block at or before as_of, each"
                    " token counted once. null before the first computation; `circulating` and `ratio`"
                    " null with `reason` when as_of is not final on every chain or before a chain's index.",
                    "required": ["as_of", "circulating", "ratio", "circulating_exact", "blocks", "reason"],
                    "properties": {
                        "as_of": {"type": "string", "format": "date-time"},
                        "circulating": _nullable(_ref("SupplyFigure")),
                        "ratio": _nullable(
                            {"type": "string", "description": "reserves / circulating at as_of"}
                        ),
                        "circulating_exact": _nullable(
                            {
                                "type": "boolean",
                                "description": "false: frozen balances unknown on some chain, counted as"
                                " circulating (the ratio is then a lower bound)",
                            }
                        ),
                        "blocks": {
                            "type": "object",
                            "description": "Per chain, the block the figure is taken at.",
                            "additionalProperties": {
                                "type": "object",
                                "required": ["number", "hash", "time"],
                                "properties": {
                                    "number": {"type": "integer"},
                                    "hash": {"type": "string"},
                                    "time": {"type": "string", "format": "date-time"},
                                },
                            },
                        },
                        "reason": _nullable({"type": "string", "description": "why the figure is unknown"}),
                    },
                }
            ),
            "now": _nullable(
                {
                    "type": "object",
                    "required": ["finality", "circulating", "coverage"],
                    "properties": {
                        "finality": {"type": "string", "enum": ["finalized"]},
                        "circulating": _nullable(_ref("SupplyFigure")),
                        "coverage": _nullable(
                            {"type": "string", "description": "reserves / circulating now"}
                        ),
                    },
                }
            ),
            "drift": _nullable(
                {
                    "allOf": [_ref("SupplyFigure")],
                    "description": "Circulating now - circulating at as_of (positive: issued since).",
                }
            ),
            "oracle": _ref("ReservesOracle"),
        },
    },
    "ReservesOracle": {
        "type": "object",
        "description": "The on-chain proof-of-reserve feed (`reserves.oracle`; Chainlink AggregatorV3"
        " `latestRoundData`): its last valid round, kept while later reads fail (`up` false, `last_error`).",
        "required": [
            "configured",
            "chain",
            "address",
            "up",
            "answer",
            "decimals",
            "round_id",
            "updated_at",
            "age_seconds",
            "stale",
            "block",
            "vs_attestation",
            "coverage",
            "last_error",
        ],
        "properties": {
            "configured": {"type": "boolean", "description": "false: no `reserves.oracle` in the config"},
            "chain": _nullable({"type": "string"}),
            "address": _nullable({"type": "string"}),
            "up": {"type": "boolean", "description": "the last read gave a valid round"},
            "answer": _nullable(
                {
                    "type": "string",
                    "pattern": r"^[0-9]+(\.[0-9]+)?$",
                    "description": "USD: the round's answer / 10^decimals, exact",
                }
            ),
            "decimals": _nullable({"type": "integer"}),
            "round_id": _nullable(
                {"type": "string", "pattern": "^[0-9]+$", "description": "uint80, as a string"}
            ),
            "updated_at": _nullable({"type": "string", "format": "date-time"}),
            "age_seconds": _nullable({"type": "integer"}),
            "stale": {"type": "boolean", "description": "the round is older than reserves.oracle.max_age"},
            "block": _nullable(
                {
                    "type": "integer",
                    "description": "the finalized height read at (tron: the latest block; null when"
                    " the node moved during the read)",
                }
            ),
            "vs_attestation": _nullable({"type": "string", "description": "answer / attested reserves"}),
            "coverage": _nullable(
                {
                    "type": "string",
                    "description": "answer / global circulating supply at the finalized blocks",
                }
            ),
            "last_error": _nullable({"type": "string"}),
        },
    },
    "SupplyFigure": {
        "type": "object",
        "description": "A global supply in base units of `decimals` (the largest among the chains).",
        "required": ["raw", "amount", "decimals"],
        "properties": {**AMOUNT["properties"], "decimals": {"type": "integer"}},
    },
    "DepegEpisode": {
        "type": "object",
        "required": ["id", "scope", "venue", "started_at", "peak_bps", "peak_at", "ended_at", "open"],
        "properties": {
            "id": {"type": "integer"},
            "scope": {"type": "string", "enum": ["venue", "aggregate"]},
            "venue": _nullable({"type": "string", "description": "null for the aggregate scope"}),
            "started_at": {"type": "string", "format": "date-time"},
            "start_bps": BPS,
            "peak_bps": {
                **BPS,
                "description": "Signed deviation of largest magnitude (below the peg: negative).",
            },
            "peak_at": {"type": "string", "format": "date-time"},
            "ended_at": _nullable({"type": "string", "format": "date-time"}),
            "end_bps": _nullable(BPS),
            "duration_seconds": {
                "type": "string",
                "pattern": r"^[0-9]+(\.[0-9]+)?$",
                "description": "Start to recovery; for an open episode, start to `as_of`.",
            },
            "open": {"type": "boolean"},
        },
    },
    "Depegs": {
        "type": "object",
        "required": ["filters", "limit", "as_of", "episodes", "next_cursor"],
        "properties": {
            "filters": {"type": "object"},
            "limit": {"type": "integer"},
            "as_of": {"type": "string", "format": "date-time"},
            "episodes": {"type": "array", "items": _ref("DepegEpisode")},
            "next_cursor": _nullable({"type": "string"}),
        },
    },
    "SupplyAt": {
        "type": "object",
        "required": ["token", "time", "chains", "global", "provenance"],
        "properties": {
            "token": {"type": "string"},
            "time": {"type": "string", "format": "date-time"},
            "chains": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["chain", "decimals", "status", "block", "total", "classes", "index"],
                    "properties": {
                        "chain": {"type": "string"},
                        "decimals": {"type": "integer"},
                        "status": {"type": "string", "enum": ["indexed", "not_indexed"]},
                        "reason": {
                            "type": "string",
                            "description": "Why the chain is not_indexed at the time.",
                        },
                        "block": _nullable(
                            {
                                "type": "object",
                                "description": "The last block the store knows at or before the time (the"
                                " supply is the same at every block up to the next one with token events).",
                                "required": ["number", "hash", "time", "final"],
                                "properties": {
                                    "number": {"type": "integer"},
                                    "hash": {"type": "string"},
                                    "time": {"type": "string", "format": "date-time"},
                                    "final": {"type": "boolean"},
                                },
                            }
                        ),
                        "total": _nullable(_ref("Amount")),
                        "classes": _nullable(
                            {
                                "type": "object",
                                "required": [
                                    "non_circulating",
                                    "frozen",
                                    "circulating",
                                    "frozen_status",
                                    "circulating_exact",
                                ],
                                "properties": {
                                    "non_circulating": {"type": "object"},
                                    "frozen": _nullable(_ref("Amount")),
                                    "circulating": _ref("Amount"),
                                    "frozen_status": {
                                        "type": "string",
                                        "enum": ["derived", "not_decoded", "coverage_incomplete"],
                                        "description": "derived: from the control events folded at the block;"
                                        " otherwise frozen is null and circulating counts frozen balances.",
                                    },
                                    "frozen_note": _nullable({"type": "string"}),
                                    "circulating_exact": {"type": "boolean"},
                                },
                            }
                        ),
                        "index": {
                            "type": "object",
                            "properties": {
                                "complete": {"type": "boolean"},
                                "start_block": {"type": "integer"},
                                "transfers_from_block": _nullable({"type": "integer"}),
                                "controls_from_block": _nullable({"type": "integer"}),
                            },
                        },
                    },
                },
            },
            "global": {
                "type": "object",
                "required": ["decimals", "total", "circulating", "complete", "circulating_exact"],
                "properties": {
                    "decimals": {"type": "integer"},
                    "total": _ref("Amount"),
                    "circulating": _ref("Amount"),
                    "chains_counted": {"type": "array", "items": {"type": "string"}},
                    "complete": {"type": "boolean"},
                    "circulating_exact": {"type": "boolean"},
                    "bridges_deduplicated": {"type": "boolean"},
                    "bridges": {
                        "type": "object",
                        "description": 'Per configured bridge at TIME (README "Bridges").',
                        "additionalProperties": {
                            "type": "object",
                            "required": [
                                "decimals",
                                "native_chains",
                                "bridged_chains",
                                "minted",
                                "locked",
                                "gap",
                            ],
                            "properties": {
                                "decimals": {"type": "integer"},
                                "native_chains": {"type": "array", "items": {"type": "string"}},
                                "bridged_chains": {"type": "array", "items": {"type": "string"}},
                                "in_flight_allowance": _ref("Amount"),
                                **{
                                    k: _nullable({"allOf": [_ref("Amount")]})
                                    for k in ("minted", "locked", "gap")
                                },
                            },
                        },
                    },
                },
            },
            "provenance": {
                "type": "object",
                "required": ["indexer_version", "generated_at", "finalized", "index_complete"],
                "properties": {
                    "indexer_version": {"type": "string"},
                    "generated_at": {"type": "string", "format": "date-time"},
                    "finalized": {"type": "object"},
                    "index_complete": {"type": "object"},
                },
            },
        },
    },
    "Controls": {
        "type": "object",
        "required": ["chains"],
        "properties": {
            "chains": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["chain", "enabled", "contracts", "coverage", "as_of", "head", "finalized"],
                    "properties": {
                        "chain": {"type": "string"},
                        "enabled": {"type": "boolean"},
                        "contracts": {"type": "array", "items": {"type": "object"}},
                        "coverage": _nullable(
                            {
                                "type": "object",
                                "properties": {
                                    "from_block": {"type": "integer"},
                                    "complete": {
                                        "type": "boolean",
                                        "description": "false until `backfill --family controls` filled it"
                                        " in down to the chain's start block",
                                    },
                                },
                            }
                        ),
                        "as_of": _ref("AsOf"),
                        "head": _nullable(_ref("ControlState")),
                        "finalized": _nullable(_ref("ControlState")),
                        "check": _nullable(
                            {
                                "type": "object",
                                "description": "The last check of the finalized state against the chain"
                                " (null when this process does not follow the chain)",
                            }
                        ),
                    },
                },
            }
        },
    },
}


def _json(schema: str, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


BAD = _json("Error", "Bad input: unknown, repeated or invalid parameter, unknown chain, bad cursor.")

OPERATIONS: dict[str, tuple[str, str, dict[str, Schema]]] = {
    "/healthz": (
        "Liveness",
        "health",
        {
            "200": _json("Health", "Alive."),
            "503": _json("Health", "The database has been unreachable past database.unavailable_limit."),
        },
    ),
    "/api/v1/supply": (
        "Supply per chain and in total, at the head and at the finalized block",
        "supply",
        {"200": _json("Supply", "Supply.")},
    ),
    "/api/v1/status": ("Indexing status per chain", "status", {"200": _json("Status", "Status.")}),
    "/api/v1/supply/history": (
        "Cumulative supply per time bucket (the last value in each bucket, carried forward)",
        "supplyHistory",
        {"200": _json("SupplyHistory", "Supply history.")},
    ),
    "/api/v1/supply/at": (
        "The attestation package: per chain the last block at or before `time`, the supply and its classes"
        " there, the global figures and provenance (400 when `time` is above what is final on a chain)",
        "supplyAt",
        {"200": _json("SupplyAt", "Supply at the time.")},
    ),
    "/api/v1/transfers": (
        "Token events (mints, burns, transfers), keyset-paginated",
        "transfers",
        {"200": _json("Transfers", "One page of events.")},
    ),
    "/api/v1/tx/{chain}/{hash}": (
        "Every token event of one transaction",
        "tx",
        {
            "200": _json("Tx", "The transaction's events."),
            "404": _json("Error", "No token event in this transaction."),
        },
    ),
    "/api/v1/accounts/{chain}/{address}": (
        "Balance of an account at the head, at the finalized block and optionally at a block",
        "account",
        {"200": _json("Account", "Balances.")},
    ),
    "/api/v1/controls": (
        "Who controls the token: owner, proxy admin and implementation, paused, frozen accounts, per chain"
        " at the head and at the finalized block, with the controls coverage",
        "controls",
        {"200": _json("Controls", "Contract state per chain.")},
    ),
    "/api/v1/control-events": (
        "Control events (ownership, upgrades, pauses, roles, freezes and blacklists), keyset-paginated",
        "controlEvents",
        {"200": _json("ControlEvents", "One page of control events.")},
    ),
    "/api/v1/reorgs": (
        "Reorganisations the indexer has handled, newest first",
        "reorgs",
        {"200": _json("Reorgs", "Reorgs.")},
    ),
    "/api/v1/reserves": (
        "The reserve attestation in force (versions 1 and 2), its backing ratio, age, next due time"
        " and signature status (valid | invalid | missing | unconfigured), and the on-chain"
        " proof-of-reserve feed compared with it and with the circulating supply",
        "reserves",
        {"200": _json("Reserves", "Reserves.")},
    ),
    "/api/v1/depegs": (
        "Depeg episodes per venue and across venues (start, peak deviation and time, recovery, duration),"
        " newest first, keyset-paginated",
        "depegs",
        {
            "200": {
                "description": "One page of episodes.",
                "content": {
                    "application/json": {"schema": _ref("Depegs")},
                    "text/csv": {"schema": {"type": "string"}},
                },
            }
        },
    ),
    "/api/openapi.json": (
        "This document",
        "openapi",
        {
            "200": {
                "description": "OpenAPI 3.0 document.",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    ),
}


def document(title: str = "usd1-indexer API") -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path, (summary, op_id, responses) in OPERATIONS.items():
        params = PATH_PARAMS.get(path, []) + QUERY_PARAMS[path]
        op: dict[str, Any] = {"summary": summary, "operationId": op_id, "responses": dict(responses)}
        if params:
            op["parameters"] = params
        op["responses"]["400"] = BAD
        if path.startswith("/api/v1/"):
            op["responses"]["503"] = _json(
                "Error",
                "The database is unavailable (try again shortly), or a query exceeded the statement"
                " timeout (narrow the filters).",
            )
        paths[path] = {"get": op}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": title,
            "version": __version__,
            "description": (
                "Amounts are strings: `raw` integer base units and `amount` exact decimal tokens. Every "
                "answer says which finality it reflects: `as_of` gives the indexed head (`block`) and the "
                "`finalized_block`; events carry `finalized`. Unknown or repeated parameters and invalid "
                'values are answered 400 with {"error": ...}.'
            ),
        },
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }
