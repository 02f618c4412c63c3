"""The HTML explorer in a real headless browser (an installed Chromium or Chrome).

Chromium is driven through the Chrome DevTools Protocol over ``--remote-debugging-pipe``
(JSON messages separated by NUL bytes on file descriptors 3 and 4), so no websocket
client, selenium or playwright is needed. The browser is one already installed (see
``_find_browser``); if there is none the browser test skips with the reason. Nothing is
installed by the tests.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lstmkit.explain import explorer as explain
from lstmkit.explain.diagram import DIAGRAM_VALUES
from lstmkit.explain.html import QUANTITIES, display_value, step_values, write_explorer
from lstmkit.text.corpus import Vocab
from lstmkit.text.model import CharLM, CharLMConfig

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def _playwright_chromium() -> str | None:
    """Playwright's bundled Chromium, if playwright and its browser are already installed."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    try:
        with sync_playwright() as p:
            path = p.chromium.executable_path
    except Exception:
        return None
    return path if path and os.access(path, os.X_OK) else None


def _find_browser() -> str | None:
    """An installed Chromium or Chrome: $LSTMKIT_BROWSER, then PATH, then playwright's."""
    given = os.environ.get("LSTMKIT_BROWSER")
    if given:
        return shutil.which(given) or (given if os.access(given, os.X_OK) else None)
    for name in _BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return _playwright_chromium()


@pytest.fixture(scope="session")
def browser() -> str:
    """The browser to drive; the test skips (with the reason) when none is installed.

    Tests never install anything: install Chromium with the system's package manager
    (Debian: ``apt-get install chromium``) or point $LSTMKIT_BROWSER at an executable.
    """
    found = _find_browser()
    if not found:
        pytest.skip(
            "no Chromium or Chrome found ($LSTMKIT_BROWSER, "
            + ", ".join(_BROWSERS)
            + " on PATH, or playwright's bundled chromium); install one to run this test"
        )
    return found


class DevTools:
    """A minimal CDP client over chromium's --remote-debugging-pipe."""

    def __init__(self, exe: str, profile: Path, timeout: float = 30.0):
        self.timeout = timeout
        to_r, to_w = os.pipe()  # we write, chromium reads on fd 3
        from_r, from_w = os.pipe()  # chromium writes on fd 4, we read
        # copies at fds >= 10 so the child's dup2 onto 3 and 4 cannot clobber one another
        hi_r, hi_w = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)

        def child_fds() -> None:
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        args = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            args,
            pass_fds=(3, 4),
            preexec_fn=child_fds,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fd in (to_r, from_w, hi_r, hi_w):
            os.close(fd)
        self._w, self._r = to_w, from_r
        self._buf = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise TimeoutError("chromium did not answer (exited or timed out)")
            ready, _, _ = select.select([self._r], [], [], left)
            if ready:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise ConnectionError("chromium closed the DevTools pipe")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None):
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)


class Page:
    def __init__(self, cdp: DevTools, url: str):
        self.cdp = cdp
        target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1200, "height": 900, "deviceScaleFactor": 1, "mobile": False},
        )
        self.call("Page.enable")
        self.call("Page.navigate", {"url": url})

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.cdp.send(method, params, self.session)

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.js(expression):
            if time.monotonic() > deadline:
                raise TimeoutError(f"page never satisfied {expression}")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def explorer_case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny 2-layer char-LM, its traces over a short code-like text, and the page."""
    text = 'def f(x):\n    s = "a (b) c"\n    return [x, (x + 1)]\n'
    vocab = Vocab.build(text)
    model = CharLM(CharLMConfig(vocab_size=len(vocab), embed=6, hidden=8, layers=2), seed=3)
    traces = explain.char_model_traces(model, vocab, text)
    path = tmp_path_factory.mktemp("explorer") / "explorer.html"
    write_explorer(traces, text, path, top_cells=[], initial=(0, 0))
    return {"text": text, "traces": traces, "path": path}


def test_page_is_self_contained(explorer_case: dict[str, Any]) -> None:
    html = explorer_case["path"].read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html
    assert " src=" not in html and " href=" not in html  # no external scripts or styles


@pytest.mark.slow
def test_hover_shows_the_python_values(
    browser: str, explorer_case: dict[str, Any], tmp_path: Path
) -> None:
    text, traces = explorer_case["text"], explorer_case["traces"]
    layer, cell, t = 1, 5, text.index("(b)") + 1  # the "b" inside the string and parentheses
    cdp = DevTools(browser, tmp_path / "profile")
    try:
        page = Page(cdp, explorer_case["path"].resolve().as_uri())
        page.wait_for("document.body && document.body.dataset.ready === '1'")
        # select layer and cell through the controls, as a user would
        page.js(
            f"(() => {{ const l = document.getElementById('layer'); l.value = '{layer}';"
            " l.dispatchEvent(new Event('change'));"
            f" const c = document.getElementById('cell'); c.value = '{cell}';"
            " c.dispatchEvent(new Event('change')); return true; })()"
        )
        rect = page.js(
            f"(() => {{ const s = document.getElementById('ch-{t}');"
            " s.scrollIntoView({block: 'center'}); const r = s.getBoundingClientRect();"
            " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()"
        )
        page.call(
            "Input.dispatchMouseEvent", {"type": "mouseMoved", "x": rect["x"], "y": rect["y"]}
        )
        page.wait_for(f"document.getElementById('step').textContent === '{t}'", timeout=5)
        shown = page.js(
            "(() => { const o = {}; for (const q of "
            + json.dumps(list(QUANTITIES))
            + ") o[q] = document.getElementById('v-' + q).textContent; "
            "o.char = document.getElementById('char').textContent;"
            "o.where = document.getElementById('where').textContent; return o; })()"
        )
        png = base64.b64decode(page.call("Page.captureScreenshot", {"format": "png"})["data"])
    finally:
        cdp.close()
    (tmp_path / "explorer.png").write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    expected = {q: display_value(traces[layer][q][t, cell]) for q in QUANTITIES}
    assert {q: shown[q] for q in QUANTITIES} == expected
    assert shown["char"] == json.dumps(text[t]) and shown["where"] == f"layer {layer}, cell {cell}"
    # the values differ between cells, so a page that ignored the selection would fail
    other = {q: display_value(traces[0][q][t, 0]) for q in QUANTITIES}
    assert other != expected
    assert np.isfinite([traces[layer][q][t, cell] for q in QUANTITIES]).all()


# ---- the cell diagram ------------------------------------------------------------------------

_SHOWN = (
    "(() => { const o = {step: document.getElementById('step').textContent}; for (const q of "
    + json.dumps(list(DIAGRAM_VALUES))
    + ") o[q] = document.getElementById('d-' + q).textContent;"
    " o.f_width = document.getElementById('a-f').style.strokeWidth;"
    " o.active = document.getElementById('text').getAttribute('aria-activedescendant');"
    " return o; })()"
)


def _expected(traces: list[dict[str, np.ndarray]], layer: int, t: int, cell: int) -> dict[str, str]:
    return {q: display_value(v) for q, v in step_values(traces[layer], t, cell).items()}


@pytest.fixture(scope="module")
def variant_case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny char-LM with peepholes and coupled gates, its traces and its page."""
    text = "ab(c) d\n[e, f]\n"
    vocab = Vocab.build(text)
    variant = {"peepholes": True, "coupled_gates": True}
    config = CharLMConfig(vocab_size=len(vocab), embed=5, hidden=6, layers=2, variant=variant)
    model = CharLM(config, seed=4)
    traces = explain.char_model_traces(model, vocab, text)
    path = tmp_path_factory.mktemp("explorer") / "variant.html"
    write_explorer(traces, text, path, initial=(0, 0), options=model.lstm.cell.options)
    return {"text": text, "traces": traces, "path": path}


