"""`usd1-indexer report ...`: packages for auditors, read straight from the database.

    usd1-indexer report supply --config c.yaml --at 2025-06-30T00:00:00Z [--format json|csv|md]

`--format json` prints exactly the body of `GET /api/v1/supply/at?time=` (one function builds
both: `indexer.api.app.supply_at_body`); csv and md are renderings of that body
(`indexer.supply_at.csv_rows` / `markdown`). A time above what is final on a chain, or a bad time,
exits 2 with the API's message.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import click

from indexer import supply_at as sa
from indexer.cli_query import _emit, _load, _run, config_option


@click.group("report", context_settings={"help_option_names": ["-h", "--help"]})
def report() -> None:
    """Reports for auditors (read the database directly; same code as the HTTP API)."""


@report.command("supply")
@config_option
@click.option(
    "--at", "at", required=True, help="The time: ISO-8601 or Unix seconds; must be final on every chain."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sa.FORMATS),
    default="json",
    show_default=True,
    help="json: the API's body; csv: one row per chain and a global row; md: a readable page.",
)
def supply_cmd(config_path: str, at: str, fmt: str) -> None:
    """The supply package at a time: per chain the block at or before it, every class, the global
    figures and provenance (the body of GET /api/v1/supply/at)."""
    from indexer.api.app import supply_at_body

    cfg = _load(config_path)

    async def go(pool: asyncpg.Pool) -> dict[str, Any]:
        return await supply_at_body(cfg, pool, at)

    body = _run(cfg, go)
    if fmt == "md":
        click.echo(sa.markdown(body), nl=False)
        return
    columns, rows = sa.csv_rows(body)
    _emit(fmt, body, columns, rows)
