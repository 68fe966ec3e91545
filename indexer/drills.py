"""Drills: rehearse an incident on the running devnet and watch it go through the alerts (pure part).

A drill is planned from the daemon's config (which chains and venues exist, their finality rule,
their paging floors) before anything is sent: `plan_drill(name, target, options)` is pure and
returns a `DrillPlan` (the actions, the alerts expected in their order, the alerts an inhibition
should mute, and how to undo it). `indexer.devnet.drill_actions` performs the plan against the
devnet's RPC (anvil cheatcodes and real transactions); `indexer.cli_drill` prints the plan, runs
it, and prints the alerts to watch.

Alert timings are the unmodified alerts/usd1.rules.yml's `for:` durations, from the moment the
daemon has indexed the change (a control event at the indexed head, a venue's next read).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, assert_never, get_args
from urllib.parse import urlsplit

from indexer.config import (
    Config,
    EvmChainConfig,
    OrderbookVenueConfig,
    SolanaChainConfig,
    UniswapV2VenueConfig,
    UniswapV3VenueConfig,
)

DrillName = Literal["depeg", "redemption-run", "pool-drain", "upgrade", "deep-reorg", "stall", "venue-outage"]
DRILL_NAMES: tuple[DrillName, ...] = get_args(DrillName)
Severity = Literal["page", "ticket"]


class DrillError(ValueError):
    """A drill cannot be planned or run here (no such chain or venue, devnet not running, ...).
    The message is one line, for the operator."""


@dataclass(frozen=True, slots=True)
class ChainTarget:
    name: str
    kind: Literal["evm", "solana"]
    rpc: str
    token: str  # the ERC-20 address, or the SPL mint
    decimals: int
    profile: str
    confirmations: int | None  # finality {confirmations: N}; None: a finality tag
    large_event_tokens: str | None


@dataclass(frozen=True, slots=True)
class VenueTarget:
    name: str
    kind: Literal["uniswap_v2", "uniswap_v3", "orderbook"]
    chain: str | None  # the pool's chain (pool venues)
    pool: str | None
    url: str | None  # order-book venues
    page_depth_floor_usd: float | None


@dataclass(frozen=True, slots=True)
class DrillTarget:
    """What the drills may act on: the config's EVM and Solana chains (RPC possibly overridden by
    --devnet) and its venues. Solana chains take `stall` and `deep-reorg` (the Solana devnet's
    admin methods); every other drill acts on an EVM chain."""

    chains: tuple[ChainTarget, ...]
    venues: tuple[VenueTarget, ...]

    def chain(self, name: str) -> ChainTarget:
        for c in self.chains:
            if c.name == name:
                return c
        raise DrillError(f"no chain {name!r} in the config (have: {', '.join(self.chain_names) or 'none'})")

    @property
    def chain_names(self) -> list[str]:
        return [c.name for c in self.chains]


def parse_devnet_urls(text: str | None) -> dict[str, str]:
    """`--devnet devnet-a=http://127.0.0.1:8545,devnet-usd1=http://...` -> {chain: url}."""
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, url = item.partition("=")
        if not sep or not name.strip() or not url.strip().startswith(("http://", "https://")):
            raise DrillError(f"--devnet: {item!r} is not CHAIN=http(s)://URL")
        out[name.strip()] = url.strip()
    return out


def target_from_config(cfg: Config, urls: Mapping[str, str] | None = None) -> DrillTarget:
    """The drill target of a config; `urls` (from --devnet) replace a chain's first RPC URL."""
    urls = dict(urls or {})
    chains: list[ChainTarget] = []
    for c in cfg.chains:
        match c:
            case EvmChainConfig():
                chains.append(
                    ChainTarget(
                        name=c.name,
                        kind="evm",
                        rpc=urls.pop(c.name, str(c.rpc[0])),
                        token=c.token,
                        decimals=c.decimals,
                        profile=c.profile,
                        confirmations=c.finality.confirmations,
                        large_event_tokens=c.large_event_tokens,
                    )
                )
            case SolanaChainConfig():
                chains.append(
                    ChainTarget(
                        name=c.name,
                        kind="solana",
                        rpc=urls.pop(c.name, str(c.rpc[0])),
                        token=c.mint,
                        decimals=c.decimals,
                        profile="solana",
                        confirmations=None,
                        large_event_tokens=c.large_event_tokens,
                    )
                )
            case _:  # other chain kinds (tron is an EVM dialect) have no drill
                pass
    if urls:
        raise DrillError(f"--devnet names chains the config does not have: {', '.join(sorted(urls))}")
    venues: list[VenueTarget] = []
    for v in cfg.venues:
        match v:
            case UniswapV2VenueConfig() | UniswapV3VenueConfig():
                venues.append(VenueTarget(v.name, v.kind, v.chain, v.pool, None, v.page_depth_floor_usd))
            case OrderbookVenueConfig():
                venues.append(VenueTarget(v.name, v.kind, None, None, str(v.url), v.page_depth_floor_usd))
            case _:
                assert_never(v)
    return DrillTarget(tuple(chains), tuple(venues))


