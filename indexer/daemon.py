"""`usd1-indexer run` and `backfill`: the long-running daemon and the one-shot backfill."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Sequence

import structlog
from aiohttp import web

from indexer.api.app import create_app
from indexer.config import Config
from indexer.runtime import Runtime, open_runtime
from indexer.sync.supervisor import Supervisor

log = structlog.get_logger(__name__)


def install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


@contextlib.asynccontextmanager
async def serve_http(app: web.Application, host: str, port: int) -> AsyncIterator[int]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    try:
        yield bound
    finally:
        await runner.cleanup()


async def run_daemon(
    cfg: Config,
    stop: asyncio.Event,
    chains: Sequence[str] | None = None,
    on_ready: Callable[[Runtime, int], None] | None = None,
) -> None:
    """Index every selected chain and serve HTTP until `stop` is set."""
    async with open_runtime(cfg, chains) as rt:
        app = create_app(cfg, rt.store, rt.metrics, rt.statuses)
        async with serve_http(app, cfg.http.host, cfg.http.port) as port:
            log.info("daemon_started", chains=[c.name for c in rt.chains], http=f"{cfg.http.host}:{port}")
            if on_ready is not None:
                on_ready(rt, port)
            supervisor = Supervisor(list(rt.followers.values()), rt.metrics, tick=rt.update_totals)
            services = [asyncio.create_task(supervisor.run(stop), name="supervisor")]
            try:
                await stop.wait()
                await asyncio.wait(services, timeout=10)
            finally:
                for t in services:
                    t.cancel()
                await asyncio.gather(*services, return_exceptions=True)
    log.info("daemon_stopped")


async def backfill(
    cfg: Config,
    chains: Sequence[str] | None,
    to_block: int | None,
    progress: Callable[[Runtime, dict[str, int]], contextlib.AbstractAsyncContextManager[None]] | None = None,
) -> dict[str, int]:
    """Index each selected chain up to `to_block` (default: its finalized head now); returns the
    indexed height per chain."""
    stop = asyncio.Event()
    install_signal_handlers(stop)
    async with open_runtime(cfg, chains) as rt:
        targets: dict[str, int] = {}
        for name, src in rt.sources.items():
            head = await src.head()
            targets[name] = to_block if to_block is not None else await src.finalized(head)
        ctx = progress(rt, targets) if progress is not None else contextlib.nullcontext()
        async with ctx:
            await asyncio.gather(
                *(rt.followers[name].run(stop, to_block=targets[name]) for name in rt.followers)
            )
        return {name: f.status.indexed for name, f in rt.followers.items()}
