"""USD1 controls and market risk: who controls the token per chain, and the early-warning signals
(pool composition, flows against supply, large events, watchlist hits, DEX versus CEX).

Build: `usd1-indexer dashboards build` (or indexer.dashboards.build) -> dashboards/build/risk.json
"""

from indexer.dashboards import chain_variable, stat, state_timeline, target, timeseries, venue_variable
from indexer.dashboards import dashboard as make_dashboard

C = 'chain=~"$chain"'
V = 'venue=~"$venue"'
SUPPLY = 'max(usd1_supply_total{finality="finalized"})'
PAUSED = {"1": ("PAUSED", "red"), "0": ("running", "green")}
SHARE = (("red", None), ("orange", 0.3), ("green", 0.35), ("orange", 0.65), ("red", 0.7))

controls_now = [
    stat(
        "Owner, admin, implementation",
        "The token's current owner, proxy admin and implementation per chain at the indexed head "
        "(labels of usd1_control_info). A change pages: USD1OwnershipTransferred, "
        "USD1ProxyAdminChanged, USD1ImplementationUpgraded.",
        [
            target(
                f"max by (chain, owner, admin, implementation) (usd1_control_info{{{C}}})",
                "{{chain}}: owner {{owner}} | admin {{admin}} | implementation {{implementation}}",
                instant=True,
            )
        ],
        unit="none",
        text_mode="name",
    ),
    stat(
        "Frozen accounts",
        "Frozen or blacklisted accounts per chain at the indexed head (usd1_frozen_accounts). Each "
        "freeze is a ticket (USD1AccountFrozen); 10 in an hour page (USD1FreezeSurge).",
        [target(f"sum by (chain) (usd1_frozen_accounts{{{C}}})", "{{chain}}")],
        unit="none",
    ),
    stat(
        "Frozen tokens",
        "USD1 held by frozen accounts per chain at the indexed head (usd1_frozen_tokens). Up by 1% of "
        "the chain's supply within an hour: USD1FreezeSurge.",
        [target(f"sum by (chain) (usd1_frozen_tokens{{{C}}})", "{{chain}}")],
        unit="short",
        decimals=2,
    ),
    stat(
        "Last privileged change",
        "Time since the newest ownership, proxy, pause, role or authority event at the indexed head, "
        "per chain (block time, usd1_last_control_event_timestamp_seconds; freezes and minter "
        "allowances excluded). Under an hour: its alert is firing.",
        [
            target(
                f"time() - max by (chain) (usd1_last_control_event_timestamp_seconds{{{C},"
                'kind!~"frozen|unfrozen|frozen_funds_destroyed|minter_configured|authority_changed"} > 0)',
                "{{chain}}",
            )
        ],
        unit="s",
        thresholds=(("red", None), ("orange", 3600.0), ("green", 86400.0)),
    ),
]

controls_time = [
    state_timeline(
        "Paused",
        "Whether the token is paused per chain at the indexed head (usd1_paused). PAUSED pages: "
        "USD1TokenPaused.",
        [target(f"max by (chain) (usd1_paused{{{C}}})", "{{chain}}")],
        mappings=PAUSED,
    ),
    timeseries(
        "Control events per hour (finalized)",
        "Finalized control events per chain and kind in each hour (usd1_control_events_total): "
        "ownership, proxy, pause, role, freeze and authority events (kinds: VOCAB in the design).",
        [
            target(
                f"sum by (chain, kind) (increase(usd1_control_events_total{{{C}}}[1h])) > 0",
                "{{chain}} {{kind}}",
            )
        ],
        unit="none",
        bars=True,
        stacked=True,
        min_value=0,
    ),
    timeseries(
        "Control state mismatches",
        "1 while the stored contract state disagrees with the chain at the finalized block, per "
        "chain and field (usd1_control_mismatch). For 5 m: USD1ControlMismatch pages.",
        [target(f"max by (chain, field) (usd1_control_mismatch{{{C}}})", "{{chain}} {{field}}")],
        unit="none",
        thresholds=(("green", None), ("red", 1.0)),
        min_value=0,
    ),
]