@dataclass(frozen=True, slots=True)
class DrillOptions:
    chain: str | None = None  # the chain to act on (default: chosen per drill)
    venue: str | None = None  # the pool venue (depeg, pool-drain)
    bps: float = -1000.0  # depeg: target deviation from the peg
    hold: float | None = None  # depeg, stall: undo after this many seconds (None: leave it)
    restore: bool = False  # depeg, stall: only undo a previous run
    burns: int = 10  # redemption-run: number of burns
    every: float = 5.0  # redemption-run: seconds between burns
    share: float = 0.05  # redemption-run: total burned, as a share of the chain's total supply
    fraction: float = 0.9  # pool-drain: share of the deployer's liquidity removed
    depth: int | None = None  # deep-reorg: blocks (default: the finality depth + 2)
    block_time: int = 1  # stall --restore: interval mining period (whole seconds) to resume with

    def __post_init__(self) -> None:
        if self.hold is not None and self.hold <= 0:
            raise DrillError("--hold must be positive seconds")
        if self.burns < 1:
            raise DrillError("--burns must be at least 1")
        if self.every < 0:
            raise DrillError("--every must not be negative")
        if not 0 < self.share < 1:
            raise DrillError("--share must be between 0 and 1 (a share of the total supply)")
        if not 0 < self.fraction < 1:
            raise DrillError("--fraction must be between 0 and 1")
        if self.depth is not None and self.depth < 1:
            raise DrillError("--depth must be at least 1 block")
        if self.block_time < 1:
            raise DrillError("--block-time must be at least 1 (whole seconds)")
        if not -9000 <= self.bps <= 9000 or self.bps == 0:
            raise DrillError("--bps must be non-zero, between -9000 and 9000")


@dataclass(frozen=True, slots=True)
class ExpectedAlert:
    """An alert the drill should raise: `after` is when (from the change being indexed), `labels`
    the identifying labels, `muted_by` the alert whose inhibition should keep it from notifying."""

    name: str
    severity: Severity
    labels: Mapping[str, str]
    after: str
    muted_by: str | None = None
    note: str = ""

    def line(self) -> str:
        lbl = ",".join(f'{k}="{v}"' for k, v in self.labels.items())
        state = f"muted by {self.muted_by}" if self.muted_by else "notifies"
        tail = f" ({self.note})" if self.note else ""
        when = self.after if self.after in ("at once", "later") else f"after {self.after}"
        return f"{self.name}{{{lbl}}}  {self.severity}, {when}, {state}{tail}"


@dataclass(frozen=True, slots=True)
class DrillPlan:
    drill: DrillName
    summary: str
    chain: ChainTarget | None
    venue: VenueTarget | None
    actions: tuple[str, ...]
    alerts: tuple[ExpectedAlert, ...]  # in the order they should fire
    quiet: tuple[str, ...] = ()  # alerts that must stay quiet, and why
    undo: str | None = None  # how to end the drill
    skip: str | None = None  # the drill cannot run on this devnet: why
    options: DrillOptions = field(default_factory=DrillOptions)

    @property
    def pages(self) -> list[ExpectedAlert]:
        """The notifications a pager should receive: one per root cause."""
        return [a for a in self.alerts if a.severity == "page" and a.muted_by is None]

    def render(self) -> str:
        lines = [f"drill {self.drill}: {self.summary}"]
        if self.chain is not None:
            lines.append(f"  chain  {self.chain.name} ({self.chain.rpc})")
        if self.venue is not None:
            lines.append(f"  venue  {self.venue.name} ({self.venue.kind})")
        if self.skip is not None:
            lines.append(f"  SKIPPED: {self.skip}")
            return "\n".join(lines)
        lines.append("  actions:")
        lines += [f"    {i}. {a}" for i, a in enumerate(self.actions, 1)]
        lines.append("  expected alerts, in order:")
        lines += [f"    - {a.line()}" for a in self.alerts] or ["    (none)"]
        if self.quiet:
            lines.append("  should stay quiet:")
            lines += [f"    - {q}" for q in self.quiet]
        if self.undo:
            lines.append(f"  undo: {self.undo}")
        return "\n".join(lines)


