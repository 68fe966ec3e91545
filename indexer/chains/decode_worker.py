"""The decode worker: `python -m indexer.chains.decode_worker`, driven by `decode_pool.DecodePool`.

PURE part: `decode_reply`, the same function the daemon runs in its own process for small replies
or when no worker is available. The process part reads requests from stdin and writes replies to
stdout, one at a time, each a frame: 4-byte big-endian length, then a pickle. A request is
(raw reply bytes, chain, LogDispatch); a reply is ("reply", decoded JSON-RPC reply) or ("not_json",
message). The worker exits when stdin closes. It imports only what decoding needs (no asyncio,
no logging stack): a fresh interpreter, about 30 MB.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import gc
import operator
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

import orjson

from indexer.chains.evm_families import Decoded, LogDispatch, UnaskedLog, decode_logs
from indexer.errors import MalformedReply
from indexer.model import TokenEvent
from indexer.store.copy_binary import encode_event_rows

_timestamp = operator.itemgetter(len(TokenEvent._fields) - 1)
_as_event: Callable[[tuple[Any, ...]], TokenEvent] = functools.partial(tuple.__new__, TokenEvent)


@dataclass(frozen=True, slots=True)
class DecodedLogs:
    """An eth_getLogs `result` decoded: the token's Transfer events as plain tuples in
    `TokenEvent` field order (cheap to pickle), the other families' records (`rest`, rare), or
    why the logs are malformed (`unasked`: a log the filter did not ask for, the endpoint's
    fault). `copy` is the Transfer rows encoded for the store's binary COPY, when every log
    carried its block's timestamp and no other log moved supply (else the store encodes the rows
    itself)."""

    rows: list[tuple[Any, ...]]
    error: str | None = None
    copy: bytes | None = None
    rest: Decoded | None = None
    unasked: bool = False

    def decoded(self) -> Decoded:
        """Every record; raises `MalformedReply` (`UnaskedLog`) for a reply that did not decode."""
        if self.error is not None:
            raise UnaskedLog(self.error) if self.unasked else MalformedReply(self.error)
        out = self.rest if self.rest is not None else Decoded()
        return Decoded(
            list(map(_as_event, self.rows)), out.supply, out.claims, out.controls, out.marks, out.skipped
        )

    def events(self) -> list[TokenEvent]:
        """The Transfer events (see `decoded`)."""
        return self.decoded().events


class NotJson(ValueError):
    """The reply body is not JSON."""


def decode_reply(raw: bytes, chain: str, dispatch: LogDispatch, *, encode: bool = False) -> Any:
    """PURE: a JSON-RPC reply with its `result`, when that is a list of log objects, replaced by
    `DecodedLogs`; any other reply (an error, a malformed result) is returned as parsed, for the
    RPC layer to judge. Raises `NotJson` when `raw` does not parse. `encode`: also encode the
    rows for COPY (the worker does; in the daemon's own process asyncpg's encoder is as fast)."""
    try:
        reply = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise NotJson(str(exc)) from None
    if type(reply) is dict:
        result = reply.get("result")
        if type(result) is list and all(type(x) is dict for x in result):
            try:
                got = decode_logs(chain, result, dispatch)
            except MalformedReply as exc:
                reply["result"] = DecodedLogs([], str(exc), unasked=isinstance(exc, UnaskedLog))
            else:
                rows = list(map(tuple, got.events))
                plain = not (got.supply or got.claims)
                timed = encode and plain and all(map(_timestamp, rows))
                rest = None if not got.marks and not got.skipped else got
                got.events = []
                reply["result"] = DecodedLogs(
                    rows, copy=encode_event_rows(rows) if timed else None, rest=rest
                )
    return reply


def handle(request: bytes) -> bytes:
    raw, chain, dispatch = pickle.loads(request)
    try:
        answer: tuple[str, Any] = ("reply", decode_reply(raw, chain, dispatch, encode=True))
    except NotJson as exc:
        answer = ("not_json", str(exc))
    return pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)


def serve(inp: BinaryIO, out: BinaryIO) -> None:
    """Answer framed requests until `inp` ends."""
    while True:
        head = inp.read(4)
        if len(head) < 4:
            return
        size = int.from_bytes(head, "big")
        request = inp.read(size)
        if len(request) < size:
            return
        reply = handle(request)
        out.write(len(reply).to_bytes(4, "big"))
        out.write(reply)
        out.flush()


PIPE_SIZE = 2**20  # Linux's unprivileged maximum; the default is 64 KiB


def main() -> None:
    # As `indexer.runtime.tune_gc`: the worker allocates only acyclic parse trees.
    gc.set_threshold(50_000, 50, 100)
    # Wider pipes: fewer wake-ups per multi-megabyte request and reply.
    for fd in (0, 1):
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    # Run the imported module, not this `__main__` copy: replies pickle DecodedLogs by the name
    # the daemon knows, indexer.chains.decode_worker.DecodedLogs.
    from indexer.chains import decode_worker

    decode_worker.main()
