"""Every Prometheus instrument of the indexer, created on an injected CollectorRegistry.

Names and labels are a contract (DESIGN section 3): dashboards and alert rules depend on them.
Token amounts are whole tokens as floats (exact integers live in the store).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

RPC_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REORG_BUCKETS = (1, 2, 3, 4, 5, 8, 12, 16, 32, 64, 128)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def init_chain(self, chain: str, lag_budget: float, states: tuple[str, ...]) -> None:
        """Create a chain's labelled series at start-up so rare-event panels and alert rules see
        zeros instead of no data."""
        self.lag_budget.labels(chain).set(lag_budget)
        self.reorgs.labels(chain)
        self.reorg_depth.labels(chain)
        self.follower_restarts.labels(chain)
        self.finality_violation.labels(chain).set(0)
        self.minted.labels(chain)
        self.burned.labels(chain)
        for kind in ("mint", "burn", "transfer"):
            self.events.labels(chain, kind)
        for kind in ("mint", "burn"):
            self.large_events.labels(chain, kind)
        for state in states:
            self.chain_state.labels(chain, state).set(0)
        self.balance_audit_accounts.labels(chain)
        self.balance_mismatch_accounts.labels(chain).set(0)
        self.range_audit_ranges.labels(chain)
        self.range_audit_mismatch.labels(chain)

    def init_watchlists(self, chains: Iterable[str], lists: Iterable[str]) -> None:
        """Zero series for every (chain, list) so the watchlist alert and panels see 0, not no data."""
        names = list(lists)
        for name in names:
            self.watchlist_up.labels(name).set(0)
            self.watchlist_loaded.labels(name).set(0)
        for chain in chains:
            for name in names:
                self.watchlist_transfers.labels(chain, name)
                self.watchlist_tokens.labels(chain, name)

    def init_venue(self, venue: str, kind: str, chain: str, depth_floor_usd: float | None) -> None:
        """A venue's static series: `usd1_venue_info` (kind, chain; "" for order books) and, when
        configured, its paging depth floor."""
        self.venue_info.labels(venue, kind, chain).set(1)
        if depth_floor_usd is not None:
            self.venue_depth_floor.labels(venue).set(depth_floor_usd)

    def init_controls(self, chain: str, kinds: Iterable[str], fields: Iterable[str]) -> None:
        """A chain's control series at start-up (kinds its families decode; every mismatch field)."""
        for kind in kinds:
            self.control_events.labels(chain, kind)
            self.control_head_events.labels(chain, kind).set(0)
            self.last_control_event.labels(chain, kind).set(0)
        for f in fields:
            self.control_mismatch.labels(chain, f).set(0)
        self.paused.labels(chain).set(0)
        self.frozen_accounts.labels(chain).set(0)
        self.frozen_tokens.labels(chain).set(0)

    def __post_init__(self) -> None:
        r = self.registry
        # Supply
        self.supply = Gauge(
            "usd1_supply", "Indexed token supply per chain (whole tokens)", ["chain", "finality"], registry=r
        )
        self.supply_total = Gauge(
            "usd1_supply_total",
            "Indexed token supply over all chains (whole tokens)",
            ["finality"],
            registry=r,
        )
        # Supply classes (README "Supply classes"): class = total | circulating | frozen | a label
        self.supply_class = Gauge(
            "usd1_supply_class_tokens",
            "Supply per chain and class: total, circulating, frozen or a non_circulating label (whole tokens)",
            ["chain", "class", "finality"],
            registry=r,
        )
        self.supply_circulating_total = Gauge(
            "usd1_supply_circulating_total",
            "Circulating supply over all chains (whole tokens; set once every chain is indexed)",
            ["finality"],
            registry=r,
        )
        self.bridge_backing_gap = Gauge(
            "usd1_bridge_backing_gap_tokens",
            "Minted on the bridge's bridged chains minus locked (bridge_lock) on its native chains minus"
            " the in-flight allowance, at the finalized blocks (whole tokens; positive = under-backed)",
            ["bridge"],
            registry=r,
        )
        self.supply_mismatch = Gauge(
            "usd1_supply_mismatch_tokens",
            "Indexed finalized supply minus the chain's own total supply at that block (whole tokens)",
            ["chain"],
            registry=r,
        )
        self.supply_check_block = Gauge(
            "usd1_supply_check_block",
            "Block at which usd1_supply_mismatch_tokens was last computed",
            ["chain"],
            registry=r,
        )
        self.supply_check_skipped = Counter(
            "usd1_supply_check_skipped_total",
            "Supply checks at `latest` (Tron) skipped, not compared (reason: head_moved|not_indexed|"
            "other_fork)",
            ["chain", "reason"],
            registry=r,
        )
        # Progress
        self.block_number = Gauge(
            "usd1_block_number", "Block (or slot) height by stage", ["chain", "stage"], registry=r
        )
        self.lag_seconds = Gauge(
            "usd1_lag_seconds",
            "Seconds since the indexer last confirmed it had indexed the chain head it observed",
            ["chain"],
            registry=r,
        )
        self.lag_budget = Gauge(
            "usd1_lag_budget_seconds",
            "Lag budget per chain (config chains[].lag_budget)",
            ["chain"],
            registry=r,
        )
        self.chain_state = Gauge(
            "usd1_chain_state",
            "1 for the chain's current follower state (backfill|live|stalled|halted)",
            ["chain", "state"],
            registry=r,
        )
        self.finality_violation = Gauge(
            "usd1_finality_violation",
            "1 when a reorg reached below the finalized height and the chain halted",
            ["chain"],
            registry=r,
        )
        self.follower_restarts = Counter(
            "usd1_follower_restarts_total",
            "Follower crashes restarted by the supervisor",
            ["chain"],
            registry=r,
        )
        self.indexes_deferred = Gauge(
            "usd1_event_indexes_deferred",
            "1 while a long backfill runs without the chain's secondary event indexes",
            ["chain"],
            registry=r,
        )
        self.last_success = Gauge(
            "usd1_last_sync_timestamp_seconds",
            "Unix time of the follower's last successful sync step",
            ["chain"],
            registry=r,
        )
        # Events
        self.events = Counter(
            "usd1_events_total", "Finalized token events indexed", ["chain", "kind"], registry=r
        )
        self.minted = Counter(
            "usd1_minted_tokens_total", "Finalized minted tokens (whole tokens)", ["chain"], registry=r
        )
        self.burned = Counter(
            "usd1_burned_tokens_total", "Finalized burned tokens (whole tokens)", ["chain"], registry=r
        )
        self.large_events = Counter(
            "usd1_large_events_total",
            "Single mints or burns of at least the chain's large_event_tokens, counted once when"
            " committed at the head (a reorg may orphan one later; not decremented)",
            ["chain", "kind"],
            registry=r,
        )
        # Control events and contract state (VOCAB: head gauges follow reorgs, the counter is final)
        self.control_events = Counter(
            "usd1_control_events_total", "Finalized control events indexed", ["chain", "kind"], registry=r
        )
        self.control_head_events = Gauge(
            "usd1_control_head_events",
            "Control events of the kind at the indexed head (drops back when a reorg orphans one)",
            ["chain", "kind"],
            registry=r,
        )
        self.last_control_event = Gauge(
            "usd1_last_control_event_timestamp_seconds",
            "Block time of the newest control event of the kind at the indexed head (0: none)",
            ["chain", "kind"],
            registry=r,
        )
        self.paused = Gauge(
            "usd1_paused", "1 while the token is paused (at the indexed head)", ["chain"], registry=r
        )
        self.frozen_accounts = Gauge(
            "usd1_frozen_accounts",
            "Frozen or blacklisted accounts (at the indexed head)",
            ["chain"],
            registry=r,
        )
        self.frozen_tokens = Gauge(
            "usd1_frozen_tokens",
            "Tokens held by frozen or blacklisted accounts (whole tokens, at the indexed head)",
            ["chain"],
            registry=r,
        )
        self.control_info = Gauge(
            "usd1_control_info",
            "1 for the token's current owner, proxy admin and implementation (at the indexed head)",
            ["chain", "owner", "admin", "implementation"],
            registry=r,
        )
        self.control_mismatch = Gauge(
            "usd1_control_mismatch",
            "1 while the stored contract state disagrees with the chain at the finalized block",
            ["chain", "field"],
            registry=r,
        )
        self.control_check_block = Gauge(
            "usd1_control_check_block",
            "Block at which the contract state was last checked against the chain",
            ["chain"],
            registry=r,
        )
        self.control_check_skipped = Counter(
            "usd1_control_check_skipped_total",
            "State reads of the control check that could not be made (reason: reverted|no_code|"
            "no_past_state|rpc_error|partial_coverage|head_moved|not_indexed|other_fork)",
            ["chain", "field", "reason"],
            registry=r,
        )
        # Reorgs
        self.reorgs = Counter("usd1_reorgs_total", "Chain reorganisations handled", ["chain"], registry=r)
        self.reorg_depth = Histogram(
            "usd1_reorg_depth_blocks",
            "Depth of handled reorgs in blocks",
            ["chain"],
            buckets=REORG_BUCKETS,
            registry=r,
        )
        # RPC
        self.rpc_requests = Counter(
            "usd1_rpc_requests_total",
            "RPC requests by outcome (ok|error|timeout|rate_limited|malformed|contradiction)",
            ["chain", "endpoint", "outcome"],
            registry=r,
        )
        self.rpc_seconds = Histogram(
            "usd1_rpc_request_seconds",
            "RPC request latency",
            ["chain", "endpoint"],
            buckets=RPC_BUCKETS,
            registry=r,
        )
        self.rpc_endpoint_up = Gauge(
            "usd1_rpc_endpoint_up",
            "1 if the endpoint's last request succeeded",
            ["chain", "endpoint"],
            registry=r,
        )
        # Market
        self.price_usd = Gauge("usd1_price_usd", "Token price at the venue in USD", ["venue"], registry=r)
        self.peg_deviation_bps = Gauge(
            "usd1_peg_deviation_bps",
            "Venue price minus peg, in basis points of the peg",
            ["venue"],
            registry=r,
        )
        self.depth_usd = Gauge(
            "usd1_depth_usd",
            "USD tradable before the price leaves the band around the peg",
            ["venue", "side", "band"],
            registry=r,
        )
        self.depth_complete = Gauge(
            "usd1_depth_complete",
            "1 if usd1_depth_usd is exact for every band; 0 if a lower bound (V3 ticks beyond"
            " tick_words, or an order book snapshot that ends inside a band)",
            ["venue"],
            registry=r,
        )
        self.venue_up = Gauge("usd1_venue_up", "1 if the venue's last read succeeded", ["venue"], registry=r)
        self.venue_info = Gauge(
            "usd1_venue_info",
            "1 per configured venue: its kind (uniswap_v2|uniswap_v3|orderbook) and chain (pools)",
            ["venue", "kind", "chain"],
            registry=r,
        )
        self.venue_depth_floor = Gauge(
            "usd1_venue_depth_floor_usd",
            "Depth (USD, bid + ask at the widest band) at which the venue alone may page a depeg"
            " (config venues[].page_depth_floor_usd; no series when unset)",
            ["venue"],
            registry=r,
        )
        self.pool_token_share = Gauge(
            "usd1_pool_token_share",
            "The token's share of the pool's value (0..1; token at the peg, quote at its USD value)",
            ["venue"],
            registry=r,
        )
        self.pool_tvl_usd = Gauge(
            "usd1_pool_tvl_usd",
            "Pool value in USD (token at the peg, quote at its USD value; V2 reserves, V3 balances)",
            ["venue"],
            registry=r,
        )
        self.venue_last_success = Gauge(
            "usd1_venue_last_success_timestamp_seconds",
            "Unix time of the venue's last successful read",
            ["venue"],
            registry=r,
        )
        # Reserves
        self.backing_ratio = Gauge(
            "usd1_backing_ratio",
            "Attested reserves (USD) / global circulating supply at the finalized blocks (the same"
            " figure as usd1_backing_coverage, kept under its first name)",
            registry=r,
        )
        self.backing_ratio_at_as_of = Gauge(
            "usd1_backing_ratio_at_as_of",
            "Attested reserves (USD) / global circulating supply at the attestation's as_of (per chain"
            " the last block at or before it; the audited figure); NaN when as_of is not final on every"
            " chain or before a chain's index",
            registry=r,
        )
        self.backing_coverage = Gauge(
            "usd1_backing_coverage",
            "Attested reserves (USD) / global circulating supply now (at the finalized blocks)",
            registry=r,
        )
        self.supply_drift_since_as_of = Gauge(
            "usd1_supply_drift_since_as_of_tokens",
            "Global circulating supply now (finalized) minus at the attestation's as_of, in tokens",
            registry=r,
        )
        self.reserves_usd = Gauge("usd1_reserves_usd", "Attested reserves in USD", registry=r)
        self.reserves_age = Gauge(
            "usd1_reserves_age_seconds", "Age of the latest reserve attestation", registry=r
        )
        self.reserves_up = Gauge("usd1_reserves_up", "1 if the last attestation read succeeded", registry=r)
        self.reserves_next_due = Gauge(
            "usd1_reserves_next_due_timestamp_seconds",
            "Unix time after which the next attestation is overdue (reserves.cadence + grace after"
            " the latest as_of, or as_of + reserves.max_age)",
            registry=r,
        )
        self.reserves_signature_rejections = Counter(
            "usd1_reserves_signature_rejections",
            "Attestation reads rejected because reserves.public_key is set and the detached signature is "
            "missing or does not verify",
            registry=r,
        )
        self.reserves_custodian_concentration = Gauge(
            "usd1_reserves_custodian_concentration_ratio",
            "Largest custodian's share of attested reserves (schema v2 documents; NaN for v1)",
            registry=r,
        )
        self.reserves_signature_valid = Gauge(
            "usd1_reserves_signature_valid",
            "1 if the last attestation read carried a detached signature that verifies with "
            "reserves.public_key; 0 otherwise (no key, missing, invalid)",
            registry=r,
        )
        # Proof-of-reserve feed (indexer.oracle; issue #16 item 5). NaN until a valid round is read.
        self.oracle_usd = Gauge(
            "usd1_reserves_oracle_usd",
            "Reserves (USD) reported by the on-chain proof-of-reserve feed: its last valid answer / 10^decimals",
            registry=r,
        )
        self.oracle_updated = Gauge(
            "usd1_reserves_oracle_updated_timestamp_seconds",
            "updatedAt of the feed's last valid round (Unix time)",
            registry=r,
        )
        self.oracle_up = Gauge(
            "usd1_reserves_oracle_up",
            "1 if the last read of the reserves feed gave a valid round",
            registry=r,
        )
        self.oracle_vs_attestation = Gauge(
            "usd1_reserves_oracle_vs_attestation_ratio",
            "Feed reserves / attested reserves (the attestation in force)",
            registry=r,
        )
        self.oracle_coverage = Gauge(
            "usd1_reserves_oracle_coverage",
            "Feed reserves (USD) / global circulating supply at the finalized blocks (whole tokens)",
            registry=r,
        )
        self.oracle_max_age = Gauge(
            "usd1_reserves_oracle_max_age_seconds",
            "reserves.oracle.max_age: the feed's round is stale past this age (0: no feed configured)",
            registry=r,
        )
        # Watchlists (indexer.watchlists, indexer.sync.watchlists; issue #17 item 5)
        self.watchlist_transfers = Counter(
            "usd1_watchlist_transfers",
            "Transfers from or to an address on the watchlist, counted once when committed at the"
            " head (a reorg may orphan one later; not decremented)",
            ["chain", "list"],
            registry=r,
        )
        self.watchlist_tokens = Counter(
            "usd1_watchlist_tokens",
            "Tokens (whole tokens) moved by the transfers counted in usd1_watchlist_transfers_total",
            ["chain", "list"],
            registry=r,
        )
        self.watchlist_up = Gauge(
            "usd1_watchlist_up",
            "1 if the watchlist's last load succeeded (0: the previous version, if any, stays in force)",
            ["list"],
            registry=r,
        )
        self.watchlist_addresses = Gauge(
            "usd1_watchlist_addresses",
            "Addresses of the watchlist in force, by the chain kind they match (other: not followed)",
            ["list", "kind"],
            registry=r,
        )
        self.watchlist_loaded = Gauge(
            "usd1_watchlist_loaded_timestamp_seconds",
            "Unix time the watchlist in force was loaded (0: none loaded yet)",
            ["list"],
            registry=r,
        )
        # Audits (indexer.sync.audit)
        self.balance_audit_accounts = Counter(
            "usd1_balance_audit_accounts",
            "Accounts whose indexed finalized balance was compared with the chain's own",
            ["chain"],
            registry=r,
        )
        self.balance_mismatch_accounts = Gauge(
            "usd1_balance_mismatch_accounts",
            "Audited accounts whose indexed balance differs from the chain's at the last check",
            ["chain"],
            registry=r,
        )
        self.range_audit_ranges = Counter(
            "usd1_range_audit_ranges",
            "Finalized ranges re-read from an endpoint and compared with the store",
            ["chain"],
            registry=r,
        )
        self.range_audit_mismatch = Counter(
            "usd1_range_audit_mismatch",
            "Range re-reads whose event count or digest differs from the store",
            ["chain"],
            registry=r,
        )
        # Process
        self.db_up = Gauge("usd1_database_up", "1 if the database answers (probed every second)", registry=r)
        self.db_restarts = Counter(
            "usd1_database_restarts_total", "Restarts of the embedded PostgreSQL after it died", registry=r
        )
        self.build_info = Gauge("usd1_build_info", "Build information", ["version"], registry=r)
