"""The `usd1-indexer` command line (click)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson
import structlog

from indexer.config import Config, load_config
from indexer.errors import ConfigError, DatabaseGaveUp, FinalityViolation
from indexer.logs import configure_logging

log = structlog.get_logger(__name__)


def load_or_exit(path: str, log_level: str | None = None, *, configure: bool = True) -> Config:
    """Load a config for a command, or print its `path.to.key: problem` lines and exit 2."""
    from indexer.reserves import load_reserves_key

    try:
        cfg = load_config(path)
        # files the config names, read now so that a bad one is a config error (exit 2)
        load_reserves_key(cfg.reserves, Path(path).resolve().parent)
    except ConfigError as exc:
        for p in exc.problems:
            click.echo(p, err=True)
        sys.exit(2)
    if configure:
        configure_logging(log_level or cfg.log.level, cfg.log.format)
    return cfg


def _chains(value: str | None) -> list[str] | None:
    return [c.strip() for c in value.split(",") if c.strip()] if value else None


config_option = click.option(
    "--config", "config_path", required=True, type=click.Path(dir_okay=False), help="YAML config file."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="usd1-indexer")
def main() -> None:
    """usd1-indexer: USD1 supply, finality, peg and liquidity monitor."""


@main.command("check-config")
@click.argument("path", type=click.Path(dir_okay=False))
def check_config(path: str) -> None:
    """Validate a config file: prints `path.to.key: problem` lines and exits 2 on error."""
    cfg = load_or_exit(path, configure=False)
    click.echo(f"{path}: ok ({len(cfg.chains)} chains, {len(cfg.venues)} venues)")


@main.command()
@config_option
@click.option("--chains", "chains", default=None, help="Comma-separated subset of chains to index.")
def run(config_path: str, chains: str | None) -> None:
    """Run the daemon: index every configured chain and serve HTTP until SIGTERM/SIGINT."""
    from indexer.daemon import install_signal_handlers, run_daemon

    cfg = load_or_exit(config_path)
    config_dir = Path(config_path).resolve().parent

    async def main_() -> None:
        stop = asyncio.Event()
        install_signal_handlers(stop)
        await run_daemon(cfg, stop, _chains(chains), config_dir=config_dir)

    _run_async(main_)


@main.command()
@config_option
def serve(config_path: str) -> None:
    """Serve the HTTP API alone against `database.read_dsn` (or `dsn`); indexes nothing."""
    from indexer.daemon import install_signal_handlers, serve_api

    cfg = load_or_exit(config_path)
    config_dir = Path(config_path).resolve().parent

    async def main_() -> None:
        stop = asyncio.Event()
        install_signal_handlers(stop)
        await serve_api(cfg, stop, config_dir=config_dir)

    _run_async(main_)


@main.command()
@config_option
@click.option("--chain", "chain", default=None, help="Only this chain (default: all).")
@click.option(
    "--to-block", type=click.IntRange(min=0), default=None, help="Last height (default: finalized head)."
)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@click.option(
    "--family",
    type=click.Choice(["controls"]),
    default=None,
    help="Only fill this event family in below its coverage (a family enabled on an indexed chain).",
)
def backfill(
    config_path: str, chain: str | None, to_block: int | None, progress: bool, family: str | None
) -> None:
    """Index up to a block (default: the finalized head) and exit 0; with --family, fill only that
    family in below its coverage, down to the chain's start (transfers are not re-indexed)."""
    from indexer.daemon import backfill as do_backfill
    from indexer.runtime import Runtime

    cfg = load_or_exit(config_path)
    if family is not None:
        if to_block is not None:
            raise click.UsageError("--family fills down to the chain's start: it takes no --to-block")
        from indexer.daemon import fill_family
        from indexer.model import Family

        filled = _run_async(lambda: fill_family(cfg, _chains(chain), Family(family)))
        for name, start in (filled or {}).items():
            click.echo(
                f"{name}: {family} " + ("not configured" if start is None else f"covered from block {start}")
            )
        return

    @contextlib.asynccontextmanager
    async def bar(rt: Runtime, targets: dict[str, int]) -> AsyncIterator[None]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=False,
        ) as prog:
            ids = {}
            for name, target in targets.items():
                st = rt.statuses[name]
                ids[name] = prog.add_task(name, total=max(1, target - max(st.indexed, -1)))
            base = {name: rt.statuses[name].indexed for name in targets}

            async def refresh() -> None:
                while True:
                    for name in targets:
                        prog.update(ids[name], completed=max(0, rt.statuses[name].indexed - base[name]))
                    await asyncio.sleep(0.25)

            task = asyncio.create_task(refresh())
            try:
                yield
            finally:
                task.cancel()
                for name in targets:
                    prog.update(ids[name], completed=max(0, rt.statuses[name].indexed - base[name]))

    async def main_() -> dict[str, int]:
        return await do_backfill(cfg, _chains(chain), to_block, bar if progress else None)

    result = _run_async(main_)
    for name, height in (result or {}).items():
        click.echo(f"{name}: indexed to {height}")


