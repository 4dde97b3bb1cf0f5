"""
The web pages without a browser: the escaping template layer, the Accept
rule for ``/``, the CSRF token and origin checks, the pages rendered with
hostile names and values, and the resource in memory (``StubTreq``) on the
in-memory registry: login, headers, static files, pagination, deletes,
read-only mode, ``http.ui.enabled``.
"""

import json
import os
import re
from html.parser import HTMLParser

from twisted.internet import defer, task
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web import server
from zope.interface import implementer

from spectroreg.api.testing import make_api_resource, make_registry, make_settings, stub_client
from spectroreg.auth.interfaces import IAuthenticator, TooManyRequests, Unauthorized
from spectroreg.config.errors import ConfigError
from spectroreg.config.load import load_settings
from spectroreg.config.settings import HTTPSettings, StorageSettings
from spectroreg.registry import manifests as mf
from spectroreg.registry.digests import parse_digest
from spectroreg.ui import csrf, make_ui, pages
from spectroreg.ui.accept import prefers_html
from spectroreg.ui.markup import Markup, escape, html, join
from spectroreg.ui.reader import ManifestView, RepositorySummary, TagRow, summarise_config
from spectroreg.web.root import RootResource
from tests.support.asynctest import async_test
from tests.support.images import Blob, Image, Index, canonical_json
from tests.support.stores import put_blob

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
EVIL = '"><script>alert(1)</script><img src=x onerror=alert(2)>&amp;\u202e'


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements = []
        self.texts = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.texts.append(data)


def elements(document):
    parser = _Elements()
    parser.feed(document)
    parser.close()
    return parser


def assert_no_active_content(testcase, document):
    """
    Parsed as a browser would: only our own script, stylesheet and icon; no
    inline script or style, no style attribute, no event handler, no image.
    """
    for tag, attrs in elements(document).elements:
        testcase.assertNotIn(tag, ("style", "img", "iframe", "object", "embed", "svg", "base", "meta")
                             if tag != "meta" or set(attrs) - {"charset", "name", "content"} else ())
        testcase.assertEqual([a for a in attrs if a.startswith("on") or a == "style"], [], (tag, attrs))
        if tag == "script":
            testcase.assertTrue(attrs.get("src", "").startswith(("/ui/static/ui.js?", "/pre/ui/static/ui.js?")),
                                attrs)
        if tag == "link":
            testcase.assertRegex(attrs.get("href", ""), r"^(/pre)?/ui/static/(ui\.css|favicon\.svg)\?v=")
        for name in ("href", "action", "src"):
            if name in attrs:
                testcase.assertTrue(attrs[name].startswith("/"), (tag, attrs))


class MarkupTests(unittest.SynchronousTestCase):
    def test_escape(self):
        self.assertEqual(escape('<a href="x">&\'</a>'), "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;&lt;/a&gt;")
        self.assertEqual(escape(None), "")
        self.assertEqual(escape(42), "42")
        self.assertIs(type(escape("x")), Markup)
        trusted = Markup("<b>")
        self.assertIs(escape(trusted), trusted)

    def test_html_escapes_every_argument(self):
        out = html('<a href="{h}" title="{t}">{b}</a>', h='x" onclick="y', t="<'>", b=EVIL)
        self.assertEqual(out, '<a href="x&quot; onclick=&quot;y" title="&lt;&#x27;&gt;">'
                              + str(escape(EVIL)) + "</a>")
        self.assertNotIn("<script", out)
        self.assertIsInstance(out, Markup)

    def test_markup_is_kept(self):
        inner = html("<b>{x}</b>", x="<i>")
        self.assertEqual(html("<p>{x}</p>", x=inner), "<p><b>&lt;i&gt;</b></p>")

    def test_format_spec_still_escaped(self):
        self.assertEqual(html("{x:>4}", x="<"), "   &lt;")

    def test_no_attribute_lookup_or_conversion(self):
        self.assertRaises(ValueError, html, "{x.__class__}", x="a")
        self.assertRaises(ValueError, html, "{x[0]}", x="a")
        self.assertRaises(ValueError, html, "{x!r}", x="a")

    def test_join_and_concatenation(self):
        self.assertEqual(join(["<a>", Markup("<b>")], ", "), "&lt;a&gt;, <b>")
        self.assertEqual(Markup("<b>") + "<i>", "<b>&lt;i&gt;")
        self.assertEqual("<i>" + Markup("<b>"), "&lt;i&gt;<b>")