def _pool_venue(target: DrillTarget, opts: DrillOptions) -> VenueTarget:
    pools = [v for v in target.venues if v.kind == "uniswap_v2"]
    if opts.venue is not None:
        for v in target.venues:
            if v.name == opts.venue:
                if v.kind != "uniswap_v2":
                    raise DrillError(f"venue {v.name} is {v.kind}: this drill moves a Uniswap V2 devnet pool")
                return v
        raise DrillError(f"no venue {opts.venue!r} in the config")
    if not pools:
        raise DrillError("the config has no uniswap_v2 venue (the devnet pool of config/devnet.yaml)")
    return pools[0]


def _usd1_chain(target: DrillTarget, opts: DrillOptions) -> ChainTarget:
    if opts.chain is not None:
        c = target.chain(opts.chain)
        if c.profile != "usd1":
            raise DrillError(
                f"chain {c.name} has profile {c.profile}: this drill needs the real USD1 (profile usd1)"
            )
        return c
    for c in target.chains:
        if c.profile == "usd1":
            return c
    raise DrillError("the config has no EVM chain with profile usd1 (devnet-usd1 of config/devnet.yaml)")


def _any_chain(target: DrillTarget, opts: DrillOptions) -> ChainTarget:
    """--chain (EVM or Solana), else the first EVM chain."""
    if opts.chain is not None:
        return target.chain(opts.chain)
    for c in target.chains:
        if c.kind == "evm":
            return c
    raise DrillError("the config has no EVM chain (pass --chain for a Solana one)")


def plan_drill(name: DrillName, target: DrillTarget, opts: DrillOptions | None = None) -> DrillPlan:
    """The plan of one drill on this target: what it sends, and what the alerts should do."""
    opts = opts or DrillOptions()
    match name:
        case "depeg":
            return _plan_depeg(target, opts)
        case "redemption-run":
            return _plan_redemption(target, opts)
        case "pool-drain":
            return _plan_pool_drain(target, opts)
        case "upgrade":
            return _plan_upgrade(target, opts)
        case "deep-reorg":
            return _plan_deep_reorg(target, opts)
        case "stall":
            return _plan_stall(target, opts)
        case "venue-outage":
            return _plan_venue_outage(target, opts)
        case _:
            assert_never(name)


