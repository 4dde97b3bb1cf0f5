"""
The shape of the source, read from the source: no module over 600 lines, no
function over 60 (the test helpers in L{EXEMPT} aside), no import cycle
between spectroreg's packages, no use of Twisted's private attributes, and a
L{spectroreg.registry.registry.Registry} that stays a small facade.

Each failure lists every offender (path, line, name, size). The measures live
in L{tests.support.architecture}; C{python -m tests.support.architecture}
prints them all.
"""

import os
import textwrap

from twisted.trial.unittest import SynchronousTestCase

from tests.support import architecture
from tests.support.architecture import (
    EXEMPT,
    MAX_FUNCTION_LINES,
    MAX_MODULE_LINES,
    MAX_REGISTRY_PUBLIC,
    import_cycles,
    long_functions,
    long_modules,
    read_tree,
    registry_public,
    stale_doc_names,
    twisted_private_reads,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _listing(title, items):
    return "{} ({}):\n  {}".format(title, len(items), "\n  ".join(items))


class SourceShapeTests(SynchronousTestCase):
    """The bar, on spectroreg's own source."""

    def setUp(self):
        self.modules = read_tree(ROOT)

    def test_read_whole_package(self):
        # A walk that missed the subpackages would make every test below pass.
        self.assertIn("spectroreg.storage.s3.driver", self.modules)
        self.assertIn("spectroreg.tls.acme", self.modules)
        self.assertIn("spectroreg.registry.registry", self.modules)
        for path in EXEMPT:
            self.assertIn(path, {p for p, _ in self.modules.values()})

    def test_modules(self):
        found = long_modules(self.modules)
        if found:
            self.fail(_listing("modules over {} lines".format(MAX_MODULE_LINES), found))

    def test_functions(self):
        found = long_functions(self.modules)
        if found:
            self.fail(_listing("functions over {} lines".format(MAX_FUNCTION_LINES), found))

    def test_package_import_cycles(self):
        found = import_cycles(self.modules)
        if found:
            self.fail(_listing("package import cycles", found))

    def test_twisted_private_attributes(self):
        found = twisted_private_reads(self.modules)
        if found:
            self.fail(_listing("uses of Twisted's private attributes", found))

    def test_registry_facade(self):
        found = registry_public(self.modules)
        self.assertLessEqual(
            len(found),
            MAX_REGISTRY_PUBLIC,
            _listing("Registry's public methods and properties, at most {}".format(MAX_REGISTRY_PUBLIC), found),
        )

    def test_architecture_doc_names(self):
        # docs/architecture.md walks requests through the code by name:
        # every name it gives must still be there.
        with open(os.path.join(ROOT, "docs", "architecture.md"), encoding="utf-8") as f:
            found = stale_doc_names(f.read(), self.modules)
        if found:
            self.fail(_listing("names in docs/architecture.md missing from the source", found))


def _tree(**sources):
    """A fake tree: keyword C{spectroreg__a__b="..."} is spectroreg/a/b.py."""
    modules = {}
    for name, source in sources.items():
        dotted = name.replace("__", ".")
        if dotted.endswith(".init"):
            dotted = dotted[: -len(".init")]
            path = dotted.replace(".", "/") + "/__init__.py"
        else:
            path = dotted.replace(".", "/") + ".py"
        modules[dotted] = (path, textwrap.dedent(source))
    return modules


def _function(name, body_lines):
    return "def {}():\n".format(name) + "    x = 1\n" * (body_lines - 1) + "    return x\n"


class MeasureTests(SynchronousTestCase):
    """Each measure finds what it looks for, and only that."""

    def test_module_length(self):
        modules = _tree(
            spectroreg__short="x = 1\n" * MAX_MODULE_LINES,
            spectroreg__long="x = 1\n" * (MAX_MODULE_LINES + 1),
        )
        self.assertEqual(long_modules(modules), ["spectroreg/long.py: 601 lines"])

    def test_exempt_helpers(self):
        modules = _tree(spectroreg__storage__testing="x = 1\n" * 1000, spectroreg__testing="x = 1\n" * 1000)
        self.assertEqual(long_modules(modules), ["spectroreg/testing.py: 1000 lines"])

    def test_function_length(self):
        source = (
            _function("fits", MAX_FUNCTION_LINES - 1)
            + "class C:\n"
            + textwrap.indent(_function("too_long", MAX_FUNCTION_LINES), "    ")
            + "async def outer():\n"
            + textwrap.indent(_function("inner", MAX_FUNCTION_LINES), "    ")
        )
        found = long_functions(_tree(spectroreg__m=source))
        self.assertEqual(
            found,
            [
                "spectroreg/m.py:62 C.too_long 61 lines",
                "spectroreg/m.py:123 outer 62 lines",
                "spectroreg/m.py:124 outer.inner 61 lines",
            ],
        )

    def test_cycle_between_packages(self):
        modules = _tree(
            spectroreg__init="",
            spectroreg__a__init="",
            spectroreg__a__x="from spectroreg.b.y import f\n",
            spectroreg__b__init="",
            spectroreg__b__y="def f():\n    from ..c import z\n",
            spectroreg__c__init="",
            spectroreg__c__z="import spectroreg.a.x\n",
            spectroreg__d__init="import spectroreg.a\n",
        )
        self.assertEqual(
            import_cycles(modules),
            [
                "cycle among spectroreg.a, spectroreg.b, spectroreg.c: "
                "spectroreg.a -> spectroreg.b (spectroreg/a/x.py:1); "
                "spectroreg.b -> spectroreg.c (spectroreg/b/y.py:2); "
                "spectroreg.c -> spectroreg.a (spectroreg/c/z.py:1)"
            ],
        )

    def test_no_cycle_inside_a_package_or_through_the_top(self):
        modules = _tree(
            spectroreg__init="from spectroreg import service\n",
            spectroreg__service="from spectroreg.a import x\nfrom spectroreg import bounded\n",
            spectroreg__bounded="",
            spectroreg__a__init="from spectroreg.a.x import f\n",
            spectroreg__a__x="from . import y\nfrom spectroreg import bounded\n",
            spectroreg__a__y="from spectroreg.a import x\n",
        )
        self.assertEqual(import_cycles(modules), [])

    def test_subpackage_is_part_of_its_package(self):
        # A subpackage and its parent are one layer; a cycle through a
        # subpackage and another top-level package is still one.
        modules = _tree(
            spectroreg__s__init="",
            spectroreg__s__factory="from spectroreg.s.t import D\n",
            spectroreg__s__t__init="from spectroreg.s.t.d import D\n",
            spectroreg__s__t__d="from spectroreg.s import factory\nfrom spectroreg.u import w\n",
            spectroreg__u__init="",
            spectroreg__u__w="import spectroreg.s.t\n",
        )
        self.assertEqual(
            import_cycles(modules),
            [
                "cycle among spectroreg.s, spectroreg.u: "
                "spectroreg.s -> spectroreg.u (spectroreg/s/t/d.py:2); "
                "spectroreg.u -> spectroreg.s (spectroreg/u/w.py:1)"
            ],
        )

    def test_twisted_private(self):
        source = '''
            from twisted.web import http
            from twisted.web.server import Request

            class Channel(http.HTTPChannel):
                def _send100Continue(self):
                    self._networkProducer.pauseProducing()

                def lineReceived(self, line):
                    self._version = b"x"
                    return self._version

            class Ours(Request):
                pass

            class Deeper(Ours):
                def f(self):
                    return self._disconnected

            class Plain:
                def __init__(self, path):
                    self._path = path
                    self._stream = None

                def f(self, request, observer):
                    getattr(request, "_disconnected", False)
                    observer._stream = self._stream
                    return request.channel._path, self._path
            '''
        found = twisted_private_reads(_tree(spectroreg__m=source))
        self.assertEqual(
            found,
            [
                "spectroreg/m.py:6 Channel._send100Continue overrides a private method",
                "spectroreg/m.py:7 self._networkProducer",
                "spectroreg/m.py:18 self._disconnected",
                "spectroreg/m.py:26 request._disconnected",
                "spectroreg/m.py:27 observer._stream",
                "spectroreg/m.py:28 request.channel._path",
            ],
        )

    def test_registry_public(self):
        source = '''
            class Mixin:
                def from_mixin(self):
                    pass

            class Registry(Mixin, object):
                def __init__(self):
                    pass

                def _private(self):
                    pass

                async def stat(self):
                    pass

                @property
                def readonly(self):
                    return False
            '''
        modules = _tree(spectroreg__registry__registry=source)
        self.assertEqual(registry_public(modules), ["from_mixin", "readonly", "stat"])

    def test_doc_names(self):
        source = '''
            from twisted.web import http

            class Channel(http.HTTPChannel):
                def lineReceived(self, line):
                    self.count = 1

            def helper():
                return "_state"
            '''
        modules = _tree(spectroreg__web__init="", spectroreg__web__site=source)
        text = (
            "`web/site.py` `web/` `site.Channel.lineReceived` `Channel.count` `Channel.dataReceived`\n"
            "`helper(x)` `_state` `Location` `x.lineReceived`\n"
            "`web/gone.py` `api/` `Channel.gone`\n"
            "`site.gone_too` `gone(x)` `Channel.headerReceived` `x.gone_three`\n"
        )
        self.assertEqual(
            stale_doc_names(text, modules),
            [
                "line 3: web/gone.py: no such file or folder in spectroreg/",
                "line 3: api/: no such file or folder in spectroreg/",
                "line 3: Channel.gone: not in the source",
                "line 4: site.gone_too: not in the source",
                "line 4: gone: not in the source",
                "line 4: x.gone_three: not in the source",
            ],
        )

    def test_report_names_each_section(self):
        text = architecture.report(ROOT)
        for title in ("modules over", "functions over", "package import cycles", "Twisted's private", "Registry's"):
            self.assertIn(title, text)