class AcceptTests(unittest.SynchronousTestCase):
    TABLE = [
        (BROWSER_ACCEPT, True),  # Chromium, Firefox
        ("text/html, text/*;q=0.5, image/*", True),  # w3m
        ("text/html", True),
        ("TEXT/HTML;q=0.5, application/json;q=0.4", True),
        (None, False),  # curl without -H, health checks
        ("", False),
        ("*/*", False),  # curl
        ("application/json", False),
        ("application/vnd.oci.image.manifest.v1+json, */*", False),
        ("text/*", False),
        ("text/html;q=0", False),
        ("text/html;q=0.5, application/json", False),
        ("text/html;q=abc", False),
        ("text/html;q=7", False),
        (b"text/html", True),
    ]

    def test_table(self):
        for accept, expected in self.TABLE:
            self.assertEqual(prefers_html(accept), expected, accept)


class CSRFTests(unittest.SynchronousTestCase):
    key = csrf.token_key("a secret")

    def test_round_trip(self):
        token = csrf.issue_token(self.key, "alice", 1000)
        self.assertTrue(csrf.check_token(self.key, "alice", token, 1000))
        self.assertTrue(csrf.check_token(self.key, "alice", token, 1000 + csrf.TOKEN_LIFETIME))

    def test_refused(self):
        token = csrf.issue_token(self.key, "alice", 1000)
        issued, mac = token.split(".")
        for user, value, now in [
            ("bob", token, 1000),  # another user
            (None, token, 1000),
            ("alice", token, 1001 + csrf.TOKEN_LIFETIME),  # expired
            ("alice", token, 1000 - 61),  # from the future
            ("alice", "{}.{}".format(int(issued) + 1, mac), 1000),  # time changed
            ("alice", issued + "." + mac[:-1] + ("0" if mac[-1] != "0" else "1"), 1000),
            ("alice", "", 1000), ("alice", None, 1000), ("alice", "x", 1000), ("alice", "x" * 500, 1000),
        ]:
            self.assertFalse(csrf.check_token(self.key, user, value, now), (user, value, now))
        self.assertFalse(csrf.check_token(csrf.token_key("another"), "alice", token, 1000))
        # Without http.secret each process has its own key.
        self.assertNotEqual(csrf.token_key(None), csrf.token_key(None))
        self.assertEqual(csrf.token_key("s"), csrf.token_key("s"))

    def test_cross_site(self):
        table = [
            (None, None, "reg:5000", False, False),
            ("http://reg:5000", None, "reg:5000", False, False),
            ("http://REG:5000", "same-origin", "reg:5000", False, False),
            ("https://reg", None, "reg", True, False),
            (None, "none", "reg", False, False),
            ("http://evil.example", None, "reg:5000", False, True),
            ("https://reg:5000", None, "reg:5000", False, True),  # scheme differs
            ("http://reg:5001", None, "reg:5000", False, True),
            ("null", None, "reg:5000", False, True),
            (None, "cross-site", "reg:5000", False, True),
            (None, "same-site", "reg:5000", False, True),
            ("http://reg:5000", "cross-site", "reg:5000", False, True),
        ]
        for origin, fetch_site, host, secure, expected in table:
            self.assertEqual(csrf.cross_site(origin, fetch_site, host, secure), expected, (origin, fetch_site))


def _view(document, digest="sha256:" + "ab" * 32):
    body = json.dumps(document).encode("utf-8")

    class Record:
        pass

    record = Record()
    record.body = body
    record.digest = parse_digest(digest)
    record.media_type = mf.media_type_of(body)
    return ManifestView(record, document, mf.parse_manifest(body))


