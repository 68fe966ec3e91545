"""The watchlist loader (issue #17 item 5): loads every configured list at start, then checks each
for a change every `watchlist_reload_seconds` and reloads it when it changed.

A change is seen cheaply: a file's (mtime, size), an HTTP list's ETag (`If-None-Match`; a 304 is
"unchanged"); then the content's sha256 decides (same bytes: nothing to do). A list that cannot be
read or parsed is logged once (`watchlist_failed`, with the list and the line), the previous
version stays in force, and the recovery is logged once (`watchlist_recovered`). A bad version is
not re-parsed until its source changes again.

The lists in force are one immutable `Matcher`, swapped whole on a change: readers (the followers'
counting, the API's flagging) take `service.matcher` and never see a half-built state.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import aiohttp
import structlog

from indexer.config import ChainConfig, Config, WatchlistConfig
from indexer.http_json import read_capped
from indexer.metrics import Metrics
from indexer.watchlists import MAX_LIST_BYTES, Matcher, Watchlist, WatchlistError, parse

FETCH_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Unchanged:
    """The source is as last seen (same stat / ETag / bytes)."""


@dataclass(frozen=True, slots=True)
class Fetched:
    data: bytes
    version: str  # the stat or ETag it was read at ("" when the server sends no ETag)


def list_path(url: str, base_dir: Path | None) -> Path | None:
    """The file a list's url names (a path, file://PATH), or None for http(s)."""
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        # file:///abs, file://relative/path (netloc is the first segment), file:rel
        path = Path(unquote(parsed.netloc + parsed.path))
    else:
        path = Path(url)
    return path if path.is_absolute() else (base_dir or Path.cwd()) / path


