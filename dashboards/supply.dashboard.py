"""USD1 supply: total and per-chain supply (finalized vs head), issuance, reconciliation, backing.

Build: `usd1-indexer dashboards build` (or indexer.dashboards.build) -> dashboards/build/supply.json
"""

from indexer.dashboards import chain_variable, stat, target, timeseries
from indexer.dashboards import dashboard as make_dashboard

C = 'chain=~"$chain"'
BACKING = (("red", None), ("orange", 1.0), ("green", 1.005))
MISMATCH = (("green", None), ("red", 0.000001))

totals = [
    stat(
        "Total supply (finalized)",
        "USD1 supply over all configured chains at each chain's finalized block "
        "(usd1_supply_total{finality=finalized}). This is the number the transparency page publishes.",
        [target('max(usd1_supply_total{finality="finalized"})', "finalized")],
        unit="short",
        decimals=2,
    ),
    stat(
        "Total supply (head)",
        "USD1 supply over all chains including unfinalized blocks up to each chain's head; may still "
        "change with a reorg.",
        [target('max(usd1_supply_total{finality="head"})', "head")],
        unit="short",
        decimals=2,
    ),
    stat(
        "Unfinalized supply change",
        "Head supply minus finalized supply over all chains: net mints minus burns not yet final.",
        [
            target(
                'max(usd1_supply_total{finality="head"}) - max(usd1_supply_total{finality="finalized"})',
                "head - finalized",
            )
        ],
        unit="short",
        decimals=2,
    ),
    stat(
        "Backing ratio at as_of",
        "Attested reserves (USD) divided by the circulating supply at the attestation's as_of "
        "(usd1_backing_ratio_at_as_of, the audited figure). Red below 100%: alert "
        "USD1BackingRatioBelowOne. No value while as_of is not final on every chain; 0 when no "
        "reserves source is configured.",
        [target("max(usd1_backing_ratio_at_as_of)", "ratio at as_of")],
        unit="percentunit",
        thresholds=BACKING,
        decimals=2,
    ),
    stat(
        "Chains with a supply mismatch",
        "Chains whose indexed finalized supply differs from the chain's own totalSupply at the check "
        "block (|usd1_supply_mismatch_tokens| > 1e-6). Anything but 0 is an incident: "
        "alert USD1SupplyMismatch.",
        [target("count(abs(usd1_supply_mismatch_tokens) > 0.000001) or vector(0)", "chains")],
        unit="none",
        thresholds=(("green", None), ("red", 1.0)),
    ),
]

per_chain = [
    timeseries(
        "Supply per chain: finalized vs head",
        "Indexed USD1 supply per chain at the finalized block (solid) and at the head (may change "
        "with reorgs). A persistent gap means mints or burns are waiting for finality.",
        [
            target(f'sum by (chain) (usd1_supply{{{C},finality="finalized"}})', "{{chain}} finalized"),
            target(f'sum by (chain) (usd1_supply{{{C},finality="head"}})', "{{chain}} head"),
        ],
        unit="short",
    ),
    timeseries(
        "Total supply",
        "USD1 supply summed over all chains, finalized and head.",
        [target("max by (finality) (usd1_supply_total)", "{{finality}}")],
        unit="short",
    ),
]

issuance = [
    timeseries(
        "Minted per hour",
        "Finalized USD1 minted per chain over the trailing hour "
        "(increase of usd1_minted_tokens_total). Above max(10% of the chain's supply, 1M): "
        "alert USD1SupplyJump.",
        [target(f"sum by (chain) (increase(usd1_minted_tokens_total{{{C}}}[1h]))", "{{chain}}")],
        unit="short",
        thresholds=(("green", None), ("orange", 1_000_000.0)),
        show_thresholds=True,
        min_value=0,
    ),
    timeseries(
        "Burned per hour",
        "Finalized USD1 burned per chain over the trailing hour (increase of usd1_burned_tokens_total).",
        [target(f"sum by (chain) (increase(usd1_burned_tokens_total{{{C}}}[1h]))", "{{chain}}")],
        unit="short",
        thresholds=(("green", None), ("orange", 1_000_000.0)),
        show_thresholds=True,
        min_value=0,
    ),
    timeseries(
        "Mint and burn events per hour",
        "Number of finalized mint and burn events per chain over the trailing hour (usd1_events_total).",
        [
            target(
                f'sum by (chain, kind) (increase(usd1_events_total{{{C},kind=~"mint|burn"}}[1h]))',
                "{{chain}} {{kind}}",
            )
        ],
        unit="short",
        min_value=0,
    ),
]

reconciliation = [
    timeseries(
        "Supply mismatch per chain",
        "Indexed finalized supply minus the chain's own totalSupply at the same block, in USD1 "
        "(usd1_supply_mismatch_tokens). Amounts are exact: any value other than 0 means missed or "
        "doubled events, or a token with non-standard supply changes.",
        [target(f"usd1_supply_mismatch_tokens{{{C}}}", "{{chain}}")],
        unit="short",
        thresholds=MISMATCH,
        show_thresholds=True,
        decimals=6,
    ),
    timeseries(
        "Reconciliation check block",
        "Block (or slot) at which each chain's supply was last reconciled (usd1_supply_check_block). "
        "It should follow the finalized block; a flat line means reconciliation stopped.",
        [target(f"usd1_supply_check_block{{{C}}}", "{{chain}}")],
        unit="none",
    ),
]