class RenderingTests(unittest.SynchronousTestCase):
    """Every page with hostile values where storage or the request could put them."""

    links = pages.Links("/pre", {"ui.css": "1", "ui.js": "2", "favicon.svg": "3"})

    def hostile_image(self):
        image = Image("evil", layer_sizes=(10,))
        document = json.loads(image.manifest.data)
        document["annotations"] = {EVIL: EVIL}
        document["config"]["mediaType"] = mf.OCI_MANIFEST.replace("manifest", "config")
        return _view(document)

    def test_index_page(self):
        summaries = [RepositorySummary("a/b", 3, 1700000000, 1234567, True),
                     RepositorySummary(EVIL, 0, None, None, False)]
        out = pages.index_page(self.links, summaries, 2, EVIL, "a", True)
        assert_no_active_content(self, out)
        self.assertIn(str(escape(EVIL)), out)
        self.assertIn('href="/pre/ui/r/a/b"', out)
        # The hostile name becomes a percent-encoded link, and the filter a query.
        self.assertIn("/pre/ui/r/%22%3E%3Cscript%3E", out)
        self.assertIn('rel="next" href="/pre/ui/?q=%22%3E%3Cscript', out)
        self.assertIn("2026", pages.human_time(1790000000))
        self.assertIn("1.2 MiB", out)

    def test_repository_page(self):
        view = self.hostile_image()
        row = TagRow("v1", view, 1700000000)
        row.created = EVIL
        out = pages.repository_page(self.links, "team/app", [row], 1, EVIL, None, False, True, notice=EVIL)
        assert_no_active_content(self, out)
        self.assertIn("docker pull " + str(escape(EVIL)) + "/team/app:v1", out)
        self.assertIn('href="/pre/ui/delete?repository=team%2Fapp&amp;reference=v1"', out)
        out = pages.repository_page(self.links, "team/app", [row], 1, "h", None, False, False)
        self.assertNotIn("delete", out)

    def test_manifest_page(self):
        view = self.hostile_image()
        config = summarise_config({
            "os": EVIL, "architecture": EVIL, "created": EVIL,
            "config": {"Entrypoint": [EVIL], "Cmd": EVIL, "WorkingDir": EVIL, "User": EVIL,
                       "Labels": {EVIL: EVIL}, "Env": ["PASSWORD=hunter2"]},
            "history": [{"created": EVIL, "created_by": EVIL}, "junk"],
        })
        referrers = [{"digest": "sha256:" + "cd" * 32, "mediaType": EVIL, "artifactType": EVIL, "size": "x",
                      "annotations": {EVIL: EVIL, "n": {"nested": EVIL}}}]
        out = pages.manifest_page(self.links, "team/app", "v1", view, config, referrers, "h:1", True)
        assert_no_active_content(self, out)
        self.assertNotIn("hunter2", out)
        self.assertIn(str(escape(EVIL)), out)
        self.assertIn("delete manifest", out)

    def test_many_referrers(self):
        view = self.hostile_image()
        referrers = [{"digest": "sha256:{:064x}".format(i), "mediaType": mf.OCI_MANIFEST, "size": 1}
                     for i in range(pages.MAX_REFERRERS + 5)]
        out = pages.manifest_page(self.links, "a", "v1", view, None, referrers, "h", False)
        self.assertEqual(out.count('<td class="artifact-type">'), pages.MAX_REFERRERS)
        self.assertIn("The first {} of {}".format(pages.MAX_REFERRERS, pages.MAX_REFERRERS + 5), out)

    def test_index_manifest(self):
        index = Index("evil", platforms=(("linux", "amd64", None), (EVIL, "arm", EVIL)), layer_sizes=(10,))
        view = _view(json.loads(index.manifest.data))
        self.assertEqual(view.kind, "index")
        self.assertEqual(view.platforms, ["linux/amd64", EVIL + "/arm/" + EVIL])
        out = pages.manifest_page(self.links, "m", "1", view, None, [], "h", False)
        assert_no_active_content(self, out)
        self.assertIn("linux/amd64", out)
        self.assertNotIn("delete", out)

    def test_raw_and_confirm_and_error(self):
        out = pages.raw_page(self.links, "a", "sha256:" + "ab" * 32,
                             json.dumps({"x": EVIL}).encode("utf-8"))
        assert_no_active_content(self, out)
        self.assertIn("&lt;/script&gt;", out)
        out = pages.raw_page(self.links, "a", "sha256:" + "ab" * 32, b"\xff<script>")
        assert_no_active_content(self, out)
        out = pages.confirm_page(self.links, "a", "v1", False, [], EVIL)
        assert_no_active_content(self, out)
        self.assertIn('name="token" value="' + str(escape(EVIL)) + '"', out)
        out = pages.error_page(self.links, 404, EVIL, authenticated=False)
        assert_no_active_content(self, out)
        # Nothing loaded or linked before login.
        self.assertEqual([(t, a) for t, a in elements(out).elements if set(a) & {"href", "src", "action"}], [])

    def test_kinds(self):
        artifact = {"schemaVersion": 2, "mediaType": mf.OCI_MANIFEST, "artifactType": "application/x.sbom",
                    "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "sha256:" + "0" * 64,
                               "size": 2}, "layers": []}
        view = _view(artifact)
        self.assertEqual((view.kind, view.artifact_type), ("artifact", "application/x.sbom"))
        del artifact["artifactType"]
        artifact["config"]["mediaType"] = "application/x.helm.config"
        view = _view(artifact)
        self.assertEqual((view.kind, view.artifact_type), ("artifact", "application/x.helm.config"))

    def test_config_summary_is_bounded(self):
        summary = summarise_config({"config": {"Labels": {str(i): "v" * 5000 for i in range(500)}},
                                    "history": [{"created_by": "x"}] * 1000})
        self.assertEqual(len(summary["labels"]), 100)
        self.assertTrue(all(len(v) <= 1001 for v in summary["labels"].values()))
        self.assertEqual(len(summary["history"]), 100)
        self.assertEqual(summarise_config({"config": "junk", "history": "junk"})["labels"], {})


