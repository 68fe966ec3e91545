"""usd1-indexer health: progress and lag per chain, chain state, reorgs, RPC, throughput, database.

Build: `usd1-indexer dashboards build` (or indexer.dashboards.build) -> dashboards/build/health.json
"""

from indexer.dashboards import chain_variable, stat, state_timeline, target, timeseries
from indexer.dashboards import dashboard as make_dashboard

C = 'chain=~"$chain"'
LAG = (("green", None), ("orange", 60.0), ("red", 120.0))  # 120 s: the default lag budget
UP_DOWN = {"1": ("UP", "green"), "0": ("DOWN", "red")}
RPC_ERRORS = f'usd1_rpc_requests_total{{{C},outcome!="ok"}}'
RPC_ALL = f"usd1_rpc_requests_total{{{C}}}"

now = [
    stat(
        "Daemon up",
        'Prometheus scrape health of the daemon (up{job="usd1-indexer"}); the scrape job must be '
        "named usd1-indexer. DOWN: alert USD1IndexerDown.",
        [target('min(up{job="usd1-indexer"})', "up")],
        unit="none",
        mappings=UP_DOWN,
        thresholds=(("red", None), ("green", 1.0)),
        color_mode="background",
    ),
    stat(
        "Database up",
        "Whether the daemon's last PostgreSQL operation succeeded (usd1_database_up). DOWN for 3 m: "
        "alert USD1DatabaseDown.",
        [target("min(usd1_database_up)", "database")],
        unit="none",
        mappings=UP_DOWN,
        thresholds=(("red", None), ("green", 1.0)),
        color_mode="background",
    ),
    stat(
        "Chain state",
        "Current follower state per chain (usd1_chain_state == 1): backfill, live, stalled or halted.",
        [target(f"usd1_chain_state{{{C}}} == 1", "{{chain}}: {{state}}")],
        unit="none",
        text_mode="name",
        thresholds=(("green", None),),
    ),
    stat(
        "Chains stalled or halted",
        "Chains whose follower is stalled or halted. Halted follows a finality violation and needs "
        "an operator.",
        [target(f'sum(usd1_chain_state{{{C},state=~"stalled|halted"}}) or vector(0)', "chains")],
        unit="none",
        thresholds=(("green", None), ("red", 1.0)),
    ),
    stat(
        "Finality violations",
        "Chains halted because a reorg reached below their finalized height (usd1_finality_violation). "
        "Anything but 0 pages: alert USD1FinalityViolation.",
        [target(f"sum(usd1_finality_violation{{{C}}}) or vector(0)", "violations")],
        unit="none",
        thresholds=(("green", None), ("red", 1.0)),
    ),
]

progress = [
    timeseries(
        "Block height by stage",
        "Chain head, last indexed and finalized block (or slot) per chain (usd1_block_number).",
        [target(f"usd1_block_number{{{C}}}", "{{chain}} {{stage}}")],
        unit="none",
    ),
    timeseries(
        "Blocks behind head",
        "Head minus indexed block (indexing backlog) and head minus finalized block (the chain's "
        "finality distance) per chain.",
        [
            target(
                f'max by (chain) (usd1_block_number{{{C},stage="head"}})'
                f' - max by (chain) (usd1_block_number{{{C},stage="indexed"}})',
                "{{chain}} head - indexed",
            ),
            target(
                f'max by (chain) (usd1_block_number{{{C},stage="head"}})'
                f' - max by (chain) (usd1_block_number{{{C},stage="finalized"}})',
                "{{chain}} head - finalized",
            ),
        ],
        unit="none",
        min_value=0,
    ),
    timeseries(
        "Lag",
        "Seconds since the indexer last confirmed it had indexed the head it observed "
        "(usd1_lag_seconds). The line marks the default 120 s budget (alert USD1LagOverBudget).",
        [target(f"usd1_lag_seconds{{{C}}}", "{{chain}}")],
        unit="s",
        thresholds=LAG,
        show_thresholds=True,
        min_value=0,
    ),
]

state = [
    state_timeline(
        "Chain state over time",
        "Which follower state each chain was in (usd1_chain_state == 1), one row per chain and state.",
        [target(f"usd1_chain_state{{{C}}} == 1", "{{chain}} {{state}}")],
        mappings={"1": ("active", "green")},
    ),
    timeseries(
        "Time since last sync step",
        "Seconds since each follower's last successful sync step "
        "(time() - usd1_last_sync_timestamp_seconds).",
        [target(f"time() - usd1_last_sync_timestamp_seconds{{{C}}}", "{{chain}}")],
        unit="s",
        thresholds=LAG,
        show_thresholds=True,
        min_value=0,
    ),
    timeseries(
        "Follower restarts",
        "Follower crashes restarted by the supervisor per chain over the trailing 15 minutes "
        "(usd1_follower_restarts_total). More than 3: alert USD1FollowerCrashLooping.",
        [target(f"sum by (chain) (increase(usd1_follower_restarts_total{{{C}}}[15m]))", "{{chain}}")],
        unit="short",
        thresholds=(("green", None), ("red", 3.0)),
        show_thresholds=True,
        min_value=0,
    ),
]

