"""Headless Chromium driven over its DevTools pipe (`--remote-debugging-pipe`: JSON messages
ending in NUL on file descriptors 3 and 4), with the standard library only: open a page from
disk, set the viewport width, run a measurement in the page and take screenshots.

The report itself has no script; the measurement is evaluated by the browser from outside the
page, as a reader's browser would lay it out. Nothing leaves the machine: the page has no
external resources and the browser's network features are switched off.
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

CHROMIUM = next((path for path in map(shutil.which, ("chromium", "chromium-browser")) if path), None)
TIMEOUT_S = 60.0


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless Chromium and one page in it."""

    def __init__(self, profile: Path) -> None:
        if CHROMIUM is None:
            raise BrowserError("headless Chromium is not installed")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        def wire() -> None:  # in the child: the pipe ends on the descriptors DevTools reads and writes
            read = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 10)
            write = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD, 10)
            os.dup2(read, 3)
            os.dup2(write, 4)

        command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   "--disable-extensions", "--mute-audio", "--remote-debugging-pipe", f"--user-data-dir={profile}",
                   "about:blank"]
        # close_fds=False: the child's descriptors 3 and 4 are made in `wire`, after subprocess would close
        # them; Python's own descriptors are not inheritable (PEP 446), so nothing else is passed on.
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         preexec_fn=wire, close_fds=False)
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (BrowserError, OSError):
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the protocol ----------------------------------------------------------------------------
    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self._events.append(reply)

    def _read(self) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT_S
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise BrowserError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise BrowserError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _wait_event(self, method: str) -> None:
        while True:
            for event in self._events:
                if event.get("method") == method:
                    self._events.remove(event)
                    return
            self._events.append(self._read())

    # -- what the tests use ----------------------------------------------------------------------
    def open(self, path: Path, width: int, height: int = 900) -> None:
        """Load `path` in a viewport `width` CSS pixels wide."""
        self.resize(width, height)
        self._events.clear()
        self.call("Page.navigate", session=True, url=path.resolve().as_uri())
        self._wait_event("Page.loadEventFired")

    def resize(self, width: int, height: int = 900) -> None:
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"the page's measurement raised: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """A PNG of the page (the whole page's height when `full_page`)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            width, height = self.evaluate("[document.documentElement.clientWidth,"
                                          " document.documentElement.scrollHeight]")
            params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": width, "height": height,
                                                            "scale": 1})
        data = self.call("Page.captureScreenshot", session=True, **params)["data"]
        path.write_bytes(base64.b64decode(data))
        return path


# Everything a reader reads as a box of text, measured in the page: the page must not scroll
# sideways (a table may, inside its own wrapper), no two boxes may overlap, and no text may
# spill out of its box.
LAYOUT_CHECK = r"""
(() => {
  const describe = (el) => {
    const text = (el.innerText || el.alt || "").trim().replace(/\s+/g, " ").slice(0, 60);
    return `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""} "${text}"`;
  };
  const viewport = window.innerWidth;
  const boxes = [];
  for (const el of document.querySelectorAll("h1,h2,h3,h4,p,li,th,td,figcaption,summary,caption,img")) {
    const closed = el.closest("details:not([open])");
    if (closed && !el.closest("summary")) continue;  // folded away: not shown
    if (el.checkVisibility && !el.checkVisibility({visibilityProperty: true})) continue;
    const r = el.getBoundingClientRect();
    if (r.width < 1 || r.height < 1) continue;
    boxes.push([el, r]);
  }
  const overlaps = [];
  for (let i = 0; i < boxes.length; i++) {
    const [a, ra] = boxes[i];
    for (let j = i + 1; j < boxes.length; j++) {
      const [b, rb] = boxes[j];
      if (rb.top >= ra.bottom && rb.top - ra.bottom > 0) continue;
      const w = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
      const h = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
      if (w > 2 && h > 2 && !a.contains(b) && !b.contains(a)) overlaps.push(`${describe(a)} / ${describe(b)}`);
    }
  }
  const spills = [], outside = [];
  for (const [el, r] of boxes) {
    const scrolled = el.closest(".scroll");
    if (el.tagName !== "IMG" && el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX === "visible")
      spills.push(describe(el));
    if (!scrolled && (r.right > viewport + 1 || r.left < -1)) outside.push(describe(el));
  }
  return {viewport, scrollWidth: document.documentElement.scrollWidth, boxes: boxes.length,
          overlaps: overlaps.slice(0, 15), spills: spills.slice(0, 15), outside: outside.slice(0, 15)};
})()
"""