@implementer(IAuthenticator)
class FakeAuthenticator:
    realm = "test-realm"

    def __init__(self):
        self.throttled = False

    def challenge(self):
        return [("WWW-Authenticate", 'Basic realm="test-realm"')]

    def authenticate(self, authorization, client):
        if self.throttled:
            return defer.fail(TooManyRequests(30))
        if authorization == b"Basic YWxpY2U6cGFzcw==":  # alice:pass
            return defer.succeed("alice")
        if authorization == b"Basic Ym9iOnBhc3M=":  # bob:pass
            return defer.succeed("bob")
        return defer.fail(Unauthorized())


ALICE = {"Authorization": "Basic YWxpY2U6cGFzcw=="}
BOB = {"Authorization": "Basic Ym9iOnBhc3M="}
HOST = "http://registry.test"


class ResourceTestCase(unittest.TestCase):
    storage = StorageSettings(driver="inmemory", delete_enabled=True)
    http = HTTPSettings(secret="s3cret")
    authenticator = None

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1800000000)
        self.build(self.storage)

    def build(self, storage, http=None, registry=None):
        self.settings = make_settings(storage=storage, http=http or self.http)
        if registry is None:
            registry = make_registry(self.settings, reactor=self.clock)
        else:
            registry.settings = storage
        self.registry = registry
        api = make_api_resource(self.registry, self.settings, authenticator=self.authenticator)
        self.ui = make_ui(self.registry, self.settings, self.authenticator, reactor=self.clock)
        self.client = stub_client(RootResource(api, self.settings.http.prefix, ui=self.ui))

    async def request(self, method, path, data=None, headers=None):
        all_headers = {"Accept": BROWSER_ACCEPT}
        all_headers.update(headers or {})
        all_headers = {k: v for k, v in all_headers.items() if v is not None}
        response = await self.client.request(method, HOST + path, data=data, headers=all_headers,
                                             allow_redirects=False)
        response.body = await response.content()
        response.text = response.body.decode("utf-8")
        return response

    def header(self, response, name):
        values = response.headers.getRawHeaders(name)
        return values[0] if values else None

    async def push_image(self, name, tag, image):
        for blob in image.blobs():
            await put_blob(self.registry, name, parse_digest(blob.digest), blob.data)
        reference = parse_digest(tag) if ":" in tag else tag
        await self.registry.manifests.put(name, reference, image.manifest.data, image.media_type)

    async def push_index(self, name, tag, index):
        for image in index.images:
            await self.push_image(name, image.digest, image)
        await self.registry.manifests.put(name, tag, index.manifest.data, index.media_type)

    async def token(self, name, reference, headers=None):
        response = await self.request("GET", "/ui/delete?repository={}&reference={}".format(name, reference),
                                      headers=headers)
        self.assertEqual(response.code, 200, response.text)
        return re.search(r'name="token" value="([^"]+)"', response.text).group(1)

    async def post_delete(self, name, reference, token, headers=None):
        body = "repository={}&reference={}&token={}".format(name, reference, token or "").encode("ascii")
        all_headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": HOST}
        all_headers.update(headers or {})
        all_headers = {k: v for k, v in all_headers.items() if v is not None}
        return await self.request("POST", "/ui/delete", body, all_headers)


