"""A real `prometheus` server (Debian package) for end-to-end tests.

`Prometheus(workdir, targets=[...], rule_files=[...])` writes a prometheus.yml that scrapes the
targets as job `usd1-indexer` (the name alerts/usd1.rules.yml relies on) every `scrape_interval`
and evaluates the rule files every `evaluation_interval`, starts the binary on a free loopback
port with its TSDB under `workdir`, and waits for `/-/ready`. `stop()` terminates it (kill after
5 s) and reaps the process. The HTTP API helpers return the `data` part of the reply and raise
`PrometheusError` on an error reply.

`shorten_rules(text)` rewrites a rules file for a test that cannot wait minutes: every `for:`
becomes `for_` and every range-vector window and `offset` is divided by `window_divisor`
(at least `min_window`), e.g. `[10m]` -> `[20s]`, `[1h]` -> `[2m]`, `offset 30m` -> `offset 1m`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

import aiohttp
import yaml

from indexer.devnet.anvil import free_port, stop_process

T = TypeVar("T")

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION_RE = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_RANGE_RE = re.compile(r"\[((?:\d+(?:ms|s|m|h|d|w|y))+)(:[^\]]*)?\]")
_OFFSET_RE = re.compile(r"\boffset\s+((?:\d+(?:ms|s|m|h|d|w|y))+)")


class PrometheusError(RuntimeError):
    """Prometheus did not start, or an API call failed (status "error" or an HTTP error)."""


def duration_seconds(text: str) -> float:
    return sum(float(n) * _UNITS[u] for n, u in _DURATION_RE.findall(text))


def format_duration(seconds: float) -> str:
    s = round(seconds)
    if s % 3600 == 0:
        return f"{s // 3600}h"
    if s % 60 == 0:
        return f"{s // 60}m"
    return f"{s}s"


def shorten_expr(expr: str, divisor: float = 30.0, min_window: float = 10.0) -> str:
    """Divide every range window and offset of a PromQL expression by `divisor` (>= min_window)."""

    def scale(text: str) -> str:
        return format_duration(max(min_window, duration_seconds(text) / divisor))

    expr = _RANGE_RE.sub(lambda m: f"[{scale(m.group(1))}{m.group(2) or ''}]", expr)
    return _OFFSET_RE.sub(lambda m: f"offset {scale(m.group(1))}", expr)


def shorten_rules(
    text: str, *, for_: str = "5s", window_divisor: float = 30.0, min_window: float = 10.0
) -> str:
    """A copy of a Prometheus rules file with `for:` set to `for_` on every rule that has one and
    windows/offsets scaled down (see `shorten_expr`). Annotations (templates) are kept as they are."""
    doc = yaml.safe_load(text)
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule["expr"] = shorten_expr(rule["expr"], window_divisor, min_window)
            if "for" in rule:
                rule["for"] = for_
    return str(yaml.safe_dump(doc, sort_keys=False, width=1000))


class Prometheus:
    """One prometheus process; `async with Prometheus(...) as prom:` or `start()` / `stop()`."""

    def __init__(
        self,
        workdir: Path,
        *,
        targets: Sequence[str],
        rule_files: Sequence[Path] = (),
        alertmanagers: Sequence[str] = (),
        job: str = "usd1-indexer",
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        binary: str | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.workdir = workdir
        self.targets = list(targets)
        self.rule_files = list(rule_files)
        self.alertmanagers = list(alertmanagers)  # host:port of Alertmanagers to send alerts to
        self.job = job
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.binary = binary or shutil.which("prometheus")
        self.start_timeout = start_timeout
        self.port = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [
                {"job_name": self.job, "static_configs": [{"targets": self.targets}]},
            ],
        }
        if self.alertmanagers:
            cfg["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": self.alertmanagers}]}]}
        return cfg

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    async def start(self) -> Prometheus:
        if self.binary is None:
            raise PrometheusError("prometheus not installed (Debian package prometheus)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg_path = self.workdir / "prometheus.yml"
        cfg_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        self.port = free_port()
        self._log = self.log_path.open("ab")
        self._proc = await asyncio.create_subprocess_exec(
            self.binary,
            f"--config.file={cfg_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1d",
            "--log.level=info",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            await self._wait_ready()
        except BaseException:
            await self.stop()
            raise
        return self

    async def _wait_ready(self) -> None:
        assert self._proc is not None and self._session is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        while loop.time() < deadline:
            if self._proc.returncode is not None:
                raise PrometheusError(f"prometheus exited with {self._proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with self._session.get(f"{self.url}/-/ready") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
        raise PrometheusError(f"prometheus not ready within {self.start_timeout}s:\n{self.log_tail()}")

    async def stop(self) -> None:
        """Terminate (kill after 5 s) and reap; safe to call twice."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        proc, self._proc = self._proc, None
        if proc is not None:
            await stop_process(proc)
        if self._log is not None:
            self._log.close()
            self._log = None

    async def __aenter__(self) -> Prometheus:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- HTTP API --------------------------------------------------------------------------
    async def api(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET /api/v1/<path>; returns `data`, raises PrometheusError on an error reply."""
        if self._session is None:
            raise PrometheusError("prometheus is not started")
        async with self._session.get(f"{self.url}/api/v1/{path}", params=params) as resp:
            try:
                body = await resp.json(content_type=None)
            except (ValueError, aiohttp.ContentTypeError):
                raise PrometheusError(f"{path}: HTTP {resp.status}, not JSON") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            err = body.get("error") if isinstance(body, dict) else body
            raise PrometheusError(f"{path} {params or ''}: {err}")
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query now; returns the result as a list (a scalar becomes one item)."""
        data = await self.api("query", {"query": expr})
        result = data["result"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": result}]
        return list(result)

    async def value(self, expr: str) -> float | None:
        """The single value of an instant query, or None when it has no result."""
        result = await self.query(expr)
        return float(result[0]["value"][1]) if result else None

    async def alerts(self) -> list[dict[str, Any]]:
        return list((await self.api("alerts"))["alerts"])

    async def rules(self) -> list[dict[str, Any]]:
        """Every rule of every group (with `health`, `lastError`, `state`, `alerts`)."""
        return [r for g in (await self.api("rules"))["groups"] for r in g["rules"]]

    async def active_targets(self) -> list[dict[str, Any]]:
        return list((await self.api("targets"))["activeTargets"])


async def wait_for(
    probe: Callable[[], Awaitable[T | None]], timeout: float, what: str, interval: float = 0.5
) -> T:
    """Poll `probe` until it returns something other than None/False; TimeoutError after
    `timeout` seconds naming `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = await probe()
        if got is not None and got is not False:
            return got
        if loop.time() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


__all__ = [
    "Prometheus",
    "PrometheusError",
    "duration_seconds",
    "shorten_expr",
    "shorten_rules",
    "wait_for",
]
