"""
The web pages in headless Chromium (Debian's ``chromium``), against the real
daemon: the browser's Basic login, what the pages show, a delete through
the page, read-only mode, and no Content-Security-Policy violation.

Set ``SPECTROREG_UI_SCREENSHOTS=DIR`` (relative to the checkout) to keep the
screenshots of the three pages in DIR (docs/images holds the ones the README
shows).
"""

import os
import shutil

from twisted.trial import unittest

from spectroreg.ui.pages import human_size
from tests.support import pushing
from tests.support.chromium import Browser, find_chromium
from tests.support.daemon import REPO_ROOT, start_daemon
from tests.support.images import Image, Index
from tests.test_auth_daemon import basic, write_htpasswd

USER, PASSWORD = "alice", "s3cret-pass"
CSP = "img-src 'self'; script-src 'self'; style-src 'self'"
HEADERS = {
    "X-Content-Type-Options": ["nosniff"],
    "Content-Security-Policy": [CSP],
    "X-Frame-Options": ["DENY"],
    "Referrer-Policy": ["same-origin"],
}
SBOM = "application/vnd.example.sbom.v1+json"
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'

# What the three pages are pushed with (small layers: the test is about pages).
APP = Image("ui-app", layer_sizes=(4 * 1024, 48 * 1024))
MULTI = Index("ui-multi", layer_sizes=(2 * 1024,))


class _BrowserTestCase(unittest.TestCase):
    def setUp(self):
        find_chromium()  # skips (or fails under CI) before anything starts

    def config(self, root=None, readonly=False, delete=True, auth=True):
        storage = {"filesystem": {"rootdirectory": root}} if root else {"inmemory": None}
        storage["delete"] = {"enabled": delete}
        if readonly:
            storage["maintenance"] = {"readonly": {"enabled": True}}
        config = {"version": "0.1", "storage": storage, "http": {"headers": HEADERS}}
        if auth:
            path = os.path.join(self.workdir, "htpasswd")
            if not os.path.exists(path):
                write_htpasswd(path, {USER: PASSWORD})
            config["auth"] = {"htpasswd": {"realm": "spectroreg ui tests", "path": path}}
        return config

    @property
    def workdir(self):
        if not hasattr(self, "_workdir"):
            self._workdir = os.path.abspath(self.mktemp())
            os.makedirs(self._workdir)
        return self._workdir

    def push_all(self, daemon):
        auth = {"Authorization": basic(USER, PASSWORD)}
        pushing.push_image(daemon, "team/app", "1.0", APP, auth)
        pushing.put_manifest(daemon, "team/app", "latest", APP.manifest, auth)
        pushing.push_index(daemon, "multi", "2.1", MULTI, auth)
        return pushing.push_referrer(daemon, "team/app", APP.manifest, SBOM, b'{"packages":[]}',
                                     {"org.example.note": HOSTILE}, auth)

    def browser(self):
        return Browser.start(self)

    def keep_screenshot(self, page, name):
        path = page.screenshot(os.path.join(self.workdir, name))
        target = os.environ.get("SPECTROREG_UI_SCREENSHOTS")
        if target:
            # Relative to the checkout (trial runs in its own directory).
            target = os.path.join(REPO_ROOT, target)
            os.makedirs(target, exist_ok=True)
            shutil.copy(path, os.path.join(target, name))
        return path

    def assertNoCSPViolations(self, page):
        self.assertEqual(page.csp_violations(), [])
        self.assertEqual(page.errors(), [])