class PageTests(ResourceTestCase):
    @async_test
    async def test_root_by_accept(self):
        response = await self.request("GET", "/")
        self.assertEqual(response.code, 200)
        self.assertEqual(self.header(response, "content-type"), "text/html; charset=utf-8")
        self.assertIn("<h1>Repositories</h1>", response.text)
        self.assertEqual(self.header(response, "vary"), "Accept")
        self.assertEqual(self.header(response, "cache-control"), "no-store")
        self.assertEqual(self.header(response, "x-frame-options"), "DENY")
        self.assertEqual(self.header(response, "x-content-type-options"), "nosniff")
        for accept in ("*/*", "application/json", None):
            headers = {"Accept": accept} if accept else {}
            response = await self.client.request("GET", HOST + "/", headers=headers)
            self.assertEqual((response.code, await response.content()), (200, b""), accept)
            self.assertEqual(self.header(response, "vary"), "Accept")
        response = await self.request("POST", "/")
        self.assertEqual(response.code, 405)  # the liveness answer, as before
        self.assertNotIn(b"Repositories", response.body)

    @async_test
    async def test_pages(self):
        image = Image("p", layer_sizes=(100, 200))
        await self.push_image("team/app", "v1", image)
        await self.push_image("team/app", "v2", image)
        await self.push_index("multi", "1", Index("m", layer_sizes=(10,)))
        response = await self.request("GET", "/ui/")
        self.assertIn('href="/ui/r/team/app"', response.text)
        self.assertIn(">multi<", response.text)
        response = await self.request("GET", "/ui/?q=TEAM")
        self.assertIn("team/app", response.text)
        self.assertNotIn(">multi<", response.text)
        response = await self.request("GET", "/ui/?n=1")
        self.assertIn('href="/ui/?n=1&amp;last=multi"', response.text)
        self.assertNotIn("team/app", response.text)
        response = await self.request("GET", "/ui/?last=multi")
        self.assertIn("team/app", response.text)
        self.assertNotIn('">multi<', response.text)

        response = await self.request("GET", "/ui/r/team/app", headers={"Host": "reg.example:5000"})
        self.assertEqual(response.code, 200)
        self.assertIn("docker pull reg.example:5000/team/app:v1", response.text)
        self.assertIn(pages.human_size(image.config.size + sum(layer.size for layer in image.layers)), response.text)
        self.assertIn('<span class="nw">2026-01-01</span> <span class="nw">00:00 UTC</span>', response.text)
        response = await self.request("GET", "/ui/r/team/app?n=1")
        self.assertIn('href="/ui/r/team/app?n=1&amp;last=v1"', response.text)
        self.assertNotIn(">v2<", response.text)

        response = await self.request("GET", "/ui/r/multi")
        for platform in ("linux/amd64", "linux/arm64", "linux/arm/v7"):
            self.assertIn(platform, response.text)
        response = await self.request("GET", "/ui/m/team/app/v1")
        self.assertIn("Layers", response.text)
        self.assertIn("delete manifest", response.text)
        response = await self.request("GET", "/ui/m/team/app/{}?raw=1".format(image.digest))
        self.assertIn("&quot;schemaVersion&quot;: 2", response.text)

    @async_test
    async def test_http_host_in_pull_commands(self):
        self.build(self.storage, HTTPSettings(host="https://registry.example.com:8443", prefix="/p"))
        await self.push_image("a", "v1", Image("h", layer_sizes=(10,)))
        response = await self.request("GET", "/p/ui/r/a")
        self.assertIn("docker pull registry.example.com:8443/a:v1", response.text)
        self.assertIn('href="/p/ui/static/ui.css?v=', response.text)
        self.assertEqual((await self.request("GET", "/")).code, 200)

    @async_test
    async def test_not_found_is_no_error(self):
        for path in ("/ui/r/nothing", "/ui/r/BAD..name", "/ui/m/a/v1", "/ui/m/a/sha256:zz", "/ui/m/a",
                     "/ui/r/%ff", "/ui/nothing", "/ui/static/", "/ui/static/nope.css", "/ui/static/../resource.py",
                     "/ui/m/a/" + "x" * 200):
            response = await self.request("GET", path)
            self.assertEqual(response.code, 404, path)
            assert_no_active_content(self, response.text)
        response = await self.request("PUT", "/ui/", b"x")
        self.assertEqual(response.code, 405)
        self.assertEqual(self.header(response, "allow"), "GET, HEAD")
        self.assertEqual(self.flushLoggedErrors(), [])

    @async_test
    async def test_hostile_values_escaped(self):
        name = "evil"
        empty = Blob(b"{}", "application/vnd.oci.empty.v1+json")
        await put_blob(self.registry, name, parse_digest(empty.digest), empty.data)
        document = {"schemaVersion": 2, "mediaType": mf.OCI_MANIFEST, "artifactType": EVIL,
                    "config": empty.descriptor(), "layers": [], "annotations": {EVIL: EVIL}}
        await self.registry.manifests.put(name, "t", canonical_json(document), mf.OCI_MANIFEST)
        for path in ("/ui/", "/ui/r/evil", "/ui/m/evil/t", "/ui/r/evil?deleted=" + "%3Cscript%3E",
                     "/ui/r/evil?last=%3Cscript%3E", "/ui/?q=%3Cscript%3Ealert(1)%3C/script%3E"):
            response = await self.request("GET", path)
            self.assertEqual(response.code, 200, path)
            assert_no_active_content(self, response.text)
        self.assertIn(str(escape(EVIL)), (await self.request("GET", "/ui/m/evil/t")).text)

    @async_test
    async def test_static_files(self):
        for filename, content_type in (("ui.css", "text/css; charset=utf-8"),
                                       ("ui.js", "text/javascript; charset=utf-8"),
                                       ("favicon.svg", "image/svg+xml")):
            response = await self.request("GET", "/ui/static/" + filename)
            self.assertEqual(response.code, 200)
            self.assertEqual(self.header(response, "content-type"), content_type)
            self.assertEqual(self.header(response, "cache-control"), "private, max-age=31536000, immutable")
            self.assertEqual(self.header(response, "x-content-type-options"), "nosniff")
            with open(os.path.join(os.path.dirname(pages.__file__), "static", filename), "rb") as f:
                self.assertEqual(response.body, f.read())
        page = (await self.request("GET", "/ui/")).text
        version = re.search(r'ui\.css\?v=([0-9a-f]+)"', page).group(1)
        self.assertIn(version, self.header(await self.request("GET", "/ui/static/ui.css"), "etag"))
        response = await self.request("HEAD", "/ui/static/ui.js")
        self.assertEqual((response.code, response.body), (200, b""))

    @async_test
    async def test_disabled(self):
        settings = HTTPSettings(ui_enabled=False)
        self.build(self.storage, settings)
        self.assertIsNone(self.ui)
        response = await self.request("GET", "/")
        self.assertEqual((response.code, response.body), (200, b""))
        self.assertIsNone(self.header(response, "vary"))
        response = await self.request("GET", "/ui/")
        self.assertEqual(response.code, 404)
        response = await self.request("GET", "/ui/static/ui.css")
        self.assertEqual(response.code, 404)


