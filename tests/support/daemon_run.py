"""A daemon running in-process for a test: the runtime's followers under a Supervisor and the HTTP
API on a free port, with helpers to read one chain's metrics and the API.

Subclass `Running` for test-specific helpers and pass the subclass to `running()`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from indexer.api.app import create_app
from indexer.config import Config
from indexer.daemon import serve_http
from indexer.runtime import Runtime, open_runtime
from indexer.sync.supervisor import Supervisor


@dataclass
class Running:
    rt: Runtime
    base: str
    http: aiohttp.ClientSession
    chain: str

    def metric(self, name: str, **labels: str) -> float | None:
        return self.rt.metrics.registry.get_sample_value(name, {"chain": self.chain, **labels})

    async def get(self, path: str, **params: str) -> Any:
        async with self.http.get(self.base + path, params=params or None) as r:
            assert r.status == 200, await r.text()
            return await r.json()


R = TypeVar("R", bound=Running)


@contextlib.asynccontextmanager
async def running(cfg: Config, chain: str, cls: type[R]) -> AsyncIterator[R]:
    async with open_runtime(cfg) as rt:
        stop = asyncio.Event()
        task = asyncio.create_task(Supervisor(list(rt.followers.values()), rt.metrics).run(stop))
        app = create_app(cfg, rt.store, rt.metrics, rt.statuses)
        try:
            async with serve_http(app, "127.0.0.1", 0) as port, aiohttp.ClientSession() as http:
                yield cls(rt, f"http://127.0.0.1:{port}", http, chain)
        finally:
            stop.set()
            await task