backing = [
    timeseries(
        "Backing ratio",
        "Attested reserves / circulating supply at the attestation's as_of "
        "(usd1_backing_ratio_at_as_of) and now, at the finalized blocks (usd1_backing_coverage; "
        "below 100% with supply issued since as_of: USD1BackingCoverageBelowOne); the line marks 100%.",
        [
            target("max(usd1_backing_ratio_at_as_of)", "at as_of"),
            target("max(usd1_backing_coverage)", "coverage now"),
        ],
        unit="percentunit",
        thresholds=BACKING,
        show_thresholds=True,
        decimals=3,
    ),
    timeseries(
        "Reserves vs finalized supply",
        "Attested reserves in USD (usd1_reserves_usd) against finalized total supply (1 USD1 = 1 USD).",
        [
            target("max(usd1_reserves_usd)", "reserves (USD)"),
            target('max(usd1_supply_total{finality="finalized"})', "finalized supply"),
        ],
        unit="currencyUSD",
    ),
    timeseries(
        "Reserve attestation age",
        "Age of the latest reserve attestation (usd1_reserves_age_seconds). When it is stale depends on "
        "the attestation cadence: see the time to the next due attestation.",
        [target("max(usd1_reserves_age_seconds)", "age")],
        unit="s",
        min_value=0,
    ),
    timeseries(
        "Time to the next attestation due",
        "usd1_reserves_next_due_timestamp_seconds - time(): the latest as_of plus reserves.cadence plus "
        "reserves.grace (or plus reserves.max_age without a cadence). Below 0 the attestation is "
        "overdue; alert USD1ReservesStale after an hour.",
        [target("max(usd1_reserves_next_due_timestamp_seconds) - time()", "time to due")],
        unit="s",
        thresholds=(("red", None), ("green", 0.0)),
        show_thresholds=True,
    ),
    stat(
        "Attestation signature",
        "Whether the last attestation read carried a detached Ed25519 signature that verifies with "
        "reserves.public_key (usd1_reserves_signature_valid). Unverified also when no key is "
        "configured; with a key, an unverified document is not adopted (see /api/v1/reserves).",
        [target("max(usd1_reserves_signature_valid)", "signature")],
        unit="none",
        thresholds=(("orange", None), ("green", 1.0)),
        mappings={"1": ("verified", "green"), "0": ("unverified", "orange")},
    ),
    stat(
        "Largest custodian's share",
        "Share of attested reserves held by the largest custodian "
        "(usd1_reserves_custodian_concentration_ratio; schema v2 attestations, empty for v1). "
        "Orange above 75%: alert USD1ReservesCustodianConcentration.",
        [target("max(usd1_reserves_custodian_concentration_ratio)", "largest custodian")],
        unit="percentunit",
        thresholds=(("green", None), ("orange", 0.75)),
        decimals=1,
    ),
    timeseries(
        "Proof-of-reserve feed",
        "Reserves reported by the on-chain feed (reserves.oracle; usd1_reserves_oracle_usd) against the "
        "attested reserves and the global circulating supply at the finalized blocks (1 USD1 = 1 USD). "
        "Empty or 0 without a feed configured.",
        [
            target("max(usd1_reserves_oracle_usd)", "feed (USD)"),
            target("max(usd1_reserves_usd)", "attested (USD)"),
            target('max(usd1_supply_circulating_total{finality="finalized"})', "circulating (finalized)"),
        ],
        unit="currencyUSD",
    ),
    timeseries(
        "Feed coverage and agreement",
        "Feed / circulating supply (usd1_reserves_oracle_coverage; below 100%: alert "
        "USD1ReservesOracleBelowCirculating) and feed / attestation "
        "(usd1_reserves_oracle_vs_attestation_ratio; more than 1% off for an hour: alert "
        "USD1ReservesOracleAttestationMismatch).",
        [
            target("max(usd1_reserves_oracle_coverage)", "feed / circulating"),
            target("max(usd1_reserves_oracle_vs_attestation_ratio)", "feed / attestation"),
        ],
        unit="percentunit",
        thresholds=BACKING,
        show_thresholds=True,
        decimals=3,
    ),
    timeseries(
        "Bridge backing gap",
        "Per bridge: minted on its bridged chains minus locked (bridge_lock) on its native chains minus "
        "the in-flight allowance, at the finalized blocks (usd1_bridge_backing_gap_tokens). Above 0 the "
        'bridged chains are under-backed: alert USD1BridgeUnderBacked (README "Bridges").',
        [target("usd1_bridge_backing_gap_tokens", "{{bridge}}")],
        unit="short",
        thresholds=(("green", None), ("red", 1e-18)),  # one base unit above 0 at 18 dp
        show_thresholds=True,
        decimals=6,
    ),
]

dashboard = make_dashboard(
    title="USD1 / Supply",
    uid="usd1-supply",
    description="USD1 supply per chain (finalized vs head), issuance, reconciliation and backing.",
    variables=[chain_variable()],
    sections=[
        ("Totals", [totals]),
        ("Supply per chain", [per_chain]),
        ("Mints and burns", [issuance]),
        ("Reconciliation", [reconciliation]),
        ("Reserves and backing", [backing]),
    ],
)