def _plan_depeg(target: DrillTarget, opts: DrillOptions) -> DrillPlan:
    venue = _pool_venue(target, opts)
    assert venue.chain is not None
    chain = target.chain(venue.chain)
    v = {"venue": venue.name}
    price = 1 + opts.bps / 10_000
    if opts.restore:
        return DrillPlan(
            "depeg",
            f"swap pool {venue.name} back to the peg",
            chain,
            venue,
            ("swap the pool back to 1.0000 (one real swap from the pool deployer)",),
            (),
            quiet=("every peg alert of the venue resolves (USD1PegWick keeps firing 15m after)",),
            options=opts,
        )
    actions = [f"one real swap on {venue.name}: price 1.0000 -> {price:.4f} ({opts.bps:+.0f} bps)"]
    undo = "usd1-indexer drill depeg --restore"
    if opts.hold is not None:
        actions.append(f"hold {opts.hold:g}s, then swap back to 1.0000")
        undo = f"automatic after {opts.hold:g}s"
    alerts: list[ExpectedAlert] = []
    big = abs(opts.bps) > 200
    others = sum(1 for x in target.venues if x.name != venue.name)
    root: str | None = None
    if big:
        if venue.page_depth_floor_usd is not None:
            root = "USD1PegDeviationCritical"
            alerts.append(
                ExpectedAlert(
                    root,
                    "page",
                    v,
                    "5m",
                    note=f"alone: its depth is at or above page_depth_floor_usd {venue.page_depth_floor_usd:g}",
                )
            )
        else:
            root = "USD1PegDeviationUnconfirmed"
            alerts.append(
                ExpectedAlert(
                    root,
                    "ticket",
                    v,
                    "5m",
                    note="one venue, no page_depth_floor_usd: a ticket; it pages only if "
                    + ("another venue moves too" if others else "a second venue agrees"),
                )
            )
    if abs(opts.bps) > 50:
        wick_muter = root or "USD1PegDeviationWarning"
        alerts.insert(0, ExpectedAlert("USD1PegWick", "ticket", v, "1m", muted_by=wick_muter))
        alerts.append(ExpectedAlert("USD1PegDeviationWarning", "ticket", v, "15m", muted_by=root))
    pool_muter = "USD1PegDeviationCritical" if root == "USD1PegDeviationCritical" else None
    alerts.append(
        ExpectedAlert(
            "USD1PoolShareShift",
            "ticket",
            v,
            "5m",
            muted_by=pool_muter,
            note="if the share moves > 10 points",
        )
    )
    alerts.append(
        ExpectedAlert(
            "USD1PoolImbalance", "ticket", v, "15m", muted_by=pool_muter, note="if the share leaves 30%-70%"
        )
    )
    return DrillPlan(
        "depeg",
        f"move pool {venue.name} {opts.bps:+.0f} bps off the peg",
        chain,
        venue,
        tuple(actions),
        tuple(sorted(alerts, key=lambda a: _minutes(a.after))),
        quiet=("USD1VenueStale (the venue keeps answering)", "no chain or supply alert"),
        undo=undo,
        options=opts,
    )


def _plan_redemption(target: DrillTarget, opts: DrillOptions) -> DrillPlan:
    chain = _usd1_chain(target, opts)
    c = {"chain": chain.name}
    span = opts.every * (opts.burns - 1)
    alerts = []
    if chain.large_event_tokens is not None:
        alerts.append(
            ExpectedAlert(
                "USD1LargeMintOrBurn",
                "ticket",
                c | {"kind": "burn"},
                "at once",
                muted_by="USD1RedemptionSurge",
                note=f"each burn of at least {chain.large_event_tokens} USD1",
            )
        )
    alerts += [
        ExpectedAlert(
            "USD1RedemptionSurge",
            "page",
            {},
            "30m",
            note="24h burns > 2% of the finalized supply and > 3x the 30-day daily average",
        ),
        ExpectedAlert(
            "USD1RedemptionPace",
            "ticket",
            {},
            "2h",
            muted_by="USD1RedemptionSurge",
            note="only if the burns keep a pace above 0.15% of supply an hour for 2h",
        ),
    ]
    return DrillPlan(
        "redemption-run",
        f"burn {opts.share:.1%} of the supply of {chain.name} in {opts.burns} burns, one every {opts.every:g}s",
        chain,
        None,
        (
            f"read the total supply S of {chain.name}; before each burn the owner mints what its balance"
            " lacks for it (USD1 burns only the owner's own balance; those mints are visible as such)",
            f"{opts.burns} owner burns of {opts.share / opts.burns:.2%} of S each, {opts.every:g}s apart"
            f" (over {span:g}s)",
        ),
        tuple(alerts),
        quiet=(
            "USD1SupplyJump unless an hour's burns pass max(10% of the supply, 1M USD1)",
            "USD1SupplyMismatch (indexed and chain supply stay equal)",
        ),
        undo="none needed (burns are final); the alerts resolve as the window passes",
        options=opts,
    )


def _plan_pool_drain(target: DrillTarget, opts: DrillOptions) -> DrillPlan:
    venue = _pool_venue(target, opts)
    assert venue.chain is not None
    chain = target.chain(venue.chain)
    v = {"venue": venue.name}
    return DrillPlan(
        "pool-drain",
        f"remove {opts.fraction:.0%} of the liquidity of pool {venue.name}",
        chain,
        venue,
        (
            f"the pool deployer (the LP) sends {opts.fraction:.0%} of its LP tokens to the pair and calls"
            " burn(): both reserves shrink, the price stays",
        ),
        (
            ExpectedAlert("USD1PoolTvlDrop", "ticket", v, "15m", note="value below half of its 24h maximum"),
            ExpectedAlert(
                "USD1DepthCollapse",
                "ticket",
                v | {"side": "bid|ask"},
                "15m",
                note="depth below 30% of its 6h maximum, both sides",
            ),
        ),
        quiet=("every peg alert (the price does not move)", "USD1PoolImbalance (the shares stay)"),
        undo="none: a fresh devnet restores the pool (add liquidity by hand to refill it)",
        options=opts,
    )


