"""structlog configuration: short event names + snake_case keys; JSON for machines.

Records of other libraries' stdlib loggers (asyncio, aiohttp, pgserver, ...) go through the same
renderer, so a JSON log stays one JSON object per line. pgserver's INFO chatter about its own
process bookkeeping is kept at WARNING."""

from __future__ import annotations

import logging
import sys

import structlog

QUIET_LIBRARIES = ("pgserver",)


class _OwnHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `configure_logging` installs (others, e.g. a test's capture, are left alone)."""


def configure_logging(level: str = "info", fmt: str = "console") -> None:
    lvl = getattr(logging, level.upper(), logging.INFO)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    handler = _OwnHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _OwnHandler)]:  # configured again
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(lvl)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(lvl, logging.WARNING))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
