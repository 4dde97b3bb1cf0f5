"""
The twistd plugin and ``makeService``, in process: options, plugin
discovery, the assembled services, reload, and the address forms.
"""

import os

from twisted.application.internet import TimerService
from twisted.application.service import IService, IServiceMaker, MultiService
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.logger import Logger, LogPublisher
from twisted.plugin import IPlugin, getPlugins
from twisted.python import usage
from twisted.trial import unittest
from zope.interface import implementer
from zope.interface.verify import verifyObject

from spectroreg.config.errors import ConfigError
from spectroreg.config.settings import (
    AuthSettings,
    HtpasswdSettings,
    HTTPSettings,
    LogSettings,
    Settings,
    StorageSettings,
    UploadPurgingSettings,
)
from spectroreg.interfaces import IReloadable
from spectroreg.listeners import parse_addr
from spectroreg.logging import ACCESS_NAMESPACE
from spectroreg.service import RegistryService, makeService
from spectroreg.tls.interfaces import IServerTLS
from tests.support.asynctest import async_test
from tests.support.streams import RecordingStream
from tests.support.web import get, port_of


def plugin():
    import twisted.plugins

    for candidate in getPlugins(IServiceMaker, twisted.plugins):
        if candidate.tapname == "spectroreg":
            return candidate
    raise AssertionError("the spectroreg plugin was not found")


class PluginTests(unittest.TestCase):
    def test_discovered_and_provides(self):
        maker = plugin()
        verifyObject(IServiceMaker, maker)
        verifyObject(IPlugin, maker)

    def test_config_options(self):
        for argv in (["--config=/x.yml"], ["-c", "/x.yml"], ["--config", "/x.yml"]):
            options = plugin().options()
            options.parseOptions(argv)
            self.assertEqual(options["config"], "/x.yml")

    def test_config_from_environment(self):
        self.patch(os, "environ", dict(os.environ, REGISTRY_CONFIGURATION_PATH="/env.yml"))
        options = plugin().options()
        options.parseOptions([])
        self.assertEqual(options["config"], "/env.yml")

    def test_no_config_is_usage_error(self):
        environ = {k: v for k, v in os.environ.items() if k != "REGISTRY_CONFIGURATION_PATH"}
        self.patch(os, "environ", environ)
        self.assertRaises(usage.UsageError, plugin().options().parseOptions, [])

    def test_version(self):
        import io
        import sys

        out = io.StringIO()
        self.patch(sys, "stdout", out)
        self.assertRaises(SystemExit, plugin().options().parseOptions, ["--version"])
        self.assertIn("spectroreg ", out.getvalue())

    def test_make_service(self):
        path = os.path.abspath(self.mktemp()) + ".yml"
        with open(path, "w") as f:
            f.write("version: 0.1\nstorage: inmemory\nhttp:\n  addr: 127.0.0.1:0\n")
        options = plugin().options()
        options.parseOptions(["--config", path])
        service = plugin().makeService(options)
        verifyObject(IService, service)
        self.assertIsInstance(service, MultiService)
        self.assertEqual(len(service.listeners), 1)

    def test_broken_config_exits_with_one_line(self):
        path = os.path.abspath(self.mktemp()) + ".yml"
        with open(path, "w") as f:
            f.write("version: 0.2\nstorage: inmemory\n")
        options = plugin().options()
        options.parseOptions(["--config", path])
        with self.assertRaises(SystemExit) as raised:
            plugin().makeService(options)
        message = str(raised.exception.code)
        self.assertTrue(message.startswith("spectroreg: "), message)
        self.assertNotIn("\n", message)
        self.assertIn("version", message)

    def test_offers_log_observer_to_twistd(self):
        from twisted.application.service import Application
        from twisted.logger import ILogObserver

        service = makeService(settings())
        application = Application("spectroreg")
        service.setServiceParent(application)
        self.assertIs(application.getComponent(ILogObserver), service.log_observer)

    def runner_options(self, parent):
        """Plugin options as a runner hands them over, with C{parent} (the runner's own, a dict)."""
        options = plugin().options()
        options.parent = parent
        return options

    def logged_line(self, observer, stream_text):
        from twisted.logger import Logger

        Logger(observer=observer).info("hello {who}", who="world")
        return stream_text()

    def test_twistd_logfile_gets_configured_lines(self):
        """twistd --logfile=PATH: the observer offered to twistd writes our format into that file."""
        from spectroreg.service import _adopt_runner_logging

        path = os.path.abspath(self.mktemp())
        service = makeService(settings())
        _adopt_runner_logging(self.runner_options({"logfile": path, "syslog": False}), service)

        def text():
            with open(path) as f:
                return f.read()

        line = self.logged_line(service.log_observer, text)
        self.assertIn('msg="hello world"', line)
        self.assertIn("level=info", line)

    def test_twistd_syslog_keeps_twistd_observer(self):
        from spectroreg.service import _adopt_runner_logging

        service = makeService(settings())
        _adopt_runner_logging(self.runner_options({"logfile": "-", "syslog": True}), service)
        self.assertFalse(service.offer_log_observer)

    def test_twist_file_observer_factory(self):
        """twist: its file observer factory is replaced by one building ours over the file it gives."""
        import io

        from twisted.logger import LogLevel

        from spectroreg.service import _adopt_runner_logging

        service = makeService(settings())
        parent = {"fileLogObserverFactory": None, "logLevel": LogLevel.info}
        _adopt_runner_logging(self.runner_options(parent), service)
        self.assertEqual(parent["logLevel"], LogLevel.debug)
        stream = io.StringIO()
        line = self.logged_line(parent["fileLogObserverFactory"](stream), stream.getvalue)
        self.assertIn('msg="hello world"', line)


