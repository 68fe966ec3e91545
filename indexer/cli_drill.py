"""`usd1-indexer drill NAME`: rehearse an incident on the running devnet (README "Drills").

Prints the plan (actions, the alerts expected in their order, the alerts inhibitions should mute),
performs it against the devnet's RPC (unless --dry-run), then prints the alerts to watch in
Prometheus and Alertmanager. A devnet that is not running, or a config without what the drill
needs, is one line on stderr and exit 2.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from indexer.drills import (
    DRILL_NAMES,
    DrillError,
    DrillName,
    DrillOptions,
    parse_devnet_urls,
    plan_drill,
    target_from_config,
)

EXIT_DRILL_ERROR = 2


@click.command("drill")
@click.argument("name", type=click.Choice(DRILL_NAMES))
@click.option(
    "--config",
    "config_path",
    default="config/devnet.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The devnet's daemon config (chains, venues).",
)
@click.option("--devnet", "devnet_urls", default=None, help="Override RPC URLs: CHAIN=URL[,CHAIN=URL...].")
@click.option("--dry-run", is_flag=True, help="Print the plan and the expected alerts; send nothing.")
@click.option("--chain", default=None, help="The chain to act on (default: chosen per drill).")
@click.option("--venue", default=None, help="The pool venue (depeg, pool-drain).")
@click.option("--bps", type=float, default=-1000.0, show_default=True, help="depeg: deviation from the peg.")
@click.option("--hold", type=float, default=None, help="depeg, stall: undo after this many seconds.")
@click.option("--restore", is_flag=True, help="depeg, stall: undo a previous run.")
@click.option("--burns", type=int, default=10, show_default=True, help="redemption-run: number of burns.")
@click.option(
    "--every", type=float, default=5.0, show_default=True, help="redemption-run: seconds between burns."
)
@click.option(
    "--share", type=float, default=0.05, show_default=True, help="redemption-run: share of the supply burned."
)
@click.option(
    "--fraction",
    type=float,
    default=0.9,
    show_default=True,
    help="pool-drain: share of the liquidity removed.",
)
@click.option("--depth", type=int, default=None, help="deep-reorg: blocks (default: finality depth + 2).")
@click.option(
    "--block-time",
    type=float,
    default=1.0,
    show_default=True,
    help="stall: block period when mining resumes.",
)
@click.option("--cache-dir", type=click.Path(file_okay=False), default=".usd1/cache", show_default=True)
def drill(
    name: DrillName,
    config_path: str,
    devnet_urls: str | None,
    dry_run: bool,
    chain: str | None,
    venue: str | None,
    bps: float,
    hold: float | None,
    restore: bool,
    burns: int,
    every: float,
    share: float,
    fraction: float,
    depth: int | None,
    block_time: int,
    cache_dir: str,
) -> None:
    """Drive an incident scenario on the running devnet and print the alerts it should raise.

    NAME: depeg, redemption-run, pool-drain, upgrade, deep-reorg, stall, venue-outage."""
    from indexer.cli import load_or_exit

    cfg = load_or_exit(config_path, configure=False)
    try:
        opts = DrillOptions(
            chain=chain,
            venue=venue,
            bps=bps,
            hold=hold,
            restore=restore,
            burns=burns,
            every=every,
            share=share,
            fraction=fraction,
            depth=depth,
            block_time=block_time,
        )
        plan = plan_drill(name, target_from_config(cfg, parse_devnet_urls(devnet_urls)), opts)
    except DrillError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_DRILL_ERROR)
    click.echo(plan.render())
    if plan.skip is not None or dry_run:
        if dry_run and plan.skip is None:
            click.echo("dry run: nothing sent")
        return
    from indexer.devnet.drill_actions import run_drill

    click.echo("running:")
    try:
        asyncio.run(run_drill(plan, say=lambda line: click.echo(f"  {line}"), cache_dir=Path(cache_dir)))
    except DrillError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_DRILL_ERROR)
    except KeyboardInterrupt:
        click.echo("interrupted: the drill's change stays in place (see `undo` above)", err=True)
        sys.exit(130)
    if plan.alerts:
        click.echo("done. Watch for (Prometheus /alerts, then Alertmanager):")
        for a in plan.alerts:
            click.echo(f"  - {a.line()}")
        pages = plan.pages
        click.echo(
            "  pages expected: " + (", ".join(f"{a.name}" for a in pages) if pages else "none (tickets only)")
        )