pools = [
    timeseries(
        "Pool token share",
        "USD1's share of each pool's value (usd1_pool_token_share; USD1 at the peg, the quote at its "
        "USD value). Outside 30-70% for 15 m: USD1PoolImbalance; 10 points in an hour: "
        "USD1PoolShareShift.",
        [target(f"usd1_pool_token_share{{{V}}}", "{{venue}}")],
        unit="percentunit",
        thresholds=SHARE,
        show_thresholds=True,
        decimals=3,
    ),
    timeseries(
        "Pool value",
        "Each pool's value in USD (usd1_pool_tvl_usd, nominal: V2 reserves, V3 the pool's balances). "
        "Below half of its 24-hour maximum for 15 m: USD1PoolTvlDrop.",
        [target(f"usd1_pool_tvl_usd{{{V}}}", "{{venue}}")],
        unit="currencyUSD",
        min_value=0,
    ),
    timeseries(
        "Deviation by venue kind",
        "Average peg deviation of the pool venues and of the order books (usd1_peg_deviation_bps by "
        "usd1_venue_info kind). More than 50 bps apart for 5 m: USD1DexCexDivergence.",
        [
            target(
                f"avg by (kind) (usd1_peg_deviation_bps{{{V}}} * on(venue) group_left(kind) usd1_venue_info)",
                "{{kind}}",
            )
        ],
        unit="suffix: bps",
        thresholds=(("green", None), ("orange", 50.0)),
        decimals=1,
    ),
]

flows = [
    timeseries(
        "Burns as a share of supply",
        "Finalized burns over the trailing hour and day as a share of finalized supply over all "
        "chains (usd1_burned_tokens_total / usd1_supply_total). 0.15% an hour for 2 h: "
        "USD1RedemptionPace; 2% a day and 3x the 30-day average: USD1RedemptionSurge.",
        [
            target(f"sum(increase(usd1_burned_tokens_total{{{C}}}[1h])) / {SUPPLY}", "per hour"),
            target(f"sum(increase(usd1_burned_tokens_total{{{C}}}[1d])) / {SUPPLY}", "per day"),
        ],
        unit="percentunit",
        thresholds=(("green", None), ("orange", 0.0015), ("red", 0.02)),
        show_thresholds=True,
        decimals=3,
        min_value=0,
    ),
    timeseries(
        "Mints and burns per day",
        "Finalized mints and burns over the trailing 24 hours over all chains "
        "(usd1_minted_tokens_total, usd1_burned_tokens_total). 5% of supply minted in a day and 3x "
        "the average: USD1MintSurge.",
        [
            target(f"sum(increase(usd1_minted_tokens_total{{{C}}}[1d]))", "minted"),
            target(f"sum(increase(usd1_burned_tokens_total{{{C}}}[1d]))", "burned"),
        ],
        unit="short",
        min_value=0,
    ),
    timeseries(
        "Large mints and burns",
        "Single mints or burns of at least the chain's large_event_tokens committed at the head, per "
        "hour (usd1_large_events_total). Any: USD1LargeMintOrBurn.",
        [
            target(
                f"sum by (chain, kind) (increase(usd1_large_events_total{{{C}}}[1h]))",
                "{{chain}} {{kind}}",
            )
        ],
        unit="none",
        bars=True,
        min_value=0,
    ),
    timeseries(
        "Watchlist hits",
        "Transfers from or to addresses on each watchlist per hour, and the USD1 they moved "
        "(usd1_watchlist_transfers_total, usd1_watchlist_tokens_total). Any: USD1WatchlistTransfer.",
        [
            target(
                f"sum by (chain, list) (increase(usd1_watchlist_transfers_total{{{C}}}[1h]))",
                "{{chain}} {{list}} transfers",
            ),
            target(
                f"sum by (chain, list) (increase(usd1_watchlist_tokens_total{{{C}}}[1h]))",
                "{{chain}} {{list}} USD1",
            ),
        ],
        unit="short",
        bars=True,
        min_value=0,
    ),
]

dashboard = make_dashboard(
    title="USD1 / Controls and market risk",
    uid="usd1-risk",
    description="Who controls the token per chain (owner, admin, implementation, paused, frozen, events "
    "over time) and the early-warning signals: pool composition, flows against supply, large events, "
    "watchlist hits, DEX versus CEX.",
    variables=[chain_variable(), venue_variable()],
    sections=[
        ("Controls", [controls_now, controls_time]),
        ("Market risk", [pools, flows]),
    ],
)