def settings(**http):
    http.setdefault("addr", "127.0.0.1:0")
    return Settings(
        version="0.1",
        log=LogSettings(),
        storage=StorageSettings(driver="inmemory", uploadpurging=UploadPurgingSettings(interval=3600.0)),
        http=HTTPSettings(**http),
    )


class MakeServiceTests(unittest.TestCase):
    def start(self, service):
        service.handle_sighup = False
        service.privilegedStartService()
        service.startService()
        self.addCleanup(lambda: service.running and service.stopService())
        return service

    @async_test
    async def test_real_api(self):
        service = self.start(makeService(settings(headers={"X-Test": ("yes",)}), reactor=reactor))
        response, body = await get("http://127.0.0.1:%d/v2/" % port_of(service))
        self.assertEqual((response.code, body), (200, b"{}"))
        self.assertEqual(response.headers.getRawHeaders(b"docker-distribution-api-version"), [b"registry/2.0"])
        self.assertEqual(response.headers.getRawHeaders(b"x-test"), [b"yes"])

    @async_test
    async def test_access_log_written_once_per_reactor_turn(self):
        """
        While the daemon runs, access-log lines wait for the end of the
        reactor turn (one write per turn); after stopService, none waits.
        """
        stream = RecordingStream()
        writes = stream.writes
        service = makeService(settings(), reactor=reactor)
        service.log_observer._stream = stream
        publisher = LogPublisher(service.log_observer)
        self.start(service)
        Logger(namespace=ACCESS_NAMESPACE, observer=publisher).info("one")
        Logger(namespace=ACCESS_NAMESPACE, observer=publisher).info("two")
        self.assertEqual(writes, [])
        await deferLater(reactor, 0, lambda: None)
        self.assertEqual(len(writes), 1)
        self.assertEqual(len(writes[0].splitlines()), 2)
        service.stopService()
        Logger(namespace=ACCESS_NAMESPACE, observer=publisher).info("three")
        self.assertIn("three", writes[-1])

    def test_storage_closed_after_listeners(self):
        """The driver is closed at shutdown, once the listeners have stopped."""
        from twisted.internet.defer import succeed

        service = makeService(settings())
        names = [child.name for child in service]
        self.assertLess(names.index("storage"), min(
            names.index(child.name) for child in service.listeners))
        closed = []
        service.getServiceNamed("storage").driver = type(
            "Driver", (), {"close": lambda self: closed.append(True) or succeed(None)})()
        service.getServiceNamed("storage").startService()
        service.getServiceNamed("storage").stopService()
        self.assertEqual(closed, [True])

    def test_upload_purger(self):
        service = makeService(settings())
        timers = [s for s in service if isinstance(s, TimerService)]
        self.assertEqual(len(timers), 1)
        self.assertEqual(timers[0].step, 3600.0)

    def test_purger_disabled(self):
        base = settings()
        off = Settings(
            version="0.1", log=base.log, http=base.http,
            storage=StorageSettings(driver="inmemory", uploadpurging=UploadPurgingSettings(enabled=False)),
        )
        service = makeService(off)
        self.assertEqual([s for s in service if isinstance(s, TimerService)], [])
        readonly = Settings(
            version="0.1", log=base.log, http=base.http,
            storage=StorageSettings(driver="inmemory", readonly=True),
        )
        self.assertEqual([s for s in makeService(readonly) if isinstance(s, TimerService)], [])

    def test_garbage_collection_timer(self):
        """Off by default; when on, a timer on the given clock and requests under the handshake."""
        from twisted.internet.task import Clock

        from spectroreg.config.settings import GarbageCollectSettings
        from spectroreg.registry.gcguard import NoGuard, StorageGuard

        base = settings()
        service = makeService(base)
        self.assertIsInstance(service.registry.guard, NoGuard)
        gc = GarbageCollectSettings(enabled=True, interval=30.0, graceperiod=600.0)
        clock = Clock()
        on = Settings(version="0.1", log=base.log, http=base.http,
                      storage=StorageSettings(driver="inmemory", gc=gc,
                                              uploadpurging=UploadPurgingSettings(enabled=False)))
        service = makeService(on, reactor=clock)
        timers = [s for s in service if isinstance(s, TimerService)]
        self.assertEqual([(t.step, t.clock) for t in timers], [(30.0, clock)])
        self.assertIsInstance(service.registry.guard, StorageGuard)
        self.assertEqual(service.registry.guard.grace_period, 600.0)
        timers[0].startService()
        self.assertEqual(timers[0].collector.runs, 1)  # the first collection runs at start
        clock.advance(30.0)
        self.assertEqual(timers[0].collector.runs, 2)
        timers[0].stopService()
        self.assertTrue(timers[0].collector._stopping)
        readonly = Settings(version="0.1", log=base.log, http=base.http,
                            storage=StorageSettings(driver="inmemory", gc=gc, readonly=True))
        service = makeService(readonly, reactor=clock)
        self.assertEqual([s for s in service if isinstance(s, TimerService)], [])
        self.assertIsInstance(service.registry.guard, NoGuard)

    @async_test
    async def test_purge_step_calls_registry(self):
        from spectroreg.service import _PurgeUploads

        calls = []

        class Uploads:
            async def purge(self, older_than_seconds, dry_run=False):
                calls.append((older_than_seconds, dry_run))
                if len(calls) == 2:
                    raise OSError("storage unavailable")
                return 3

        class Registry:
            uploads = Uploads()

        step = _PurgeUploads(Registry(), UploadPurgingSettings(age=60.0, dryrun=True))
        await step()
        await step()  # the failure is logged, not raised: the timer keeps going
        self.assertEqual(calls, [(60.0, True), (60.0, True)])
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    @async_test
    async def test_reload_reaches_tls_and_htpasswd(self):
        calls = []

        @implementer(IReloadable)
        class Reloadable:
            def __init__(self, name, fail=False):
                self.name, self.fail = name, fail

            def reload(self):
                calls.append(self.name)
                if self.fail:
                    return defer.fail(ValueError("bad pem"))
                return defer.succeed(True)

        service = makeService(settings())
        service.server_tls = Reloadable("tls", fail=True)
        service.authenticator = Reloadable("htpasswd")
        await service.reload()
        self.assertEqual(sorted(calls), ["htpasswd", "tls"])
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_htpasswd_authenticator_built(self):
        work = os.path.abspath(self.mktemp())
        base = settings()
        with_auth = Settings(
            version="0.1", log=base.log, storage=base.storage, http=base.http,
            auth=AuthSettings(provider="htpasswd", htpasswd=HtpasswdSettings(realm="r", path=os.path.join(work, "h"))),
        )
        service = makeService(with_auth)
        self.assertEqual(service.authenticator.realm, "r")
        self.flushLoggedErrors()

    def test_unsupported_auth_provider(self):
        base = settings()
        token = Settings(version="0.1", log=base.log, storage=base.storage, http=base.http,
                         auth=AuthSettings(provider="token"))
        self.assertRaises(ConfigError, makeService, token)

    def test_is_registry_service(self):
        self.assertIsInstance(makeService(settings()), RegistryService)