reorgs = [
    timeseries(
        "Reorgs per hour",
        "Chain reorganisations handled per chain over the trailing hour (usd1_reorgs_total).",
        [target(f"sum by (chain) (increase(usd1_reorgs_total{{{C}}}[1h]))", "{{chain}}")],
        unit="short",
        min_value=0,
    ),
    timeseries(
        "Reorg depth distribution",
        "Reorgs handled over the trailing hour by depth bucket (usd1_reorg_depth_blocks, cumulative: "
        "each bar counts reorgs at most that deep). Deeper than 4 blocks: alert USD1DeepReorg.",
        [
            target(
                f"sum by (le) (increase(usd1_reorg_depth_blocks_bucket{{{C}}}[1h]))",
                "<= {{le}} blocks",
            )
        ],
        unit="short",
        bars=True,
        min_value=0,
    ),
    timeseries(
        "Deepest reorg (p99)",
        "99th percentile of handled reorg depth per chain over the trailing hour; empty when there "
        "were no reorgs.",
        [
            target(
                "histogram_quantile(0.99, sum by (chain, le) "
                f"(increase(usd1_reorg_depth_blocks_bucket{{{C}}}[1h])))",
                "{{chain}} p99",
            )
        ],
        unit="none",
        thresholds=(("green", None), ("orange", 4.0)),
        show_thresholds=True,
        min_value=0,
    ),
]

rpc = [
    timeseries(
        "RPC request rate",
        "RPC requests per second per chain and endpoint, all outcomes (usd1_rpc_requests_total).",
        [
            target(
                f"sum by (chain, endpoint) (rate({RPC_ALL}[$__rate_interval]))",
                "{{chain}} {{endpoint}}",
            )
        ],
        unit="reqps",
        min_value=0,
    ),
    timeseries(
        "RPC error ratio",
        "Share of RPC requests per endpoint that ended in error, timeout, rate limiting or a "
        "malformed answer (outcome != ok). 0 when an endpoint has had no failures.",
        [
            target(
                f"(sum by (chain, endpoint) (rate({RPC_ERRORS}[$__rate_interval]))"
                f" or sum by (chain, endpoint) (rate({RPC_ALL}[$__rate_interval])) * 0)"
                f" / sum by (chain, endpoint) (rate({RPC_ALL}[$__rate_interval]))",
                "{{chain}} {{endpoint}}",
            )
        ],
        unit="percentunit",
        thresholds=(("green", None), ("orange", 0.05), ("red", 0.25)),
        show_thresholds=True,
        min_value=0,
    ),
    timeseries(
        "RPC latency p50 / p99",
        "Median and 99th percentile RPC request latency per endpoint (usd1_rpc_request_seconds).",
        [
            target(
                "histogram_quantile(0.5, sum by (chain, endpoint, le) "
                f"(rate(usd1_rpc_request_seconds_bucket{{{C}}}[$__rate_interval])))",
                "{{chain}} {{endpoint}} p50",
            ),
            target(
                "histogram_quantile(0.99, sum by (chain, endpoint, le) "
                f"(rate(usd1_rpc_request_seconds_bucket{{{C}}}[$__rate_interval])))",
                "{{chain}} {{endpoint}} p99",
            ),
        ],
        unit="s",
        thresholds=(("green", None), ("orange", 1.0), ("red", 5.0)),
        show_thresholds=True,
        min_value=0,
    ),
    state_timeline(
        "RPC endpoint up",
        "Whether each endpoint's last request succeeded (usd1_rpc_endpoint_up). All endpoints of a "
        "chain DOWN for 3 m: alert USD1RpcAllEndpointsDown.",
        [target(f"usd1_rpc_endpoint_up{{{C}}}", "{{chain}} {{endpoint}}")],
        mappings=UP_DOWN,
    ),
]

throughput = [
    timeseries(
        "Event throughput",
        "Finalized token events indexed per second per chain and kind (usd1_events_total).",
        [
            target(
                f"sum by (chain, kind) (rate(usd1_events_total{{{C}}}[$__rate_interval]))",
                "{{chain}} {{kind}}",
            )
        ],
        unit="eps",
        stacked=True,
        min_value=0,
    ),
    state_timeline(
        "Database up over time",
        "Whether the daemon's last PostgreSQL operation succeeded (usd1_database_up).",
        [target("min(usd1_database_up)", "database")],
        mappings=UP_DOWN,
    ),
]

dashboard = make_dashboard(
    title="USD1 / Indexer health",
    uid="usd1-health",
    description="usd1-indexer progress and lag per chain, follower state, reorgs, RPC endpoints, "
    "event throughput and database health.",
    variables=[chain_variable()],
    sections=[
        ("Now", [now]),
        ("Progress and lag", [progress]),
        ("Follower state", [state]),
        ("Reorgs", [reorgs]),
        ("RPC", [rpc]),
        ("Throughput and database", [throughput]),
    ],
)
