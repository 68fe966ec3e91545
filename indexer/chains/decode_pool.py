"""Parse and decode large eth_getLogs replies in a worker process.

During a backfill the daemon's one Python thread is the bottleneck: it receives each reply,
parses the JSON (orjson), decodes every log, checks each against its block's bloom and encodes
the rows for COPY, while PostgreSQL and the node have CPU to spare. JSON parsing, log
decoding and encoding the rows for COPY (`indexer.store.copy_binary`) are pure and together cost
about 7 + 2.7 us per log, so a reply of at least
`OFFLOAD_MIN_BYTES` (about 500 logs) is sent, as bytes, to a worker process, which returns the
decoded events; this process then spends about 2.8 us per log on moving the bytes and rebuilding
the events. Smaller replies (the live path, where latency counts) are decoded in place.

The worker runs exactly `decode_reply`, the function this process runs when no worker is
configured or the worker died, so either path yields the same events or the same error.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import multiprocessing
import operator
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from indexer.chains.evm_decode import decode_logs
from indexer.errors import MalformedReply
from indexer.model import TokenEvent
from indexer.store.copy_binary import encode_event_rows

log = structlog.get_logger(__name__)

OFFLOAD_MIN_BYTES = 256 * 1024
_timestamp = operator.itemgetter(len(TokenEvent._fields) - 1)
_as_event: Callable[[tuple[Any, ...]], TokenEvent] = functools.partial(tuple.__new__, TokenEvent)


@dataclass(frozen=True, slots=True)
class DecodedLogs:
    """An eth_getLogs `result` decoded: the token's Transfer events as plain tuples in
    `TokenEvent` field order (cheap to pickle), or why the logs are malformed. `copy` is the rows
    encoded for the store's binary COPY, when every log carried its block's timestamp (else the
    timestamps come from headers later, and the store encodes the rows itself)."""

    rows: list[tuple[Any, ...]]
    error: str | None = None
    copy: bytes | None = None

    def events(self) -> list[TokenEvent]:
        """The events; raises `MalformedReply` for a reply whose logs did not decode."""
        if self.error is not None:
            raise MalformedReply(self.error)
        return list(map(_as_event, self.rows))


class NotJson(ValueError):
    """The reply body is not JSON."""


def decode_reply(raw: bytes, chain: str, token: str) -> Any:
    """PURE: a JSON-RPC reply with its `result`, when that is a list of log objects, replaced by
    `DecodedLogs`; any other reply (an error, a malformed result) is returned as parsed, for the
    RPC layer to judge. Raises `NotJson` when `raw` does not parse."""
    try:
        reply = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise NotJson(str(exc)) from None
    if type(reply) is dict:
        result = reply.get("result")
        if type(result) is list and all(type(x) is dict for x in result):
            try:
                rows = list(map(tuple, decode_logs(chain, result, token)))
            except MalformedReply as exc:
                reply["result"] = DecodedLogs([], str(exc))
            else:
                timed = all(map(_timestamp, rows))
                reply["result"] = DecodedLogs(rows, copy=encode_event_rows(rows) if timed else None)
    return reply


def _worker_decode(raw: bytes, chain: str, token: str) -> tuple[str, Any]:
    try:
        return ("reply", decode_reply(raw, chain, token))
    except NotJson as exc:
        return ("not_json", str(exc))


def _worker_init() -> None:
    # Same reasoning as `indexer.runtime.tune_gc`: the worker allocates only acyclic parse trees.
    gc.set_threshold(50_000, 50, 100)


class DecodePool:
    """Owns the worker processes (started on first use, `spawn`ed: a fresh interpreter, nothing
    inherited from the event loop). A worker that dies is replaced on the next reply; the reply it
    held is decoded in this process, so nothing is lost."""

    def __init__(self, processes: int, min_bytes: int | None = None) -> None:
        if processes < 1:
            raise ValueError("DecodePool needs at least one process")
        self.processes = processes
        self.min_bytes = OFFLOAD_MIN_BYTES if min_bytes is None else min_bytes
        self.offloaded = 0  # replies decoded by a worker
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
            )
        return self._executor

    async def decode(self, raw: bytes, chain: str, token: str) -> Any:
        """`decode_reply(raw, chain, token)`, in a worker when the reply is large."""
        if len(raw) < self.min_bytes:
            return decode_reply(raw, chain, token)
        loop = asyncio.get_running_loop()
        try:
            tag, value = await loop.run_in_executor(self._pool(), _worker_decode, raw, chain, token)
        except BrokenProcessPool as exc:
            log.warning("decode_worker_died", chain=chain, error=str(exc) or type(exc).__name__)
            self._discard()
            return decode_reply(raw, chain, token)
        self.offloaded += 1
        if tag == "not_json":
            raise NotJson(value)
        return value

    def worker_pids(self) -> list[int]:
        """The running workers' process ids (none before the first offloaded reply)."""
        procs = getattr(self._executor, "_processes", None) or {}
        return sorted(procs)

    def _discard(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
