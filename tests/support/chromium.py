"""
Headless Chromium (Debian's ``chromium``) driven over the DevTools protocol,
for tests of the web pages.

The protocol runs over a pair of pipes (``--remote-debugging-pipe``: the
browser reads commands on its fd 3 and writes answers and events on fd 4,
each message JSON ending in a NUL byte), so nothing but the standard library
is needed and no port is opened. Calls block (with timeouts): use it from a
synchronous test against a daemon running in another process.

    browser = Browser.start(testcase)            # killed when the test ends
    page = browser.new_page(credentials=("user", "password"))
    page.goto(url)
    page.text()                                   # document.body.innerText
    page.evaluate("document.title")
    page.screenshot(path)
    page.console                                  # console/log entries, CSP violations included
"""

import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

from tests.support.requirements import require_binary

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--password-store=basic",
    "--remote-debugging-pipe",
]

# Puts the two pipe ends on fds 3 and 4 of the browser, whatever their numbers here.
_LAUNCH = (
    "import fcntl, os, sys\n"
    "r = fcntl.fcntl(int(sys.argv[1]), fcntl.F_DUPFD, 10)\n"
    "w = fcntl.fcntl(int(sys.argv[2]), fcntl.F_DUPFD, 10)\n"
    "os.dup2(r, 3); os.dup2(w, 4); os.close(r); os.close(w)\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)


class BrowserError(AssertionError):
    pass


def find_chromium():
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return require_binary(name)
    return require_binary("chromium")


class Browser:
    """One browser process and its protocol connection."""

    def __init__(self, process, to_browser, from_browser, profile):
        self.process = process
        self._out = to_browser
        self._in = from_browser
        self._profile = profile
        self._buffer = b""
        self._next_id = 0
        self._events = []
        self._handlers = []

    @classmethod
    def start(cls, testcase=None, executable=None, timeout=60.0):
        executable = executable or find_chromium()
        profile = tempfile.mkdtemp(prefix="spectroreg-chromium-")
        command_read, command_write = os.pipe()
        event_read, event_write = os.pipe()
        argv = [sys.executable, "-c", _LAUNCH, str(command_read), str(event_write), executable]
        argv += FLAGS + ["--user-data-dir=" + profile, "about:blank"]
        log = open(os.path.join(profile, "chromium.log"), "wb")
        process = subprocess.Popen(argv, pass_fds=(command_read, event_write), stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=log, start_new_session=True)
        log.close()
        os.close(command_read)
        os.close(event_write)
        browser = cls(process, command_write, event_read, profile)
        if testcase is not None:
            testcase.addCleanup(browser.close)
        browser.call("Browser.getVersion", timeout=timeout)
        return browser

    # -- the protocol ---------------------------------------------------

    def _send(self, message):
        data = json.dumps(message).encode("utf-8") + b"\0"
        while data:
            written = os.write(self._out, data)
            data = data[written:]

    def _receive(self, deadline):
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError("chromium did not answer in time")
            ready, _, _ = select.select([self._in], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise BrowserError("chromium closed the pipe (exit {}):\n{}".format(
                    self.process.poll(), self.log_text()[-3000:]))
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message.decode("utf-8"))

    def _dispatch(self, message):
        for handler in list(self._handlers):
            if handler(message):
                return
        self._events.append(message)

    def call(self, method, params=None, session=None, timeout=30.0):
        self._next_id += 1
        ident = self._next_id
        message = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        self._send(message)
        deadline = time.monotonic() + timeout
        while True:
            received = self._receive(deadline)
            if received.get("id") == ident:
                if "error" in received:
                    raise BrowserError("{} failed: {}".format(method, received["error"]))
                return received.get("result", {})
            if "method" in received:
                self._dispatch(received)

    def wait_event(self, predicate, timeout=30.0):
        """The first queued or coming event for which C{predicate(message)} is true."""
        deadline = time.monotonic() + timeout
        while True:
            for index, event in enumerate(self._events):
                if predicate(event):
                    del self._events[index]
                    return event
            received = self._receive(deadline)
            if "method" in received:
                self._dispatch(received)

    def pump(self, seconds):
        """Handle events for C{seconds} (lets late console messages arrive)."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                received = self._receive(deadline)
                if "method" in received:
                    self._dispatch(received)
        except BrowserError:
            if self.process.poll() is not None:
                raise

    # -- pages ----------------------------------------------------------

    def new_page(self, credentials=None, width=1280, height=900):
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        return Page(self, session, credentials, width, height)

    # -- life -----------------------------------------------------------

    def log_text(self):
        try:
            with open(os.path.join(self._profile, "chromium.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def close(self):
        if self.process.poll() is None:
            try:
                self._send({"id": 0, "method": "Browser.close", "params": {}})
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, 9)
            except OSError:
                pass
            self.process.wait(timeout=10)
        for fd in (self._out, self._in):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)


class Page:
    """
    One tab. Every request passes through the Fetch domain, so HTTP
    authentication challenges are answered with C{credentials} (user,
    password) as the browser's login dialog would, or cancelled when None.

    @ivar console: console messages, log entries (CSP violations are
        logged there) and uncaught exceptions, as dicts with C{level} and
        C{text}.
    @ivar auth_challenges: how many 401 challenges the browser met.
    @ivar responses: (url, status) of every response received.
    """

    def __init__(self, browser, session, credentials, width, height):
        self.browser = browser
        self.session = session
        self.credentials = credentials
        self.console = []
        self.auth_challenges = 0
        self.responses = []
        browser._handlers.append(self._handle)
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(domain + ".enable")
        self.call("Fetch.enable", {"handleAuthRequests": True, "patterns": [{"urlPattern": "*"}]})
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def call(self, method, params=None, timeout=30.0):
        return self.browser.call(method, params, session=self.session, timeout=timeout)

    def _send_async(self, method, params):
        self.browser._next_id += 1
        self.browser._send({"id": self.browser._next_id, "method": method, "params": params,
                            "sessionId": self.session})

    def _handle(self, message):
        if message.get("sessionId") != self.session:
            return False
        method = message.get("method")
        params = message.get("params", {})
        if method == "Fetch.requestPaused":
            self._send_async("Fetch.continueRequest", {"requestId": params["requestId"]})
            return True
        if method == "Fetch.authRequired":
            self.auth_challenges += 1
            if self.credentials is None:
                response = {"response": "CancelAuth"}
            else:
                response = {"response": "ProvideCredentials", "username": self.credentials[0],
                            "password": self.credentials[1]}
            self._send_async("Fetch.continueWithAuth", {"requestId": params["requestId"],
                                                        "authChallengeResponse": response})
            return True
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.console.append({"level": params.get("type"), "text": text, "source": "console"})
            return True
        if method == "Log.entryAdded":
            entry = params.get("entry", {})
            self.console.append({"level": entry.get("level"), "text": entry.get("text", ""),
                                 "source": entry.get("source"), "url": entry.get("url")})
            return True
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.console.append({"level": "error", "text": json.dumps(details)[:2000], "source": "exception"})
            return True
        if method == "Network.responseReceived":
            response = params.get("response", {})
            self.responses.append((response.get("url"), response.get("status")))
            return True
        return False

    def goto(self, url, timeout=30.0):
        """Navigate and wait for the load event. @return: the HTTP status of the document."""
        before = len(self.responses)
        self._await_load(lambda: self.call("Page.navigate", {"url": url}), timeout)
        for response_url, status in self.responses[before:]:
            if response_url == url:
                return status
        return None

    def _await_load(self, action, timeout):
        self.browser._events = [e for e in self.browser._events
                                if not (e.get("sessionId") == self.session
                                        and e.get("method") == "Page.loadEventFired")]
        action()
        self.browser.wait_event(lambda e: e.get("sessionId") == self.session
                                and e.get("method") == "Page.loadEventFired", timeout)

    def click_and_wait(self, selector, timeout=30.0):
        """Click the first element matching C{selector} and wait for the page it loads."""
        script = "document.querySelector({}).click()".format(json.dumps(selector))
        self._await_load(lambda: self.evaluate(script), timeout)

    def evaluate(self, expression, timeout=30.0):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, timeout=timeout)
        if "exceptionDetails" in result:
            raise BrowserError("script failed: {}".format(result["exceptionDetails"]))
        return result.get("result", {}).get("value")

    def text(self):
        return self.evaluate("document.body ? document.body.innerText : ''")

    def url(self):
        return self.evaluate("location.href")

    def screenshot(self, path, full_page=True):
        params = {"format": "png"}
        if full_page:
            metrics = self.call("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics.get("contentSize")
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 4000),
                              "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", params, timeout=60.0)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def csp_violations(self):
        return [entry for entry in self.console
                if "Content Security Policy" in entry.get("text", "") or "Content-Security-Policy" in entry.get("text", "")]

    def errors(self):
        return [entry for entry in self.console if entry.get("level") == "error"]


__all__ = ["Browser", "Page", "BrowserError", "find_chromium"]