@main.group()
def dashboards() -> None:
    """Grafana dashboards (grafanalib sources in dashboards/)."""


@dashboards.command("build")
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("dashboards/build")
)
def dashboards_build(out_dir: Path) -> None:
    """Render dashboards/*.dashboard.py into JSON files importable by Grafana."""
    from indexer.dashboards import build

    for p in build(out_dir):
        click.echo(str(p))


@main.command()
@config_option
def migrate(config_path: str) -> None:
    """Apply pending database migrations and exit."""
    from indexer.runtime import database

    cfg = load_or_exit(config_path)

    async def main_() -> None:
        async with database(cfg) as db, db.pool.acquire() as conn:
            rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        for r in rows:
            click.echo(f"{r['version']:03d} {r['name']}")

    _run_async(main_)


def _register_subcommands() -> None:
    from indexer.cli_drill import drill
    from indexer.cli_query import query
    from indexer.cli_report import report
    from indexer.cli_reserves import reserves

    main.add_command(drill)
    main.add_command(query)
    main.add_command(report)
    main.add_command(reserves)


_register_subcommands()


DEMO_ATTESTATION_AFTER = 15.0  # seconds after the demo's daemon is ready


def write_devnet_attestation(path: Path, amount_usd: str = "2500000.00") -> None:
    """A fresh, clearly illustrative reserve attestation for the demo (as of now)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "version": 1,
        "token": "USD1",
        "as_of": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "custodian": "Devnet Custodian (illustrative, not a real attestation)",
        "attestor": "Devnet Attestor",
        "assets": [
            {"category": "us_treasury_bills", "amount_usd": "2000000.00"},
            {"category": "cash", "amount_usd": "500000.00"},
        ],
        "total_usd": amount_usd,
    }
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))


EXIT_DATABASE_UNAVAILABLE = 3  # database.exit_on_unavailable: unreachable past unavailable_limit
EXIT_FINALITY_VIOLATION = 4  # `backfill`: a chain halted on a finality violation


def _run_async(fn: Any) -> Any:
    try:
        return asyncio.run(fn())
    except ConfigError as exc:
        for p in exc.problems:
            click.echo(p, err=True)
        sys.exit(2)
    except DatabaseGaveUp as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_DATABASE_UNAVAILABLE)
    except FinalityViolation as exc:
        click.echo(f"error: finality violation, chain halted: {exc}", err=True)
        sys.exit(EXIT_FINALITY_VIOLATION)
    except KeyboardInterrupt:
        return None


SOLANA_SLOT_SECONDS = 0.4


@main.command()
@click.option(
    "--reorg-every",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds between shallow reorgs, and between Solana forks above finalized (0: none).",
)
@click.option("--cache-dir", type=click.Path(file_okay=False), default=".usd1/cache", show_default=True)
@click.option(
    "--solana/--no-solana", "solana", default=True, show_default=True, help="Run the Solana devnet."
)
@click.option("--solana-only", is_flag=True, help="Run only the Solana devnet (no anvil chains).")
@click.option(
    "--solana-port", type=click.IntRange(0, 65535), default=8899, show_default=True, help="0: any free port."
)
@click.option(
    "--solana-admin/--no-solana-admin",
    default=True,
    show_default=True,
    help="Serve the devnet_* admin methods on the Solana RPC (it listens on 127.0.0.1 only).",
)
def devnet(
    reorg_every: float, cache_dir: str, solana: bool, solana_only: bool, solana_port: int, solana_admin: bool
) -> None:
    """Run the local devnet until Ctrl-C / SIGTERM: anvil chains (the TestToken or the real USD1, random
    traffic) and the Solana devnet (LiteSVM, its mint's traffic, admin methods)."""
    from indexer.daemon import install_signal_handlers
    from indexer.devnet.evm_devnet import DEFAULT_DEVNET_CHAINS, run_evm_devnet
    from indexer.devnet.orderbook_mock import run_devnet_book
    from indexer.devnet.solana_devnet import SolanaDevnet, run_solana_devnet

    if solana_only and not solana:
        raise click.UsageError("--solana-only and --no-solana exclude each other")
    configure_logging("info")

    def solana_ready(dn: SolanaDevnet) -> None:
        mint = dn.admin.token.mint_address if dn.admin is not None and dn.admin.token is not None else ""
        admin = "admin methods on" if dn.admin is not None else "admin methods off"
        click.echo(f"solana devnet  {dn.url}  {admin}  {mint}".rstrip(), err=True)

    async def main_() -> None:
        stop = asyncio.Event()
        install_signal_handlers(stop)
        parts: list[asyncio.Task[None]] = []
        if not solana_only:
            evm = run_evm_devnet(
                list(DEFAULT_DEVNET_CHAINS),
                stop,
                Path(cache_dir),
                reorg_every or None,
                own_process_group=True,
            )
            parts.append(asyncio.create_task(evm, name="evm-devnet"))
            parts.append(asyncio.create_task(run_devnet_book(stop), name="devnet-book"))
        if solana:
            sol = run_solana_devnet(
                stop,
                port=solana_port,
                slot_seconds=SOLANA_SLOT_SECONDS,
                fork_every=round(reorg_every / SOLANA_SLOT_SECONDS) if reorg_every > 0 else 0,
                admin=solana_admin,
                ready=solana_ready,
            )
            parts.append(asyncio.create_task(sol, name="solana-devnet"))
        await _run_until_stop_or_failure(parts, stop)

    try:
        _run_async(main_)
    except OSError as exc:  # a port in use, most often
        raise click.ClickException(f"the devnet could not start: {exc}") from None


async def _run_until_stop_or_failure(parts: list[asyncio.Task[None]], stop: asyncio.Event) -> None:
    """Wait for `parts` (each runs until `stop`); when one fails, stop the others and raise its error."""
    await asyncio.wait(parts, return_when=asyncio.FIRST_EXCEPTION)
    stop.set()
    results = await asyncio.gather(*parts, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
            raise r


@main.command()
@click.option(
    "--config",
    "config_path",
    default="config/devnet.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
)
@click.option(
    "--reorg-every", type=float, default=20.0, show_default=True, help="Seconds between devnet reorgs."
)
def demo(config_path: str, reorg_every: float) -> None:
    """Start the devnet and the daemon on it (embedded PostgreSQL), print the URLs, run until Ctrl-C."""
    from indexer.daemon import install_signal_handlers, run_daemon
    from indexer.devnet.evm_devnet import DEFAULT_DEVNET_CHAINS, start_evm_devnet
    from indexer.devnet.orderbook_mock import DEVNET_BOOK_PORT, DevnetBook
    from indexer.devnet.solana_devnet import run_solana_devnet
    from indexer.runtime import Runtime

    reserves = Path(".usd1/devnet/reserves.json").resolve()
    write_devnet_attestation(reserves)
    os.environ.setdefault("USD1_DEVNET_RESERVES", reserves.as_uri())
    cfg = load_or_exit(config_path)
    config_dir = Path(config_path).resolve().parent
    if not cfg.database.dsn:
        # The devnet chains are new on every start, so the demo's embedded database must be too.
        shutil.rmtree(cfg.data_dir / "pg", ignore_errors=True)

    def ready(rt: Runtime, port: int) -> None:
        base = f"http://{cfg.http.host}:{port}"
        lines = [
            "",
            "usd1-indexer demo is running (Ctrl-C to stop)",
            f"  transparency page  {base}/",
            f"  supply (JSON)      {base}/api/v1/supply",
            f"  status (JSON)      {base}/api/v1/status",
            f"  metrics            {base}/metrics",
            f"  readiness          {base}/readyz",
        ]
        lines += [f"  chain {c.name:<12} {', '.join(c.rpc)}" for c in rt.chains]
        click.echo("\n".join(lines) + "\n", err=True)
        # The attestation written at start is as of a time before the devnet chains had any
        # event, so its backing ratio at as_of has no block to be read at. A second one, as of a
        # moment when every chain has indexed events, replaces it (read within `reserves.interval`).
        asyncio.get_running_loop().call_later(DEMO_ATTESTATION_AFTER, write_devnet_attestation, reserves)

    async def main_() -> None:
        stop = asyncio.Event()
        install_signal_handlers(stop)
        chains = await start_evm_devnet(
            list(DEFAULT_DEVNET_CHAINS),
            cache_dir=cfg.data_dir / "cache",
            reorg_every=reorg_every or None,
            own_process_group=True,  # Ctrl-C stops the daemon first, then the nodes
        )
        book = await DevnetBook(port=DEVNET_BOOK_PORT).start()  # config/devnet.yaml's devnet-book venue
        sol_stop = asyncio.Event()
        sol_ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        solana = asyncio.create_task(
            run_solana_devnet(
                sol_stop,
                port=8899,
                fork_every=50,
                admin=True,
                ready=lambda _devnet: sol_ready.set_result(None),
            ),
            name="solana-devnet",
        )
        try:
            # The daemon starts once every devnet chain serves (else its first reads of the Solana
            # devnet fail and mark the endpoint unhealthy for a moment).
            stopped = asyncio.create_task(stop.wait())
            waiters: set[asyncio.Future[Any]] = {solana, sol_ready, stopped}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if solana.done():
                solana.result()  # the devnet failed to start: raise its error
                raise click.ClickException("the Solana devnet stopped before it was ready")
            if not stop.is_set():  # (Ctrl-C while the devnets were starting: just shut down)
                await run_daemon(cfg, stop, on_ready=ready, config_dir=config_dir)
        finally:
            sol_stop.set()
            await asyncio.gather(solana, return_exceptions=True)
            await book.stop()
            await chains.stop()

    _run_async(main_)
