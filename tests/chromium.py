"""A real headless Chromium driven over the DevTools protocol, for tests of HTML output.

The protocol runs over --remote-debugging-pipe (JSON messages ending in NUL on file
descriptors 3 and 4), so no websocket client and no port are needed. Every console error,
uncaught exception and browser log error of the page and of its frames is collected.
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
from typing import Any, Callable

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--mute-audio", "--autoplay-policy=no-user-gesture-required"]


def chromium_exe() -> str:
    """Debian's chromium; as root with apt-get it is installed when missing, otherwise the
    test fails with what to install (a browser test that skips would pass without a browser)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            subprocess.run(install, env=env, capture_output=True)
        found = shutil.which("chromium")
    if not found:
        pytest.fail("the report test needs a headless Chromium: install Debian's package with "
                    "`sudo apt-get install chromium` (or put a chromium on PATH)")
    return found


def _high_fd(fd: int) -> int:
    """A copy of fd numbered above 4, so moving it to 3 or 4 in the child overwrites nothing
    (our other fds are close-on-exec, so only 3 and 4 reach Chromium)."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return new


class Browser:
    """One headless Chromium with one page; console errors land in `errors`."""

    def __init__(self, profile_dir: Path, width: int = 1600, height: int = 1000, timeout: float = 60.0):
        self.timeout, self.errors, self._events = timeout, [], []
        self._next_id, self._buffer, self._replies = 0, b"", {}
        self._contexts: dict[int, tuple[str, str]] = {}  # JS context id -> (session, frame id)
        to_child_r, to_child_w = map(_high_fd, os.pipe())
        from_child_r, from_child_w = map(_high_fd, os.pipe())
        exe = chromium_exe()
        self._log = profile_dir / "chromium-stderr.log"
        profile_dir.mkdir(parents=True, exist_ok=True)
        stderr = self._log.open("wb")
        self.proc = subprocess.Popen(
            [exe, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile_dir}",
             f"--window-size={width},{height}", "about:blank"],
            preexec_fn=lambda: (os.dup2(to_child_r, 3), os.dup2(from_child_w, 4)),  # the protocol's fds
            close_fds=False, stdout=subprocess.DEVNULL, stderr=stderr)
        stderr.close()
        os.close(to_child_r)
        os.close(from_child_w)
        self._out, self._in = to_child_w, from_child_r
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self._watch(self.session)
        self.send("Page.enable", session=self.session)
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                        "mobile": False}, session=self.session)

    def _watch(self, session: str) -> None:
        """Collect errors of a page or frame session; frames in other processes attach too."""
        for domain in ("Runtime", "Log"):
            self.send(f"{domain}.enable", session=session)
        self.send("Target.setAutoAttach", {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True},
                  session=session)
        self.send("Runtime.runIfWaitingForDebugger", session=session)

    def _read(self, deadline: float) -> dict | None:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                return None
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise AssertionError(f"chromium exited: {self._log.read_text(errors='replace')[-2000:]}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _event(self, msg: dict) -> None:
        method, params = msg["method"], msg.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(f"exception: {details.get('exception', {}).get('description', details['text'])}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(f"log: {params['entry']['text']} ({params['entry'].get('url', '')[:80]})")
        elif method == "Runtime.executionContextCreated" and params["context"]["auxData"].get("isDefault"):
            context = params["context"]
            self._contexts[context["id"]] = (msg.get("sessionId", ""), context["auxData"]["frameId"])
        elif method == "Runtime.executionContextDestroyed":
            self._contexts.pop(params["executionContextId"], None)
        elif method == "Target.attachedToTarget" and "sessionId" in msg:  # a frame of a watched page
            self._events.append(msg)
            self._watch(params["sessionId"])
            return
        self._events.append(msg)

    def _dispatch(self, msg: dict) -> None:
        if "id" in msg:
            self._replies[msg["id"]] = msg
        else:
            self._event(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        ident = self._next_id
        msg: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._out, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while ident not in self._replies:  # events may send commands of their own meanwhile
            msg = self._read(deadline)
            if msg is None:
                raise AssertionError(f"chromium did not answer {method} in {self.timeout:.0f} s")
            self._dispatch(msg)
        reply = self._replies.pop(ident)
        if "error" in reply:
            raise AssertionError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def pump(self, seconds: float, until: Callable[[], bool] | None = None) -> None:
        """Let events arrive (console messages of things that happen after a call), for
        `seconds` or until `until()` holds, whichever comes first."""
        deadline = time.monotonic() + seconds
        while not (until and until()) and (msg := self._read(deadline)) is not None:
            self._dispatch(msg)

    def wait_event(self, method: str, seconds: float | None = None) -> dict:
        deadline = time.monotonic() + (seconds or self.timeout)
        while True:
            for i, msg in enumerate(self._events):
                if msg["method"] == method:
                    return self._events.pop(i)["params"]
            msg = self._read(deadline)
            if msg is None:
                raise AssertionError(f"no {method} within {seconds or self.timeout:.0f} s")
            self._dispatch(msg)

    def open(self, url: str) -> None:
        self._events.clear()
        self.send("Page.navigate", {"url": url}, session=self.session)
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str, session: str | None = None, context: int | None = None) -> Any:
        """The JSON value of a JS expression (awaited when it is a promise); exceptions fail."""
        params = {"expression": expression, "awaitPromise": True, "returnByValue": True}
        if context is not None:
            params["contextId"] = context
        result = self.send("Runtime.evaluate", params, session=session or self.session)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression[:200]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def frame_evaluate(self, expression: str, seconds: float = 15.0) -> Any:
        """evaluate() in the page's last child frame (an iframe the page shows) once its own
        document has loaded (not the about:blank it starts with); the frame may live in this
        process or in another one."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            children = self.send("Page.getFrameTree", session=self.session)["frameTree"].get("childFrames", [])
            if children:
                frame = children[-1]["frame"]["id"]
                found = [(ctx, session) for ctx, (session, f) in self._contexts.items() if f == frame]
                if found:
                    ctx, session = max(found)
                    try:
                        loaded = self.evaluate("document.readyState == 'complete' && location.href != 'about:blank'",
                                               session or self.session, ctx)
                    except AssertionError:  # the context went away under us: look again
                        loaded = False
                    if loaded:
                        return self.evaluate(expression, session or self.session, ctx)
            self.pump(0.1)
        raise AssertionError(f"no loaded child frame within {seconds:.0f} s")

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", {"format": "png"}, session=self.session)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except AssertionError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._out)
        os.close(self._in)
