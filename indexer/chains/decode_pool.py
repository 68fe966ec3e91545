"""Parse and decode large eth_getLogs replies in worker processes.

During a backfill the daemon's one Python thread is the bottleneck: it receives each reply,
parses the JSON (orjson), decodes every log, checks each against its block's bloom and encodes
the rows for COPY, while PostgreSQL and the node have CPU to spare. Parsing, decoding and encoding
the rows for COPY (`indexer.store.copy_binary`) are pure and cost about 10 us per log, so a reply
of at least `OFFLOAD_MIN_BYTES` (about 500 logs) goes, as bytes, to a worker process
(`decode_worker`), which returns the decoded events and their COPY encoding; this process then
spends about 3 us per log on moving the bytes and rebuilding the events. Smaller replies (the
live path, where latency counts) are decoded in place, by the same `decode_reply`.

Workers are plain child processes speaking length-prefixed pickles over stdin/stdout (no
multiprocessing machinery: no re-import of the daemon's main module, no helper processes or
threads), started on first use. Requests are pipelined. A worker that dies, or whose request is
cancelled while being written, is killed and replaced on the next request; the replies it held are
decoded in this process, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import structlog

import indexer
from indexer.chains.decode_worker import DecodedLogs, NotJson, decode_reply
from indexer.chains.evm_families import LogDispatch

__all__ = ["OFFLOAD_MIN_BYTES", "DecodePool", "DecodedLogs", "NotJson", "decode_reply"]

log = structlog.get_logger(__name__)

OFFLOAD_MIN_BYTES = 256 * 1024
READ_BUFFER = 32 * 2**20
STOP_GRACE = 5.0  # seconds a worker gets to exit after its input closes
_SOURCE_ROOT = str(Path(indexer.__file__).resolve().parents[1])  # so the child imports this code


class _WorkerGone(Exception):
    pass


class _Worker:
    """One worker process. Requests are pipelined: several may be written before the first reply
    is read (the worker answers in order), so the worker always has its next request at hand
    while this process moves bytes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.pending: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._write = asyncio.Lock()
        self._reader = asyncio.create_task(self._read_replies())

    @classmethod
    async def start(cls) -> _Worker:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_SOURCE_ROOT, env.get("PYTHONPATH")) if p)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "indexer.chains.decode_worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            limit=READ_BUFFER,  # read whole replies ahead: a worker never waits on a full pipe
        )
        return cls(proc)

    @property
    def alive(self) -> bool:
        return not self._reader.done()

    async def _read_replies(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        error: BaseException = _WorkerGone(f"decode worker {self.proc.pid} exited")
        try:
            while True:
                size = int.from_bytes(await stdout.readexactly(4), "big")
                reply = await stdout.readexactly(size)
                fut = self.pending.popleft()
                if not fut.done():  # its caller may have been cancelled: the reply is dropped
                    fut.set_result(pickle.loads(reply))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except BaseException as exc:  # cancelled by kill(), or a reply that does not unpickle
            error = _WorkerGone(f"decode worker {self.proc.pid}: {type(exc).__name__}: {exc}")
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            while self.pending:
                fut = self.pending.popleft()
                if not fut.done():
                    fut.set_exception(error)

    async def ask(self, request: bytes) -> Any:
        stdin = self.proc.stdin
        assert stdin is not None
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        async with self._write:
            if not self.alive:
                raise _WorkerGone(f"decode worker {self.proc.pid} exited")
            self.pending.append(fut)
            try:
                stdin.write(len(request).to_bytes(4, "big"))
                stdin.write(request)
                await stdin.drain()
            except (ConnectionError, BrokenPipeError):
                fut.cancel()
                raise _WorkerGone(f"decode worker {self.proc.pid} exited") from None
            except BaseException:
                fut.cancel()
                self.kill()  # cancelled mid-frame: the pipe holds half a request
                raise
        return await fut

    def kill(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()

    async def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # the worker exits at the end of its input
        try:
            async with asyncio.timeout(STOP_GRACE):
                await self.proc.wait()
        except TimeoutError:
            self.kill()
            await self.proc.wait()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


class DecodePool:
    """`processes` decode workers shared by the EVM sources of one daemon; a request goes to the
    worker with the fewest requests in flight."""

    def __init__(self, processes: int, min_bytes: int | None = None) -> None:
        if processes < 1:
            raise ValueError("DecodePool needs at least one process")
        self.processes = processes
        self.min_bytes = OFFLOAD_MIN_BYTES if min_bytes is None else min_bytes
        self.offloaded = 0  # replies decoded by a worker
        self._workers: list[_Worker] = []
        self._starting = asyncio.Lock()
        self._closed = False

    def worker_pids(self) -> list[int]:
        """The running workers' process ids (none before the first offloaded reply)."""
        return sorted(w.proc.pid for w in self._workers if w.alive)

    async def _worker(self) -> _Worker:
        async with self._starting:
            for w in [w for w in self._workers if not w.alive]:
                w.kill()
                self._workers.remove(w)
            if len(self._workers) < self.processes:
                self._workers.append(await _Worker.start())
            return min(self._workers, key=lambda w: len(w.pending))

    async def decode(self, raw: bytes, chain: str, dispatch: LogDispatch) -> Any:
        """`decode_reply(raw, chain, dispatch)`, in a worker when the reply is large."""
        if len(raw) < self.min_bytes or self._closed:
            return decode_reply(raw, chain, dispatch)
        worker = await self._worker()
        request = pickle.dumps((raw, chain, dispatch), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            tag, value = await worker.ask(request)
        except _WorkerGone as exc:
            log.warning("decode_worker_died", chain=chain, error=str(exc))
            worker.kill()
            return decode_reply(raw, chain, dispatch)
        self.offloaded += 1
        if tag == "not_json":
            raise NotJson(value)
        return value

    async def close(self) -> None:
        self._closed = True
        workers, self._workers = self._workers, []
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
