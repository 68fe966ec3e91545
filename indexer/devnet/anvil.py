"""A real `anvil` process (npm package @foundry-rs/anvil) as an async context manager.

With `slots_in_an_epoch=2` (the default here) anvil's block tags are `safe` = head-2 and
`finalized` = head-4.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import socket
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import aiohttp
import orjson
import structlog

REPO_ROOT = Path(__file__).resolve().parents[2]
ANVIL_RELPATH = Path("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")


class AnvilError(RuntimeError):
    """anvil is missing, did not start, or answered an RPC with an error."""


class RpcCallError(AnvilError):
    """A JSON-RPC error reply; `code`, `message` and `data` as sent by anvil."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        self.method = method
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"{method}: rpc error {code}: {message}")


async def stop_process(proc: asyncio.subprocess.Process, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; always reaps. Safe on an exited process."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def find_anvil(root: Path | None = None) -> Path:
    """The repo-local anvil binary; raises AnvilError naming `make install` when missing."""
    path = (root or REPO_ROOT) / ANVIL_RELPATH
    if not path.is_file():
        raise AnvilError(f"anvil not found at {path}; run `make install` (npm install) first")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class JsonRpcClient:
    """Minimal JSON-RPC over HTTP with aiohttp + orjson (the session is owned here)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def call(self, method: str, params: list[Any] | None = None) -> Any:
        body = orjson.dumps(
            {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params or []}
        )
        async with self._sess().post(
            self.url, data=body, headers={"Content-Type": "application/json"}
        ) as resp:
            raw = await resp.read()
        reply = orjson.loads(raw)
        if "error" in reply and reply["error"] is not None:
            err = reply["error"]
            raise RpcCallError(method, int(err.get("code", 0)), str(err.get("message")), err.get("data"))
        return reply.get("result")

    async def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        """Same as `call` (so a client satisfies `indexer.devnet.token.Rpc`)."""
        return await self.call(method, params)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class Anvil:
    """One anvil process. `async with Anvil(...) as a:` or `await a.start()` / `await a.stop()`."""

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        chain_id: int = 31337,
        slots_in_an_epoch: int = 2,
        block_time: float | None = None,
        code_size_limit: int | None = None,
        extra_args: list[str] | None = None,
        log_file: Path | None = None,
        binary: Path | None = None,
        start_timeout: float = 20.0,
        own_process_group: bool = False,
    ) -> None:
        """`own_process_group`: start anvil in a process group of its own, so a terminal's Ctrl-C
        reaches only its owner, which then stops it in order (interactive devnets)."""
        self.host = host
        self.port = port
        self.chain_id = chain_id
        self.slots_in_an_epoch = slots_in_an_epoch
        self.block_time = block_time
        self.code_size_limit = code_size_limit
        self.extra_args = list(extra_args or [])
        self.log_file = log_file
        self.binary = binary
        self.start_timeout = start_timeout
        self.own_process_group = own_process_group
        self._proc: asyncio.subprocess.Process | None = None
        self._log_handle: IO[bytes] | None = None
        self._client: JsonRpcClient | None = None
        self._log = structlog.get_logger("devnet.anvil")

    @property
    def url(self) -> str:
        if self.port == 0:
            raise AnvilError("anvil is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def command(self) -> list[str]:
        args = [
            str(self.binary or find_anvil()),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--slots-in-an-epoch",
            str(self.slots_in_an_epoch),
            "--silent",
        ]
        if self.block_time is not None:
            args += ["--block-time", _fmt_seconds(self.block_time)]
        if self.code_size_limit is not None:
            args += ["--code-size-limit", str(self.code_size_limit)]
        return args + self.extra_args

    async def dump_state(self, path: Path) -> Path:
        """Write the node's state (blocks, logs, hashes, balances) to `path` for `--load-state`."""
        state = await self.rpc("anvil_dumpState")
        if not isinstance(state, str) or not state.startswith("0x"):
            raise AnvilError(f"anvil_dumpState returned {state!r:.80}")
        raw = bytes.fromhex(state[2:])
        if raw[:2] == b"\x1f\x8b":  # gzip
            raw = gzip.decompress(raw)
        await asyncio.to_thread(_write_file, path, raw)
        return path

    async def clone(self, state_dir: Path) -> Anvil:
        """A second, started node with this one's history so far (same blocks and hashes), on
        its own port. From there the two chains go their own ways: what one mines the other
        does not see (a diverged or lying endpoint, in tests). The caller stops it."""
        path = await self.dump_state(state_dir / f"anvil-{self.port}-clone.json")
        twin = Anvil(
            chain_id=self.chain_id,
            slots_in_an_epoch=self.slots_in_an_epoch,
            block_time=self.block_time,
            code_size_limit=self.code_size_limit,
            extra_args=[*self._without_load_state(), "--load-state", str(path)],
            binary=self.binary,
        )
        return await twin.start()

    async def restart(self, state_dir: Path, down_for: float = 0.0) -> None:
        """Stop the node and start it again on the same port from its own state (blocks, logs,
        hashes and balances survive, as on a real node restart). Clients keep this object."""
        path = await self.dump_state(state_dir / f"anvil-{self.port}-state.json")
        await self.stop()
        await asyncio.sleep(down_for)
        self.extra_args = [*self._without_load_state(), "--load-state", str(path)]
        await self._start_once()

    def _without_load_state(self) -> list[str]:
        out: list[str] = []
        skip = False
        for a in self.extra_args:
            if skip:
                skip = False
            elif a == "--load-state":
                skip = True
            else:
                out.append(a)
        return out

    async def start(self) -> Anvil:
        """Start and wait until the RPC answers. With port 0 a free port is picked (and another
        one tried if anvil loses the race for it)."""
        if self._proc is not None:
            raise AnvilError("anvil already started")
        if self.port != 0:
            return await self._start_once()
        for attempt in range(3):
            self.port = free_port(self.host)
            try:
                return await self._start_once()
            except AnvilError:
                self.port = 0
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _start_once(self) -> Anvil:
        cmd = self.command()
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log_handle = self.log_file.open("ab")
        out: IO[bytes] | int = (
            self._log_handle if self._log_handle is not None else asyncio.subprocess.DEVNULL
        )
        self._proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            process_group=0 if self.own_process_group else None,
        )
        self._client = JsonRpcClient(self.url)
        try:
            await self._wait_ready()
        except BaseException:
            await self.stop()
            raise
        self._log.info("anvil_started", url=self.url, chain_id=self.chain_id, pid=self._proc.pid)
        return self

    async def _wait_ready(self) -> None:
        assert self._proc is not None and self._client is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        last: Exception | None = None
        while loop.time() < deadline:
            if self._proc.returncode is not None:
                raise AnvilError(
                    f"anvil exited with code {self._proc.returncode} before answering on {self.url}"
                    " (port in use?)"
                )
            try:
                cid = await self._client.call("eth_chainId")
                if int(cid, 16) == self.chain_id:
                    return
                raise AnvilError(f"{self.url} answers with chain id {int(cid, 16)}, expected {self.chain_id}")
            except (TimeoutError, aiohttp.ClientError, OSError, orjson.JSONDecodeError) as exc:
                last = exc
            await asyncio.sleep(0.05)
        raise AnvilError(f"anvil did not answer on {self.url} within {self.start_timeout}s: {last}")

    async def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        """One JSON-RPC call; raises RpcCallError on an error reply."""
        if self._client is None:
            raise AnvilError("anvil is not started")
        return await self._client.call(method, params)

    async def block_number(self, tag: str = "latest") -> int:
        block = await self.rpc("eth_getBlockByNumber", [tag, False])
        return int(block["number"], 16)

    async def mine(self, blocks: int = 1) -> None:
        await self.rpc("anvil_mine", [hex(blocks)])

    async def stop(self) -> None:
        """Terminate (then kill after 5 s) and wait; safe to call twice."""
        if self._client is not None:
            await self._client.close()
            self._client = None
        proc, self._proc = self._proc, None
        if proc is not None:
            await stop_process(proc)
            self._log.info("anvil_stopped", url=f"http://{self.host}:{self.port}")
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    async def __aenter__(self) -> Anvil:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def _fmt_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
