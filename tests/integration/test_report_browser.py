"""The HTML report in a real headless Chromium, driven over the Chrome DevTools Protocol.

The page is loaded from a ``file://`` URL with no server; every ``<img>`` must decode, the
console must stay free of errors, nothing but ``file:``/``data:`` may be requested, and the
page must not scroll sideways. Screenshots go to ``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from rosetta_core.report import render_report

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
]
WIDTH = 1400


def _unit_tests_module():
    """``tests/unit/test_report.py``, for its hand-made run builder."""
    spec = importlib.util.spec_from_file_location("_report_unit_tests", ROOT / "tests" / "unit" / "test_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class DevTools:
    """A minimal CDP client over one target's websocket: calls, and the events seen meanwhile."""

    def __init__(self, url: str) -> None:
        from websockets.sync.client import connect

        options = {"max_size": None, "open_timeout": 30, "compression": None}
        try:  # websockets >= 15 would use a proxy from the environment; loopback never needs one
            self.ws = connect(url, proxy=None, **options)
        except TypeError:
            self.ws = connect(url, **options)
        self.events: list[dict] = []
        self._id = 0

    def _recv(self, deadline: float) -> dict:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer from Chromium in time")
        return json.loads(self.ws.recv(timeout=left))

    def call(self, method: str, timeout: float = 60.0, **params) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            msg = self._recv(deadline)
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, event: str, timeout: float = 60.0) -> dict:
        for i, msg in enumerate(self.events):
            if msg.get("method") == event:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            msg = self._recv(deadline)
            if msg.get("method") == event:
                return msg
            self.events.append(msg)

    def evaluate(self, expression: str):
        got = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in got:
            raise RuntimeError(f"page script failed: {got['exceptionDetails']}")
        return got["result"].get("value")

    def close(self) -> None:
        self.ws.close()


@contextmanager
def chromium(workdir: Path):
    """A headless Chromium with a fresh profile; yields a :class:`DevTools` on its blank page."""
    profile = workdir / "profile"
    log = (workdir / "chromium.log").open("wb")
    proc = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={WIDTH},1000", "about:blank"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    tools = None
    try:
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Chromium did not start (exit {proc.poll()}); see {workdir / 'chromium.log'}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
        for _ in range(100):
            targets = json.loads(opener.open(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                break
            time.sleep(0.1)
        tools = DevTools(pages[0]["webSocketDebuggerUrl"])
        yield tools
    finally:
        if tools is not None:
            tools.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def _errors(events: list[dict]) -> list[str]:
    out = []
    for msg in events:
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            out.append("exception: " + json.dumps(p.get("exceptionDetails", {}))[:300])
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            out.append("log: " + p["entry"].get("text", ""))
    return out


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    content = _unit_tests_module().build_tiny_run(run, n=40, seed=1)
    page = render_report(run)
    n_imgs = page.read_text(encoding="utf-8").count("<img ")
    ARTIFACTS.mkdir(exist_ok=True)

    with chromium(tmp_path) as cdp:
        for domain in ("Page", "Runtime", "Log", "Network"):
            cdp.call(f"{domain}.enable")
        cdp.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=1000, deviceScaleFactor=1, mobile=False)
        cdp.call("Page.navigate", url=page.resolve().as_uri())
        cdp.wait_for("Page.loadEventFired")
        imgs = cdp.evaluate(
            "(async () => { const all = Array.from(document.images);"
            " await Promise.all(all.map(i => i.decode().catch(() => null)));"
            " return all.map(i => ({w: i.naturalWidth, h: i.naturalHeight, ok: i.complete, alt: i.alt,"
            " src: i.currentSrc.slice(0, 22)})); })()"
        )
        layout = cdp.evaluate(
            "({scroll: document.documentElement.scrollWidth, inner: window.innerWidth,"
            " height: document.documentElement.scrollHeight,"
            " concepts: document.querySelectorAll('article.concept').length,"
            " top: (document.querySelector('article.concept') || document.body).getBoundingClientRect().top + window.scrollY})"
        )
        full = cdp.call(
            "Page.captureScreenshot", format="png", captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": WIDTH, "height": min(layout["height"], 6000), "scale": 1},
        )
        (ARTIFACTS / "report-browser.png").write_bytes(base64.b64decode(full["data"]))
        concept = cdp.call(
            "Page.captureScreenshot", format="png", captureBeyondViewport=True,
            clip={"x": 0, "y": max(0, layout["top"] - 10), "width": WIDTH, "height": 900, "scale": 1},
        )
        (ARTIFACTS / "report-browser-concepts.png").write_bytes(base64.b64decode(concept["data"]))
        cdp.call("Emulation.setDeviceMetricsOverride", width=720, height=1000, deviceScaleFactor=1, mobile=False)
        narrow = cdp.evaluate("({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})")
        cdp.evaluate("1")  # flush events queued during the last calls
        events = list(cdp.events)

    assert len(imgs) == n_imgs > 0
    broken = [i for i in imgs if not (i["ok"] and i["w"] > 0 and i["h"] > 0)]
    assert not broken, broken[:5]
    assert all(i["alt"] for i in imgs)
    assert all(i["src"].startswith("data:image/png;base64") for i in imgs)
    assert not _errors(events), _errors(events)
    requested = [m["params"]["request"]["url"] for m in events if m.get("method") == "Network.requestWillBeSent"]
    assert all(url.startswith(("file:", "data:")) for url in requested), [u[:80] for u in requested]
    assert layout["concepts"] == len(content["concepts"])
    assert layout["scroll"] <= layout["inner"], "the page scrolls sideways at 1400 px"
    assert narrow["scroll"] <= narrow["inner"], f"the page scrolls sideways at 720 px: {narrow}"
    assert (ARTIFACTS / "report-browser.png").stat().st_size > 10_000
