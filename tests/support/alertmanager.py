"""A real Alertmanager (Debian package prometheus-alertmanager) for tests, and a webhook receiver.

`alertmanager_process(config_file, workdir)` starts the binary on a free loopback port (no cluster
listener) with its storage under `workdir`, waits for `/-/ready`, yields the base URL, and stops
the process group (SIGTERM, SIGKILL after 10 s) on exit.

`webhook_routing(doc, urls, ...)` turns the repo's alerts/alertmanager.yml into a test copy: the
route tree and the inhibit rules stay as they are, every receiver becomes a webhook to
`urls[receiver name]`, and the routes' group_wait/group_interval shrink to seconds.

`WebhookSink` is an aiohttp server that records every notification per path.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from indexer.devnet.anvil import free_port

AM_BINARY = shutil.which("alertmanager") or shutil.which("prometheus-alertmanager")


def http_json(url: str, data: Any = None) -> Any:
    """GET (or POST `data` as JSON) and decode the JSON reply (None for an empty body)."""
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        raw = resp.read()
    return json.loads(raw) if raw.strip() else None


@contextlib.contextmanager
def alertmanager_process(config_file: Path, workdir: Path) -> Iterator[str]:
    """A running Alertmanager with `config_file`; yields its base URL."""
    if AM_BINARY is None:
        raise RuntimeError("alertmanager not installed (Debian package prometheus-alertmanager)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = workdir / "alertmanager.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [
            AM_BINARY,
            f"--config.file={config_file}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                urllib.request.urlopen(f"{base}/-/ready", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        log.close()


def webhook_routing(
    doc: Mapping[str, Any],
    urls: Mapping[str, str],
    *,
    group_wait: str = "1s",
    ticket_group_wait: str = "3s",
    group_interval: str = "2s",
) -> dict[str, Any]:
    """A copy of an Alertmanager config whose receivers are webhooks (same names, same routes and
    inhibitions) with short grouping timers. Tickets wait `ticket_group_wait`: as in production,
    tickets wait longer than pages, so an inhibition's source is there before they notify."""
    out: dict[str, Any] = copy.deepcopy(dict(doc))
    names = [r["name"] for r in out["receivers"]]
    missing = set(names) - set(urls)
    if missing:
        raise ValueError(f"no webhook URL for receiver(s) {sorted(missing)}")
    out["receivers"] = [
        {"name": n, "webhook_configs": [{"url": urls[n], "send_resolved": True}]} for n in names
    ]

    def shorten(route: dict[str, Any], ticket: bool) -> None:
        route["group_wait"] = ticket_group_wait if ticket else group_wait
        route["group_interval"] = group_interval
        for child in route.get("routes", []):
            shorten(child, 'severity="page"' not in child.get("matchers", []))

    shorten(out["route"], True)
    return out


@dataclass
class WebhookSink:
    """An aiohttp server recording Alertmanager webhook notifications by path."""

    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    port: int = 0
    _runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.setdefault(request.match_info["path"], []).append(await request.json())
        return web.Response(text="ok")

    async def start(self) -> WebhookSink:
        app = web.Application()
        app.router.add_post("/{path}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def alerts(self, path: str, status: str = "firing") -> list[dict[str, Any]]:
        """Every alert of every notification to `path` with that status."""
        return [a for n in self.received.get(path, []) for a in n["alerts"] if a["status"] == status]


__all__ = ["AM_BINARY", "WebhookSink", "alertmanager_process", "http_json", "webhook_routing"]