class AddressParsingTests(unittest.SynchronousTestCase):
    def test_table(self):
        table = [
            (":5000", "tcp", [("tcp", "", 5000)]),
            ("0.0.0.0:80", "tcp", [("tcp", "0.0.0.0", 80)]),
            ("127.0.0.1:5000", "tcp", [("tcp", "127.0.0.1", 5000)]),
            ("localhost:5000", "tcp", [("tcp", "localhost", 5000)]),
            ("[::1]:5000", "tcp", [("tcp", "::1", 5000)]),
            ("[::]:443", "tcp", [("tcp", "::", 443)]),
            ("/run/spectro/registry.sock", "unix", [("unix", "/run/spectro/registry.sock", None)]),
        ]
        for addr, net, expected in table:
            self.assertEqual(parse_addr(addr, net), expected, addr)

    def test_errors(self):
        for addr, net in [("5000", "tcp"), ("::1:5000", "tcp"), ("[::1]5000", "tcp"),
                          (":99999", "tcp"), ("", "unix")]:
            self.assertRaises(ConfigError, parse_addr, addr, net)


class TLSWiringTests(unittest.TestCase):
    """What makeService does with a ServerTLS: wrap, services, HTTP-01 listener."""

    def fake_tls(self, http01_resource):
        from twisted.application.service import Service
        from twisted.web.resource import Resource

        class Challenge(Resource):
            isLeaf = True

            def render_GET(self, request):
                return b"challenge " + b"/".join(request.postpath)

        @implementer(IServerTLS, IReloadable)
        class FakeServerTLS:
            wrapped = None
            source = None

            def __init__(self):
                self.services = [Service()]
                self.http01_resource = Challenge() if http01_resource else None

            def wrap_factory(self, factory):
                FakeServerTLS.wrapped = factory
                return factory  # plain HTTP stands in for TLS here

            def reload(self):
                return defer.succeed(True)

        fake = FakeServerTLS()
        import spectroreg.tls.server

        self.patch(spectroreg.tls.server, "make_server_tls", lambda tls_settings, reactor=None: fake)
        return fake

    def tls_settings(self):
        from spectroreg.config.settings import LetsEncryptSettings, TLSSettings

        return TLSSettings(letsencrypt=LetsEncryptSettings(
            cachefile=self.mktemp(), hosts=("registry.example.com",), httpaddr="127.0.0.1:0"))

    @async_test
    async def test_letsencrypt_http01_listener(self):
        fake = self.fake_tls(http01_resource=True)
        service = makeService(settings(tls=self.tls_settings()), reactor=reactor)
        self.assertIs(fake.wrapped, service.site)
        self.assertIn(fake.services[0], list(service))
        self.assertIs(service.server_tls, fake)
        service.handle_sighup = False
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        plain = [s for s in service if getattr(s, "scheme", None) == "http"]
        self.assertEqual(len(plain), 1)
        port = plain[0].port.getHost().port
        response, body = await get("http://127.0.0.1:%d/.well-known/acme-challenge/abc" % port)
        self.assertEqual((response.code, body), (200, b"challenge abc"))
        response, _ = await get("http://127.0.0.1:%d/v2/" % port, headers={b"Host": [b"registry.example.com"]})
        self.assertEqual(response.code, 301)
        # The port seen from outside (443: Let's Encrypt validates there), not
        # the one the listener binds behind a port mapping.
        self.assertEqual(response.headers.getRawHeaders(b"location"), [b"https://registry.example.com/v2/"])

    def test_redirect_port_from_http_host(self):
        from spectroreg.service import _public_https_port

        for host, port in [
            (None, 443),
            ("https://registry.example.com", 443),
            ("https://registry.example.com:8443", 8443),
            ("http://registry.example.com:8080", 443),
        ]:
            self.assertEqual(_public_https_port(HTTPSettings(host=host)), port, host)

    def test_no_http01_listener_without_resource(self):
        self.fake_tls(http01_resource=False)
        service = makeService(settings(tls=self.tls_settings()), reactor=reactor)
        self.assertEqual([s for s in service if getattr(s, "scheme", None) == "http"], [])
        self.assertEqual([s.scheme for s in service.listeners], ["https"])


