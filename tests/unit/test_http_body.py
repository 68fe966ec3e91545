"""`read_capped` reads a body that arrives in pieces whole (aiohttp's `read(n)` returns what has
arrived so far), and stops past the cap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from indexer.http_json import read_capped

BODY = bytes(range(256)) * 16_000  # 4,096,000 bytes


@pytest.fixture
async def slow_server() -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for i in range(0, len(BODY), 100_000):
            await resp.write(BODY[i : i + 100_000])
            await asyncio.sleep(0.002)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/"
    await runner.cleanup()


async def test_a_body_in_pieces_is_read_whole(slow_server: str) -> None:
    async with aiohttp.ClientSession() as s, s.get(slow_server) as resp:
        assert await read_capped(resp.content, len(BODY)) == BODY


async def test_a_body_over_the_cap_stops_one_byte_past_it(slow_server: str) -> None:
    async with aiohttp.ClientSession() as s, s.get(slow_server) as resp:
        got = await read_capped(resp.content, 1_000_000)
    assert got == BODY[:1_000_001]