class WatchlistService:
    @classmethod
    def configured(
        cls,
        cfg: Config,
        metrics: Metrics,
        session: aiohttp.ClientSession,
        config_dir: Path | None,
        counted: Sequence[str],
    ) -> WatchlistService | None:
        """The service for `cfg.watchlists` (None when none is configured)."""
        if not cfg.watchlists:
            return None
        return cls(
            cfg.watchlists,
            cfg.chains,
            metrics,
            session,
            reload_seconds=cfg.watchlist_reload_seconds,
            base_dir=config_dir,
            counted=counted,
        )

    def __init__(
        self,
        lists: Sequence[WatchlistConfig],
        chains: Sequence[ChainConfig],
        metrics: Metrics,
        session: aiohttp.ClientSession,
        *,
        reload_seconds: float = 300.0,
        base_dir: Path | None = None,
        logger: Any | None = None,
        clock: Callable[[], float] = time.time,
        counted: Sequence[str] | None = None,
    ) -> None:
        """`chains`: every configured chain (the API flags rows of any); `counted`: the chains
        this process follows, whose (chain, list) counter series start at zero (default: all)."""
        self._lists = list(lists)
        self._chains = list(chains)
        self._metrics = metrics
        self._session = session
        self._reload = reload_seconds
        self._base_dir = base_dir
        self._log = logger if logger is not None else structlog.get_logger("indexer.watchlists")
        self._clock = clock
        self._in_force: dict[str, Watchlist] = {}
        self._seen: dict[str, str] = {}  # list -> version (stat / ETag) last read
        self._seen_digest: dict[str, str] = {}  # list -> sha256 of the bytes last read
        self._error: dict[str, str] = {}  # list -> the failure being reported (logged once)
        self._seen_bad: dict[str, WatchlistError] = {}  # list -> why the version last seen is bad
        self.matcher: Matcher = Matcher.build((), self._chains)
        counted = [c.name for c in self._chains] if counted is None else list(counted)
        metrics.init_watchlists(counted, [w.name for w in self._lists])

    def current(self) -> Matcher:
        """The lists in force (for callers that take a provider)."""
        return self.matcher

    def error(self, name: str) -> str | None:
        return self._error.get(name)

    async def _fetch(self, w: WatchlistConfig) -> Fetched | Unchanged:
        path = list_path(w.url, self._base_dir)
        if path is not None:
            try:
                st = await asyncio.to_thread(os.stat, path)
                version = f"{st.st_mtime_ns}:{st.st_size}"
                if self._seen.get(w.name) == version:
                    return Unchanged()
                if st.st_size > MAX_LIST_BYTES:
                    raise WatchlistError(w.name, "<root>", f"{path} is larger than {MAX_LIST_BYTES} bytes")
                data = await asyncio.to_thread(path.read_bytes)
            except OSError as exc:
                raise WatchlistError(w.name, "<root>", f"cannot read {path}: {exc.strerror}") from None
            return Fetched(data, version)
        headers = {}
        etag = self._seen.get(w.name)
        if etag:
            headers["If-None-Match"] = etag
        try:
            async with asyncio.timeout(FETCH_TIMEOUT):
                async with self._session.get(w.url, headers=headers) as resp:
                    if resp.status == 304 and etag:
                        return Unchanged()
                    if resp.status != 200:
                        raise WatchlistError(w.name, "<root>", f"HTTP {resp.status} from {w.url}")
                    body = await read_capped(resp.content, MAX_LIST_BYTES)
                    if len(body) > MAX_LIST_BYTES:
                        raise WatchlistError(w.name, "<root>", f"larger than {MAX_LIST_BYTES} bytes")
                    new_etag = resp.headers.get("ETag", "")
        except TimeoutError:
            raise WatchlistError(
                w.name, "<root>", f"no reply from {w.url} within {FETCH_TIMEOUT:g}s"
            ) from None
        except aiohttp.ClientError as exc:
            raise WatchlistError(w.name, "<root>", f"{type(exc).__name__}: {exc}") from None
        return Fetched(body, new_etag)

    async def _check(self, w: WatchlistConfig) -> bool:
        """Reload one list if its source changed; True when the list in force changed."""
        try:
            got = await self._fetch(w)
            if isinstance(got, Unchanged):
                self._seen_again(w.name)
                return False
            wl_digest = hashlib.sha256(got.data).hexdigest()
            if self._seen_digest.get(w.name) == wl_digest:
                self._seen[w.name] = got.version
                self._seen_again(w.name)
                return False
            # Seen, good or bad: a bad version is parsed once, until it changes.
            self._seen[w.name], self._seen_digest[w.name] = got.version, wl_digest
            self._seen_bad.pop(w.name, None)
            try:
                wl = parse(w.name, w.format, got.data)
            except WatchlistError as exc:
                self._seen_bad[w.name] = exc
                raise
        except WatchlistError as exc:
            self._fail(w.name, exc)
            return False
        if w.name in self._error:
            self._log.info("watchlist_recovered", list=w.name)
            del self._error[w.name]
        self._metrics.watchlist_up.labels(w.name).set(1)
        old = self._in_force.get(w.name)
        self._in_force[w.name] = wl
        self._metrics.watchlist_loaded.labels(w.name).set(self._clock())
        for kind, n in wl.counts().items():
            self._metrics.watchlist_addresses.labels(w.name, kind).set(n)
        self._log.info(
            "watchlist_loaded",
            list=w.name,
            digest=wl.digest[:12],
            replaced=old.digest[:12] if old is not None else None,
            **wl.counts(),
        )
        return True

    def _seen_again(self, name: str) -> None:
        """The source answered with the version last seen. The list in force: a failure to read
        it (HTTP 503, a missing file) is over. A bad version: that is the failure again."""
        bad = self._seen_bad.get(name)
        if bad is not None:
            self._fail(name, bad)
            return
        wl = self._in_force.get(name)
        if name in self._error and wl is not None and wl.digest == self._seen_digest.get(name):
            self._log.info("watchlist_recovered", list=name)
            del self._error[name]
            self._metrics.watchlist_up.labels(name).set(1)

    def _fail(self, name: str, exc: WatchlistError) -> None:
        """Report a failure once (until another one, or a recovery); the list in force stays."""
        self._metrics.watchlist_up.labels(name).set(0)
        if self._error.get(name) != str(exc):
            old = self._in_force.get(name)
            self._log.error(
                "watchlist_failed",
                list=name,
                error=str(exc),
                kept=old.digest[:12] if old is not None else None,
            )
        self._error[name] = str(exc)

    async def refresh(self) -> bool:
        """Check every list once (concurrently); True when the lists in force changed."""
        changed = await asyncio.gather(*(self._check(w) for w in self._lists))
        if any(changed):
            self.matcher = Matcher.build(
                (self._in_force[w.name] for w in self._lists if w.name in self._in_force), self._chains
            )
        return any(changed)

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set: check the lists every `reload_seconds` (the first check is the
        caller's `refresh()` at start-up)."""
        while not stop.is_set():
            try:
                async with asyncio.timeout(self._reload):
                    await stop.wait()
                return
            except TimeoutError:
                pass
            await self.refresh()
