"""orjson-backed JSON responses, and capped reads of HTTP bodies."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
from aiohttp import web


async def read_capped(content: aiohttp.StreamReader, limit: int) -> bytes:
    """The whole body, or its first `limit + 1` bytes when it is longer (the caller refuses it).

    `StreamReader.read(n)` returns what has arrived so far, which may be a fraction of the body,
    so the body is read chunk by chunk up to the limit."""
    chunks, size = [], 0
    async for chunk in content.iter_chunked(1 << 16):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)[: limit + 1]


def json_response(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        content_type="application/json",
        headers=headers,
    )