def _check_step(shown: dict[str, Any], traces: Any, layer: int, cell: int) -> int:
    """The diagram's values are the model's at the shown step; returns the step."""
    t = int(shown["step"])
    assert {q: shown[q] for q in DIAGRAM_VALUES} == _expected(traces, layer, t, cell), t
    assert shown["active"] == f"ch-{t}"
    f = float(display_value(traces[layer]["f"][t, cell]))
    assert float(shown["f_width"]) == pytest.approx(1 + 5 * f, abs=0.006)  # width by |f|
    return t


@pytest.mark.slow
def test_diagram_follows_click_keys_and_play(
    browser: str, variant_case: dict[str, Any], tmp_path: Path
) -> None:
    text, traces = variant_case["text"], variant_case["traces"]
    layer, cell, t = 1, 4, text.index("c")
    cdp = DevTools(browser, tmp_path / "profile")
    try:
        page = Page(cdp, variant_case["path"].resolve().as_uri())
        page.wait_for("document.body && document.body.dataset.ready === '1'")
        assert page.js("!!document.getElementById('link-coupled')")
        assert page.js("!!document.getElementById('peep-i') && !document.getElementById('in-f')")
        page.js(  # the unit selector, as a user would
            f"(() => {{ const l = document.getElementById('layer'); l.value = '{layer}';"
            " l.dispatchEvent(new Event('change'));"
            f" const c = document.getElementById('cell'); c.value = '{cell}';"
            " c.dispatchEvent(new Event('change')); return true; })()"
        )
        rect = page.js(
            f"(() => {{ const r = document.getElementById('ch-{t}').getBoundingClientRect();"
            " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            page.call(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": rect["x"], "y": rect["y"], "button": "left", "clickCount": 1},
            )
        page.wait_for(f"document.getElementById('step').textContent === '{t}'", timeout=5)
        assert _check_step(page.js(_SHOWN), traces, layer, cell) == t
        assert page.js("document.activeElement.id") == "text"  # keys now move the step
        key = {"key": "ArrowRight", "code": "ArrowRight", "windowsVirtualKeyCode": 39}
        page.call("Input.dispatchKeyEvent", {"type": "keyDown", **key})
        page.call("Input.dispatchKeyEvent", {"type": "keyUp", **key})
        page.wait_for(f"document.getElementById('step').textContent === '{t + 1}'", timeout=5)
        assert _check_step(page.js(_SHOWN), traces, layer, cell) == t + 1
        # play advances the step by itself; pause stops it
        page.js("document.getElementById('speed').value = '80'; true")
        page.js("document.getElementById('play').click(); true")
        assert page.js("document.getElementById('play').getAttribute('aria-pressed')") == "true"
        page.wait_for(f"+document.getElementById('step').textContent >= {t + 4}", timeout=10)
        page.js("document.getElementById('play').click(); true")
        shown = page.js(_SHOWN)
        time.sleep(0.3)
        assert page.js("document.getElementById('step').textContent") == shown["step"]
        assert _check_step(shown, traces, layer, cell) >= t + 4
        # playing on to the end stops there
        page.js("document.getElementById('play').click(); true")
        page.wait_for(
            "document.getElementById('play').getAttribute('aria-pressed') === 'false'", timeout=10
        )
        assert _check_step(page.js(_SHOWN), traces, layer, cell) == len(text) - 1
    finally:
        cdp.close()