class LoginTests(_BrowserTestCase):
    def test_nothing_without_credentials(self):
        daemon = start_daemon(self, self.config())
        self.push_all(daemon)
        browser = self.browser()
        page = browser.new_page(credentials=None)
        base = daemon.url
        self.assertEqual(page.goto(base + "/"), 401)
        self.assertGreaterEqual(page.auth_challenges, 1)
        self.assertNotIn("team/app", page.text())
        for path in ("/ui/r/team/app", "/ui/static/ui.css", "/ui/static/ui.js"):
            self.assertEqual(page.goto(base + path), 401, path)
            text = page.text()
            self.assertNotIn("team/app", text)
            self.assertNotIn("copyable", text)
        # Only the pages themselves were fetched: an error page links to nothing.
        fetched = {url.split("?")[0] for url, status in page.responses if url.startswith(base)}
        self.assertTrue(fetched <= {base + p for p in ("/", "/ui/r/team/app", "/ui/static/ui.css",
                                                         "/ui/static/ui.js", "/favicon.ico")}, fetched)

        paths = [
            "/", "/ui/", "/ui/r/team/app", "/ui/m/team/app/1.0", "/ui/m/team/app/{}?raw=1".format(APP.digest),
            "/ui/delete?repository=team/app&reference=latest", "/ui/static/ui.css", "/ui/static/ui.js",
            "/ui/static/favicon.svg",
        ]
        # Fewer wrong attempts than the failure throttle allows (10): each
        # one is answered 401, not 429.
        attempts = [(None, paths)] + [(basic(user, password), ["/", "/ui/r/team/app", "/ui/static/ui.css"])
                                      for user, password in ((USER, "wrong"), ("mallory", PASSWORD))]
        for authorization, tried in attempts:
            headers = {"Accept": "text/html"}
            if authorization:
                headers["Authorization"] = authorization
            for path in tried:
                response = daemon.request("GET", path, headers)
                self.assertEqual(response.status, 401, path)
                self.assertIn("Basic realm=", response.header("WWW-Authenticate"))
                for secret in (b"team/app", b"multi", b"copyable", b"{"):
                    self.assertNotIn(secret, response.body, path)
            response = daemon.request("POST", "/ui/delete", dict(headers, **{
                "Content-Type": "application/x-www-form-urlencoded"}), b"repository=team%2Fapp&reference=latest")
            self.assertEqual(response.status, 401)
        self.assertEqual(pushing.tags_of(daemon, "team/app", {"Authorization": basic(USER, PASSWORD)}),
                         ["1.0", "latest"])