class DisconnectTests(ResourceTestCase):
    def test_client_gone_before_the_answer(self):
        """A client that leaves while the page is read gets nothing written after it; nothing is logged."""
        waiting = defer.Deferred()
        self.patch(self.ui._reader, "repositories", lambda: waiting)
        requests = []

        class Recorded(server.Request):
            def __init__(self, *args, **kwargs):
                server.Request.__init__(self, *args, **kwargs)
                requests.append(self)

        site = server.Site(self.ui, requestFactory=Recorded)
        channel = site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: registry.example\r\n\r\n")
        self.assertEqual(transport.value(), b"")
        [request] = requests
        channel.connectionLost(Failure(ConnectionDone()))
        waiting.callback([])
        self.assertEqual(transport.value(), b"")
        self.assertFalse(request.finished)


class DeleteTests(ResourceTestCase):
    @async_test
    async def test_delete_tag_and_digest(self):
        image = Image("d", layer_sizes=(10,))
        await self.push_image("a", "v1", image)
        await self.push_image("a", "v2", image)
        token = await self.token("a", "v1")
        response = await self.post_delete("a", "v1", token)
        self.assertEqual(response.code, 303, response.text)
        self.assertEqual(self.header(response, "location"), "/ui/r/a?deleted=v1")
        self.assertEqual(await self.registry.tags.all("a"), ["v2"])
        confirm = await self.request("GET", "/ui/delete?repository=a&reference=" + image.digest)
        self.assertIn("v2", confirm.text)  # the tags that go with it
        token = re.search(r'name="token" value="([^"]+)"', confirm.text).group(1)
        response = await self.post_delete("a", image.digest, token)
        self.assertEqual(response.code, 303)
        self.assertEqual(await self.registry.tags.all("a", must_exist=False), [])
        response = await self.request("GET", "/ui/r/a?deleted=" + image.digest)
        self.assertIn("Deleted " + image.digest, response.text)

    @async_test
    async def test_cross_site_refused(self):
        await self.push_image("a", "v1", Image("c", layer_sizes=(10,)))
        token = await self.token("a", "v1")
        for headers, token_value in [
            ({}, None),
            ({}, "123.abc"),
            ({}, token.replace(".", ".0")),
            ({"Origin": "http://evil.example"}, token),
            ({"Origin": "null"}, token),
            ({"Sec-Fetch-Site": "cross-site"}, token),
            ({"Sec-Fetch-Site": "same-site"}, token),
        ]:
            response = await self.post_delete("a", "v1", token_value, headers)
            self.assertEqual(response.code, 403, (headers, token_value))
            assert_no_active_content(self, response.text)
        # Expired.
        self.clock.advance(csrf.TOKEN_LIFETIME + 1)
        self.assertEqual((await self.post_delete("a", "v1", token)).code, 403)
        self.assertEqual(await self.registry.tags.all("a"), ["v1"])
        # No Origin header (an older browser): the token alone decides.
        token = await self.token("a", "v1")
        response = await self.post_delete("a", "v1", token, {"Origin": None})
        self.assertEqual(response.code, 303)

    @async_test
    async def test_bad_forms(self):
        await self.push_image("a", "v1", Image("b", layer_sizes=(10,)))
        token = await self.token("a", "v1")
        for name, reference, status in [("A", "v1", 400), ("a", "-x", 400), ("a", "sha256:zz", 400),
                                        ("a", "nope", 404), ("b", "v1", 404), ("", "", 400)]:
            response = await self.post_delete(name, reference, token)
            self.assertEqual(response.code, status, (name, reference))
        response = await self.request("POST", "/ui/delete", b"x" * 20000,
                                      {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(response.code, 413)
        response = await self.request("POST", "/ui/delete", b"token=%ff%fe",
                                      {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertIn(response.code, (400, 403))
        for path in ("/ui/delete", "/ui/delete?repository=a", "/ui/delete?repository=a&reference=nope"):
            self.assertIn((await self.request("GET", path)).code, (400, 404), path)
        self.assertEqual(await self.registry.tags.all("a"), ["v1"])
        self.assertEqual(self.flushLoggedErrors(), [])

    @async_test
    async def test_read_only_and_disabled(self):
        await self.push_image("a", "v1", Image("r", layer_sizes=(10,)))
        token = await self.token("a", "v1")
        for storage, message in [
            (StorageSettings(driver="inmemory", delete_enabled=True, readonly=True), "read-only"),
            (StorageSettings(driver="inmemory", delete_enabled=False), "storage.delete.enabled"),
        ]:
            self.build(storage, registry=self.registry)
            for path in ("/ui/r/a", "/ui/m/a/v1"):
                text = (await self.request("GET", path)).text
                self.assertNotIn("/ui/delete", text)
                self.assertNotIn("<form", text)
            response = await self.request("GET", "/ui/delete?repository=a&reference=v1")
            self.assertEqual(response.code, 405)
            self.assertIn(message, response.text)
            response = await self.post_delete("a", "v1", token)  # a valid token does not help
            self.assertEqual(response.code, 405)
            self.assertIn(message, response.text)
            self.assertEqual(await self.registry.tags.all("a"), ["v1"])


class AuthTests(ResourceTestCase):
    authenticator = FakeAuthenticator()

    @async_test
    async def test_every_path_needs_login(self):
        await self.push_image("a", "v1", Image("l", layer_sizes=(10,)))
        paths = ["/", "/ui", "/ui/", "/ui/r/a", "/ui/m/a/v1", "/ui/delete?repository=a&reference=v1",
                 "/ui/static/ui.css", "/ui/static/ui.js", "/ui/static/favicon.svg", "/ui/static/nope",
                 "/ui/r/nothing"]
        for headers in ({}, {"Authorization": "Basic bm86bm8="}, {"Authorization": "Bearer x"}):
            for path in paths:
                response = await self.request("GET", path, headers=headers)
                self.assertEqual(response.code, 401, path)
                self.assertEqual(self.header(response, "www-authenticate"), 'Basic realm="test-realm"')
                self.assertNotIn("v1", response.text)
                self.assertNotIn("href", response.text)
            response = await self.post_delete("a", "v1", "x", headers)
            self.assertEqual(response.code, 401)
        self.authenticator.throttled = True
        try:
            response = await self.request("GET", "/ui/", headers=ALICE)
            self.assertEqual(response.code, 429)
            self.assertEqual(self.header(response, "retry-after"), "30")
        finally:
            self.authenticator.throttled = False
        response = await self.request("GET", "/ui/r/a", headers=ALICE)
        self.assertEqual(response.code, 200)
        self.assertIn("v1", response.text)

    @async_test
    async def test_token_is_bound_to_the_user(self):
        await self.push_image("a", "v1", Image("u", layer_sizes=(10,)))
        token = await self.token("a", "v1", headers=BOB)
        response = await self.post_delete("a", "v1", token, ALICE)
        self.assertEqual(response.code, 403)
        self.assertEqual(await self.registry.tags.all("a"), ["v1"])
        response = await self.post_delete("a", "v1", token, BOB)
        self.assertEqual(response.code, 303)


class ConfigTests(unittest.SynchronousTestCase):
    def load(self, text, environ=None):
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("version: 0.1\nstorage:\n  inmemory: {}\n" + text)
        return load_settings(path, environ or {})

    def test_default_on(self):
        self.assertTrue(self.load("").http.ui_enabled)
        self.assertTrue(self.load("http:\n  ui: {}\n").http.ui_enabled)

    def test_off(self):
        self.assertFalse(self.load("http:\n  ui:\n    enabled: false\n").http.ui_enabled)
        self.assertFalse(self.load("", {"REGISTRY_HTTP_UI_ENABLED": "false"}).http.ui_enabled)

    def test_wrong(self):
        error = self.assertRaises(ConfigError, self.load, "http:\n  ui:\n    enabled: maybe\n")
        self.assertIn("http.ui.enabled: expected a boolean", str(error))
        settings = self.load("http:\n  ui:\n    colour: blue\n")
        self.assertTrue(any("http.ui.colour" in w for w in settings.warnings), settings.warnings)


class CountingDriver:
    """Passes every call to C{driver}, counting them by method and by kind of path."""

    def __init__(self, driver):
        self._driver = driver
        self.calls = []

    def __getattr__(self, name):
        target = getattr(self._driver, name)
        if name not in ("get_content", "stat", "list", "walk", "read"):
            return target

        def counted(path, *args, **kwargs):
            self.calls.append((name, path))
            return target(path, *args, **kwargs)

        return counted

    def count(self, method, contains=""):
        return len([1 for name, path in self.calls if name == method and contains in path])


class PageCostTests(ResourceTestCase):
    """The pages read a bounded part of a big registry, and manifests once."""

    REPOSITORIES = 55
    TAGS = 24

    @async_test
    async def test_bounded_reads(self):
        from spectroreg.storage.base import ValidatingDriver
        from spectroreg.storage.inmemory import InMemoryDriver

        self.driver = CountingDriver(ValidatingDriver(InMemoryDriver(reactor=self.clock)))
        self.build(self.storage, registry=make_registry(make_settings(storage=self.storage), driver=self.driver,
                                                        reactor=self.clock))
        config = Blob(b'{"architecture":"amd64","os":"linux"}', "application/vnd.oci.image.config.v1+json")
        for r in range(self.REPOSITORIES):
            name = "repo{:03d}".format(r)
            await put_blob(self.registry, name, parse_digest(config.digest), config.data)
            for t in range(self.TAGS):
                document = {"schemaVersion": 2, "mediaType": mf.OCI_MANIFEST, "config": config.descriptor(),
                            "layers": [], "annotations": {"n": "{}-{}".format(r, t)}}
                await self.registry.manifests.put(name, "t{:02d}".format(t), canonical_json(document), mf.OCI_MANIFEST)
        self.registry.manifests.cache = type(self.registry.manifests.cache)()  # as after a restart
        self.driver.calls = []

        response = await self.request("GET", "/ui/")
        self.assertEqual(response.code, 200)
        self.assertIn("repo049", response.text)
        self.assertNotIn("repo050", response.text)  # 50 a page
        self.assertIn("\u2265", response.text)  # more tags than looked at
        shown, summary_tags = 50, 20
        self.assertEqual(self.driver.count("walk"), 1)
        self.assertEqual(self.driver.count("list", "/_manifests/tags"), shown)
        self.assertEqual(self.driver.count("stat", "/current/link"), shown * summary_tags)
        self.assertEqual(self.driver.count("get_content", "/current/link"), shown * summary_tags)
        self.assertEqual(self.driver.count("get_content", "/blobs/"), shown * summary_tags)
        self.assertLessEqual(len(self.driver.calls), 1 + shown * (1 + 3 * summary_tags) + shown)

        # Again: the manifests come from memory.
        self.driver.calls = []
        await self.request("GET", "/ui/")
        self.assertEqual(self.driver.count("get_content", "/blobs/"), 0)

        # A repository page: its tags on this page only, plus their configs once.
        self.driver.calls = []
        response = await self.request("GET", "/ui/r/repo054?n=10")
        self.assertIn('href="/ui/r/repo054?n=10&amp;last=t09"', response.text)  # the size is kept
        self.assertEqual(self.driver.count("list"), 1)
        self.assertEqual(self.driver.count("stat", "/current/link"), 10)
        self.assertEqual(self.driver.count("get_content", "/blobs/"), 10 + 1)  # manifests + the shared config
        self.assertNotIn("walk", [name for name, _ in self.driver.calls])