def _plan_upgrade(target: DrillTarget, opts: DrillOptions) -> DrillPlan:
    chain = _usd1_chain(target, opts)
    return DrillPlan(
        "upgrade",
        f"upgrade the USD1 proxy on {chain.name} to a new implementation",
        chain,
        None,
        (
            "deploy DevnetStablecoinV2 (compiled with USD1's solc 0.8.14) from the ProxyAdmin's owner",
            "ProxyAdmin.upgrade(proxy, v2): the proxy emits Upgraded(v2)",
        ),
        (
            ExpectedAlert(
                "USD1ImplementationUpgraded",
                "page",
                {"chain": chain.name, "kind": "upgraded"},
                "at once",
                note="once Upgraded is at the indexed head; fires for an hour (block time)",
            ),
        ),
        quiet=(
            "USD1ControlMismatch (the indexed and the read implementation agree)",
            "USD1ProxyAdminChanged, USD1OwnershipTransferred (neither changes)",
        ),
        undo="none (upgrade back with ProxyAdmin.upgrade, or start a fresh devnet); a planned"
        " upgrade is silenced as alerts/runbooks/USD1ImplementationUpgraded.md shows",
        options=opts,
    )


def finality_depth_text(chain: ChainTarget) -> str:
    if chain.kind == "solana":
        return "tip - finalized slot (devnet_status)"
    if chain.confirmations is not None:
        return f"{chain.confirmations} confirmations"
    return "head - finalized tag (read from the chain)"


def _plan_deep_reorg(target: DrillTarget, opts: DrillOptions) -> DrillPlan:
    chain = _any_chain(target, opts)
    c = {"chain": chain.name}
    depth = (
        str(opts.depth) if opts.depth is not None else f"finality depth + 2 ({finality_depth_text(chain)})"
    )
    halted = ("USD1LagOverBudget", "USD1IndexerStalled", "USD1ChainHeadStuck")
    return DrillPlan(
        "deep-reorg",
        f"reorg {chain.name} deeper than its finality rule",
        chain,
        None,
        (
            (f"anvil_reorg of {depth} blocks (each replaced with a new block), head height unchanged",)
            if chain.kind == "evm"
            else (
                f"devnet_fork of the newest {depth} blocks with belowFinalized and reuseSlots: the"
                " slots are refilled with new blockhashes",
            )
        ),
        (
            ExpectedAlert(
                "USD1FinalityViolation", "page", c, "at once", note="the follower halts; never inhibited"
            ),
            *(
                ExpectedAlert(
                    n,
                    "page" if n == "USD1IndexerStalled" else "ticket",
                    c,
                    "later",
                    muted_by="USD1FinalityViolation",
                )
                for n in halted
            ),
        ),
        quiet=("USD1DeepReorg (the reorg is not handled: the chain halts instead)",),
        undo="the chain stays halted: follow alerts/runbooks/USD1FinalityViolation.md (or restart"
        " the demo with a fresh devnet and database)",
        options=opts,
    )


