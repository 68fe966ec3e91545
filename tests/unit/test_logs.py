"""Log output: with `format: json` every line is one JSON object, including the records of other
libraries' stdlib loggers (asyncio, aiohttp, pgserver)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import orjson
import pytest
import structlog

from indexer.logs import configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = logging.getLogger("pgserver").level
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("pgserver").setLevel(quiet)
    structlog.configure(**config)


def test_json_logs_are_one_object_per_line_for_foreign_loggers_too(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", "json")
    configure_logging("info", "json")  # configuring again does not duplicate lines
    logging.getLogger("asyncio").warning("Task was destroyed but it is pending: %s", "<Task x>")
    logging.getLogger("pgserver").info("exiting 123 remaining pids=[]")  # chatter: dropped
    logging.getLogger("pgserver").warning("postgres did not stop")
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        logging.getLogger("aiohttp.server").exception("Error handling request")
    structlog.get_logger().info("own_event", chain="devnet-a")
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln]
    records = [orjson.loads(ln) for ln in lines]
    assert [(r["event"], r["level"], r.get("logger")) for r in records] == [
        ("Task was destroyed but it is pending: <Task x>", "warning", "asyncio"),
        ("postgres did not stop", "warning", "pgserver"),
        ("Error handling request", "error", "aiohttp.server"),
        ("own_event", "info", None),
    ]
    assert "ZeroDivisionError: boom" in records[2]["exception"]
    assert records[3]["chain"] == "devnet-a"
    assert all(r["timestamp"].endswith("Z") for r in records)


def test_debug_level_lets_pgserver_warnings_through_only(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("debug", "console")
    logging.getLogger("pgserver").info("exiting 123 remaining pids=[]")
    logging.getLogger("indexer.test").debug("a library debug line")
    err = capsys.readouterr().err
    assert "exiting 123" not in err
    assert "a library debug line" in err and "[indexer.test]" in err