class BrowseTests(_BrowserTestCase):
    def test_pages_and_delete(self):
        daemon = start_daemon(self, self.config())
        referrer = self.push_all(daemon)
        # An index beside the image, so the repository page shows both kinds.
        pushing.push_index(daemon, "team/app", "2.0", MULTI, {"Authorization": basic(USER, PASSWORD)})
        base = daemon.url
        browser = self.browser()
        page = browser.new_page(credentials=(USER, PASSWORD))

        # The repositories, at / (the browser's Accept prefers HTML).
        self.assertEqual(page.goto(base + "/"), 200)
        self.assertGreaterEqual(page.auth_challenges, 1)
        text = page.text()
        self.assertIn("Repositories", text)
        self.assertIn("team/app", text)
        self.assertIn("multi", text)
        self.assertIn("2 repositories", text)
        # Our stylesheet applied and our script ran, under the CSP.
        self.assertEqual(page.evaluate("getComputedStyle(document.querySelector('header')).backgroundColor"),
                         "rgb(23, 50, 77)")
        self.keep_screenshot(page, "ui-index.png")

        # A repository: tags, digests, sizes, pull commands.
        self.assertEqual(page.goto(base + "/ui/r/team/app"), 200)
        text = page.text()
        image_size = APP.config.size + sum(layer.size for layer in APP.layers)
        for expected in ("1.0", "latest", "2.0", APP.digest[:19], human_size(image_size), "2026-01-01 00:00 UTC",
                         "docker pull {}/team/app:1.0".format(daemon.netloc),
                         "docker pull {}/team/app:latest".format(daemon.netloc), "image"):
            self.assertIn(expected, text)
        self.assertGreater(page.evaluate("document.querySelectorAll('button.copy').length"), 3)
        self.keep_screenshot(page, "ui-repository.png")

        # A multi-platform index shows its platforms.
        self.assertEqual(page.goto(base + "/ui/r/multi"), 200)
        text = page.text()
        self.assertIn("multi-platform index", text)
        for platform in ("linux/amd64", "linux/arm64", "linux/arm/v7"):
            self.assertIn(platform, text)
        self.assertEqual(page.goto(base + "/ui/m/multi/2.1"), 200)
        for image in MULTI.images:
            self.assertIn(image.digest[:19], page.text())

        # A manifest: layers, config, and its referrer with its artifact type;
        # the hostile annotation is shown as text and runs nothing.
        self.assertEqual(page.goto(base + "/ui/m/team/app/1.0"), 200)
        text = page.text()
        for expected in ("Layers", human_size(APP.layers[1].size), "linux/amd64", '["/bin/true"]', "History",
                         "Referrers", SBOM, referrer.digest[:19], HOSTILE):
            self.assertIn(expected, text)
        self.assertIsNone(page.evaluate("window.__pwned === undefined ? null : window.__pwned"))
        self.assertEqual(page.evaluate("document.querySelectorAll('main img, main script').length"), 0)
        self.keep_screenshot(page, "ui-manifest.png")
        self.assertEqual(page.goto(base + "/ui/m/team/app/{}?raw=1".format(APP.digest)), 200)
        self.assertIn('"schemaVersion": 2', page.text())

        browser.pump(0.3)
        self.assertNoCSPViolations(page)

        # The configured headers are on every page and file, as on every answer.
        auth = {"Authorization": basic(USER, PASSWORD), "Accept": "text/html"}
        for path in ("/", "/ui/r/team/app", "/ui/m/team/app/1.0", "/ui/static/ui.css", "/ui/static/ui.js",
                     "/ui/r/nothing", "/ui/delete?repository=team/app&reference=latest"):
            response = daemon.request("GET", path, auth)
            for name, values in HEADERS.items():
                self.assertEqual(response.header_values(name), values, (path, name))

        # Delete the tag "latest" through the page: link, confirmation, form.
        self.assertEqual(page.goto(base + "/ui/r/team/app"), 200)
        page.click_and_wait("a.danger[href*='reference=latest']")
        self.assertIn("Delete?", page.text())
        page.click_and_wait("form.confirm button[type=submit]")
        self.assertEqual(page.url(), base + "/ui/r/team/app?deleted=latest")
        self.assertIn("Deleted latest.", page.text())
        auth = {"Authorization": basic(USER, PASSWORD)}
        self.assertEqual(pushing.tags_of(daemon, "team/app", auth), ["1.0", "2.0"])
        # A manifest by digest: its tags go with it.
        page.goto(base + "/ui/m/multi/2.1")
        page.click_and_wait("a.danger")
        page.click_and_wait("form.confirm button[type=submit]")
        self.assertIn("Deleted {}.".format(MULTI.digest), page.text())
        # No tags left: an empty list, or (where storage has no directories
        # of its own) an unknown name, as Distribution answers.
        self.assertIn(pushing.tags_of(daemon, "multi", auth), ([], None))
        self.assertEqual(daemon.request("GET", "/v2/multi/manifests/" + MULTI.digest, auth).status, 404)

        browser.pump(0.3)
        self.assertNoCSPViolations(page)
        # The check sees a violation when there is one.
        page.evaluate("var s = document.createElement('style'); s.textContent = 'body{}';"
                      "document.head.appendChild(s); 1")
        browser.pump(0.5)
        self.assertEqual(len(page.csp_violations()), 1)


class ReadOnlyTests(_BrowserTestCase):
    def test_delete_refused(self):
        root = os.path.join(self.workdir, "storage")
        writer = start_daemon(self, self.config(root=root), name="writer")
        self.push_all(writer)
        writer.stop()
        daemon = start_daemon(self, self.config(root=root, readonly=True), name="readonly")
        base = daemon.url
        page = self.browser().new_page(credentials=(USER, PASSWORD))

        self.assertEqual(page.goto(base + "/ui/r/team/app"), 200)
        self.assertIn("latest", page.text())
        self.assertEqual(page.evaluate("document.querySelectorAll('a.danger, form').length"), 0)
        page.goto(base + "/ui/m/team/app/1.0")
        self.assertEqual(page.evaluate("document.querySelectorAll('a.danger, form').length"), 0)

        self.assertEqual(page.goto(base + "/ui/delete?repository=team/app&reference=latest"), 405)
        self.assertIn("read-only", page.text())
        status = page.evaluate(
            "fetch('/ui/delete', {method: 'POST', body: new URLSearchParams("
            "{repository: 'team/app', reference: 'latest', token: 'x'})}).then(r => r.status)")
        self.assertEqual(status, 405)
        auth = {"Authorization": basic(USER, PASSWORD)}
        self.assertEqual(pushing.tags_of(daemon, "team/app", auth), ["1.0", "latest"])
        self.assertEqual(
            daemon.request("GET", "/v2/team/app/manifests/latest",
                           dict(auth, Accept="application/vnd.oci.image.manifest.v1+json")).status, 200)