def _plan_stall(target: DrillTarget, opts: DrillOptions) -> DrillPlan:
    chain = _any_chain(target, opts)
    c = {"chain": chain.name}
    if opts.restore:
        return DrillPlan(
            "stall",
            f"resume mining on {chain.name}",
            chain,
            None,
            (
                "devnet_setProducing true"
                if chain.kind == "solana"
                else f"evm_setIntervalMining {opts.block_time:g} (a block every {opts.block_time:g}s)",
            ),
            (),
            quiet=("USD1ChainHeadStuck resolves once blocks come again",),
            options=opts,
        )
    solana = chain.kind == "solana"
    actions = [
        "devnet_setProducing false: no more slots (the devnet's traffic pauses too)"
        if solana
        else "evm_setAutomine false and evm_setIntervalMining 0: no more blocks (transactions wait)"
    ]
    resume = "devnet_setProducing true" if solana else f"evm_setIntervalMining {opts.block_time:g}"
    undo = f"usd1-indexer drill stall --chain {chain.name} --restore"
    if opts.hold is not None:
        actions.append(f"hold {opts.hold:g}s, then {resume}")
        undo = f"automatic after {opts.hold:g}s"
    return DrillPlan(
        "stall",
        f"stop block production on {chain.name}",
        chain,
        None,
        tuple(actions),
        (
            ExpectedAlert(
                "USD1LagOverBudget",
                "ticket",
                c,
                "10m",
                muted_by="USD1ChainHeadStuck",
                note="over the lag budget for 10m; muted once the head alert fires",
            ),
            ExpectedAlert("USD1ChainHeadStuck", "ticket", c, "15m", note="no head change in 10m, for 5m"),
        ),
        quiet=("USD1IndexerStalled (the head does not move, so the indexer is not behind it)",),
        undo=undo,
        options=opts,
    )


def admin_base(url: str) -> str | None:
    """`http://host:port` of a venue URL served on loopback: a devnet book whose admin method
    (`POST /devnet/outage`) the drill may call; None for any other server."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    return f"{parts.scheme}://{parts.netloc}"


def _plan_venue_outage(target: DrillTarget, opts: DrillOptions) -> DrillPlan:
    """Take an order-book venue served on loopback (the devnet book, indexer/devnet/orderbook_mock.py)
    down through its admin method; a venue on a server the drill does not own is skipped."""
    books = [v for v in target.venues if v.kind == "orderbook"]
    if opts.venue is not None:
        books = [v for v in target.venues if v.name == opts.venue]
        if not books:
            raise DrillError(f"no venue {opts.venue!r} in the config")
    owned = [v for v in books if v.kind == "orderbook" and v.url is not None and admin_base(v.url)]
    venue = owned[0] if owned else (books[0] if books else None)
    stale = (ExpectedAlert("USD1VenueStale", "ticket", {"venue": venue.name if venue else "VENUE"}, "5m"),)
    if not owned:
        skip = (
            "venue-outage needs an order-book venue served on this machine by the devnet book"
            " (indexer/devnet/orderbook_mock.py, `devnet-book` in config/devnet.yaml); this config has "
            + (
                f"order-book venue(s) {', '.join(v.name for v in books)} on other servers"
                if books
                else "none"
            )
            + ". Rehearse it by stopping the venue's server and watch USD1VenueStale."
        )
        return DrillPlan(
            "venue-outage", "make one venue unreachable", None, venue, (), stale, skip=skip, options=opts
        )
    assert venue is not None and venue.url is not None
    base = admin_base(venue.url)
    if opts.restore:
        return DrillPlan(
            "venue-outage",
            f"bring venue {venue.name} back",
            None,
            venue,
            (f'POST {base}/devnet/outage {{"down": false}}: the depth route answers again',),
            (),
            quiet=("USD1VenueStale resolves at the next successful read",),
            options=opts,
        )
    actions = [f'POST {base}/devnet/outage {{"down": true}}: the depth route answers 503']
    undo = "usd1-indexer drill venue-outage --restore"
    if opts.hold is not None:
        actions.append(f"hold {opts.hold:g}s, then bring it back")
        undo = f"automatic after {opts.hold:g}s"
    return DrillPlan(
        "venue-outage",
        f"make venue {venue.name} unreachable",
        None,
        venue,
        tuple(actions),
        stale,
        quiet=("no peg alert pages: a venue that cannot be read is stale, not off the peg",),
        undo=undo,
        options=opts,
    )


def _minutes(after: str) -> float:
    if after.endswith("m") and after[:-1].isdigit():
        return float(after[:-1])
    if after.endswith("h") and after[:-1].isdigit():
        return 60.0 * float(after[:-1])
    return 0.0 if after == "at once" else 1e9


__all__ = [
    "DRILL_NAMES",
    "ChainTarget",
    "DrillError",
    "DrillName",
    "DrillOptions",
    "DrillPlan",
    "DrillTarget",
    "ExpectedAlert",
    "VenueTarget",
    "parse_devnet_urls",
    "plan_drill",
    "target_from_config",
]