class AuthenticatorTableTests(unittest.SynchronousTestCase):
    def test_providers(self):
        """Every provider the daemon builds is one the configuration accepts; the others are refused."""
        from spectroreg.config.sections.auth import AUTH_PROVIDERS, AuthSettings
        from spectroreg.service import AUTHENTICATORS, _authenticator

        self.assertLessEqual(set(AUTHENTICATORS), set(AUTH_PROVIDERS))
        for provider in set(AUTH_PROVIDERS) - set(AUTHENTICATORS):
            error = self.assertRaises(ConfigError, _authenticator, AuthSettings(provider=provider), reactor)
            self.assertEqual(str(error), "auth.{}: this authentication provider is not supported".format(provider))
        self.assertIsNone(_authenticator(None, reactor))


class WorkerServiceTests(unittest.TestCase):
    """What C{http.workers} changes in the service tree of worker 0 and of a worker."""

    def workers_settings(self, **http):
        from spectroreg.config.settings import GarbageCollectSettings

        base = settings(workers=3, **http)
        return Settings(
            version="0.1", log=base.log, http=base.http, source="config.yml",
            storage=StorageSettings(driver="inmemory", uploadpurging=UploadPurgingSettings(interval=3600.0),
                                    gc=GarbageCollectSettings(enabled=True, interval=30.0)),
        )

    def test_worker_zero(self):
        from spectroreg.prefork import SharedEndpoint, WorkerPool

        service = makeService(self.workers_settings())
        self.assertIsInstance(service.workers, WorkerPool)
        self.assertEqual(service.workers.count, 3)
        self.assertEqual(service.workers._config_path, os.path.abspath("config.yml"))
        self.assertTrue(all(isinstance(listener.endpoint, SharedEndpoint) for listener in service.listeners))
        children = list(service)
        # Started after the listeners (their sockets), so stopped before them.
        self.assertGreater(children.index(service.workers), max(children.index(l) for l in service.listeners))
        self.assertEqual(len([s for s in service if isinstance(s, TimerService)]), 2)  # purge, collection
        self.assertEqual(service.log_observer.fields, {"worker": 0})

    def test_worker_zero_needs_a_file(self):
        base = self.workers_settings()
        nofile = Settings(version="0.1", log=base.log, http=base.http, storage=base.storage)
        with self.assertRaises(ConfigError) as caught:
            makeService(nofile)
        self.assertIn("http.workers", str(caught.exception))

    def test_one_worker_is_one_process(self):
        service = makeService(settings())
        self.assertIsNone(service.workers)
        self.assertEqual(service.log_observer.fields, {})

    @async_test
    async def test_worker_listens_on_what_it_was_given(self):
        import socket

        from spectroreg.prefork import WorkerRole
        from spectroreg.registry.gcguard import StorageGuard

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(5)
        port = sock.getsockname()[1]
        fd = os.dup(sock.fileno())
        sock.close()
        service = makeService(self.workers_settings(), reactor=reactor,
                              worker=WorkerRole(2, [(fd, socket.AF_INET)]))
        self.assertIsNone(service.workers)
        self.assertEqual(service.worker, 2)
        self.assertEqual(service.log_observer.fields, {"worker": 2})
        # No purge, no collection timer; the handshake only.
        self.assertEqual([s for s in service if isinstance(s, TimerService)], [])
        self.assertIsInstance(service.registry.guard, StorageGuard)
        service.handle_sighup = False
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        response, body = await get("http://127.0.0.1:%d/v2/" % port)
        self.assertEqual((response.code, body), (200, b"{}"))

    def test_relayed_lines_and_sighup(self):
        service = makeService(self.workers_settings())
        stream = RecordingStream()
        service.log_observer._stream = stream
        service.relay_log(b'time="t" level=info msg="x" worker=1\n')
        self.assertEqual(stream.writes, ['time="t" level=info msg="x" worker=1\n'])
        signals = []
        service.workers.signal = signals.append
        service.reload()
        self.assertEqual(signals, ["HUP"])


class StopOnceTests(unittest.SynchronousTestCase):
    """L{stop_once}: the reactor's handler runs for the first signal only."""

    def setUp(self):
        import signal

        self.signal = signal
        self.calls = []
        previous = signal.signal(signal.SIGUSR1, lambda signum, frame: self.calls.append(signum))
        self.addCleanup(signal.signal, signal.SIGUSR1, previous)
        previous2 = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        self.addCleanup(signal.signal, signal.SIGUSR2, previous2)

    def test_first_only(self):
        from spectroreg.service import stop_once

        stop_once(("SIGUSR1", "SIGUSR2"))
        stop_once(("SIGUSR1",))  # not wrapped twice
        for _ in range(3):
            os.kill(os.getpid(), self.signal.SIGUSR1)
        self.assertEqual(self.calls, [self.signal.SIGUSR1])
        # An ignored signal stays ignored.
        self.assertEqual(self.signal.getsignal(self.signal.SIGUSR2), self.signal.SIG_IGN)
