"""The log observer: levels, fields, text/json/logstash lines, failures."""

import io
import json
import threading

from twisted.internet.task import Clock
from twisted.logger import LogLevel, Logger, LogPublisher
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from spectroreg.config.settings import LogSettings
from spectroreg.logging import ACCESS_NAMESPACE, RegistryLogObserver, observer_from_settings
from tests.support.streams import RecordingStream
from twisted.logger import ILogObserver


def emit(observer, level, text, namespace="tests", **kwargs):
    publisher = LogPublisher(observer)
    Logger(namespace=namespace, observer=publisher).emit(level, text, **kwargs)


class ObserverTests(unittest.TestCase):
    def make(self, **kwargs):
        stream = io.StringIO()
        return RegistryLogObserver(stream=stream, **kwargs), stream

    def test_interface(self):
        observer, _ = self.make()
        verifyObject(ILogObserver, observer)

    def test_levels(self):
        table = [
            ("error", {LogLevel.critical, LogLevel.error}),
            ("warn", {LogLevel.critical, LogLevel.error, LogLevel.warn}),
            ("info", {LogLevel.critical, LogLevel.error, LogLevel.warn, LogLevel.info}),
            ("debug", set(LogLevel.iterconstants())),
        ]
        for configured, shown in table:
            observer, stream = self.make(level=configured)
            for level in LogLevel.iterconstants():
                emit(observer, level, "event at " + level.name)
            lines = stream.getvalue().splitlines()
            self.assertEqual(len(lines), len(shown), configured)
            for level in shown:
                self.assertTrue(any(("event at " + level.name) in line for line in lines), (configured, level))

    def test_access_log_passes_any_level(self):
        observer, stream = self.make(level="error")
        emit(observer, LogLevel.info, "GET / 200", namespace=ACCESS_NAMESPACE)
        emit(observer, LogLevel.info, "not shown")
        self.assertEqual(len(stream.getvalue().splitlines()), 1)
        self.assertIn("GET / 200", stream.getvalue())

    def test_unknown_level_and_formatter(self):
        self.assertRaises(ValueError, RegistryLogObserver, level="loud")
        self.assertRaises(ValueError, RegistryLogObserver, formatter="xml")

    def test_text(self):
        observer, stream = self.make(fields={"service": "registry", "env": "two words"})
        emit(observer, LogLevel.warn, "disk {pct}% full", pct=93)
        line = stream.getvalue()
        self.assertTrue(line.endswith("\n"))
        self.assertRegex(
            line,
            r'^time="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z" level=warning msg="disk 93% full" '
            r'env="two words" service=registry\n$',
        )

    def test_json(self):
        observer, stream = self.make(formatter="json", fields={"service": "registry"})
        emit(observer, LogLevel.info, "hello {who}", who="you", log_fields={"http.response.status": 200})
        record = json.loads(stream.getvalue())
        self.assertEqual(record["msg"], "hello you")
        self.assertEqual(record["level"], "info")
        self.assertEqual(record["service"], "registry")
        self.assertEqual(record["http.response.status"], 200)
        self.assertIn("time", record)

    def test_logstash(self):
        observer, stream = self.make(formatter="logstash", fields={"service": "registry"})
        emit(observer, LogLevel.error, "bad")
        record = json.loads(stream.getvalue())
        self.assertEqual(record["@version"], "1")
        self.assertEqual(record["message"], "bad")
        self.assertEqual(record["level"], "error")
        self.assertEqual(record["service"], "registry")
        self.assertRegex(record["@timestamp"], r"Z$")

    def test_failure_on_one_line(self):
        observer, stream = self.make()
        try:
            1 / 0
        except ZeroDivisionError:
            failure = Failure()
        Logger(namespace="t", observer=LogPublisher(observer)).failure("it broke", failure)
        lines = stream.getvalue().splitlines()
        self.assertEqual(len(lines), 1)
        self.assertIn("ZeroDivisionError", lines[0])
        self.assertIn('msg="it broke"', lines[0])

    def test_legacy_events(self):
        observer, stream = self.make(level="warn")
        observer({"message": ("legacy",), "isError": 1, "time": 0, "system": "-", "log_level": None})
        self.assertIn("level=error", stream.getvalue())

    def test_broken_stream_ignored(self):
        stream = io.StringIO()
        stream.close()
        observer = RegistryLogObserver(stream=stream)
        emit(observer, LogLevel.info, "nowhere to go")

    def test_from_settings(self):
        observer = observer_from_settings(LogSettings(level="debug", formatter="logstash", fields={"a": 1}))
        self.assertEqual((observer.level, observer.formatter, observer.fields), ("debug", "logstash", {"a": 1}))


class WritesPerTurnTests(unittest.TestCase):
    """
    Once the daemon runs, lines below warn wait for the end of the reactor
    turn and go out in one write; warnings and errors go out at once.
    """

    def make(self):
        stream = RecordingStream()
        clock = Clock()
        observer = RegistryLogObserver(stream=stream)
        observer.write_per_turn(clock.callLater)
        return observer, stream.writes, clock

    def test_one_write_per_turn(self):
        observer, writes, clock = self.make()
        for n in range(3):
            emit(observer, LogLevel.info, "GET /{n} 200", namespace=ACCESS_NAMESPACE, n=n)
        emit(observer, LogLevel.info, "an info line")
        self.assertEqual(writes, [])
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(0)
        self.assertEqual(len(writes), 1)
        lines = writes[0].splitlines()
        self.assertEqual(len(lines), 4)
        self.assertIn("GET /0 200", lines[0])
        self.assertIn("an info line", lines[3])
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_warnings_go_out_at_once_after_what_waits(self):
        observer, writes, clock = self.make()
        emit(observer, LogLevel.info, "GET / 200", namespace=ACCESS_NAMESPACE)
        emit(observer, LogLevel.error, "disk gone")
        self.assertEqual(len(writes), 1)
        lines = writes[0].splitlines()
        self.assertIn("GET / 200", lines[0])
        self.assertIn("disk gone", lines[1])
        clock.advance(0)
        self.assertEqual(len(writes), 1)

    def test_bounded(self):
        observer, writes, clock = self.make()
        for n in range(RegistryLogObserver.MAX_PENDING + 1):
            emit(observer, LogLevel.info, "GET / 200", namespace=ACCESS_NAMESPACE)
        self.assertEqual([len(w.splitlines()) for w in writes], [RegistryLogObserver.MAX_PENDING])
        clock.advance(0)
        self.assertEqual([len(w.splitlines()) for w in writes], [RegistryLogObserver.MAX_PENDING, 1])

    def test_other_threads_write_at_once(self):
        observer, writes, clock = self.make()
        thread = threading.Thread(target=emit, args=(observer, LogLevel.info, "from a thread"))
        thread.start()
        thread.join()
        self.assertEqual(len(writes), 1)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_relayed_lines_go_out_with_the_turns_own(self):
        """A worker's lines (already formatted) share the turn's one write."""
        observer, writes, clock = self.make()
        emit(observer, LogLevel.info, "GET / 200", namespace=ACCESS_NAMESPACE)
        observer.write_text('time="t" level=info msg="GET /a 200" worker=1\n')
        observer.write_text('time="t" level=info msg="GET /b 200" worker=2\n')
        self.assertEqual(writes, [])
        clock.advance(0)
        self.assertEqual(len(writes), 1)
        lines = writes[0].splitlines()
        self.assertIn("GET / 200", lines[0])
        self.assertEqual(lines[1:], ['time="t" level=info msg="GET /a 200" worker=1',
                                     'time="t" level=info msg="GET /b 200" worker=2'])

    def test_relayed_lines_at_once_before_the_daemon_runs(self):
        stream = RecordingStream()
        observer = RegistryLogObserver(stream=stream)
        observer.write_text("a line\n")
        self.assertEqual(stream.writes, ["a line\n"])

    def test_write_at_once_flushes(self):
        observer, writes, clock = self.make()
        emit(observer, LogLevel.info, "GET / 200", namespace=ACCESS_NAMESPACE)
        observer.write_at_once()
        self.assertEqual(len(writes), 1)
        emit(observer, LogLevel.info, "GET / 200", namespace=ACCESS_NAMESPACE)
        self.assertEqual(len(writes), 2)
        clock.advance(0)
        self.assertEqual(len(writes), 2)


class FactoryNoiseTests(unittest.TestCase):
    def test_http_client_factories_are_quiet(self):
        """The per-connection factories of S3 and ACME requests log no start/stop lines; others do."""
        import io

        from twisted.internet import protocol
        from twisted.logger import globalLogPublisher
        from twisted.web import client

        stream = io.StringIO()
        observer = RegistryLogObserver(stream=stream)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        quiet = client._HTTP11ClientFactory(lambda: None, "key")
        quiet.doStart()
        quiet.doStop()
        self.assertEqual(stream.getvalue(), "")
        other = protocol.Factory()
        other.doStart()
        other.doStop()
        self.assertIn("Starting factory", stream.getvalue())
        self.assertIn("Stopping factory", stream.getvalue())


class FastFormattingTests(unittest.TestCase):
    """The observer's own formatting gives what twisted.logger's would, only faster."""

    def test_messages_as_format_event_makes_them(self):
        from twisted.logger import formatEvent

        from spectroreg.logging import _message

        class Thing:
            size = 3

            def __repr__(self):
                return "<thing>"

        events = [
            {"log_format": "{method} {uri} {status}", "method": "GET", "uri": "/v2/", "status": 200},
            {"log_format": "plain text, no fields"},
            {"log_format": "{thing!r} of {thing.size} and {items[1]}", "thing": Thing(), "items": [1, 2]},
            {"log_format": "{value:>5}|{ratio:.2f}", "value": "ab", "ratio": 0.5},
            {"log_format": "{missing} field"},
            {"log_format": "{callable()} called", "callable": lambda: "yes"},
            {"log_format": "unbalanced {", "x": 1},
            {"log_format": b"bytes {x}", "x": 1},
            {"log_format": None},
            {},
            {"log_format": "{{literal}} {x}", "x": "braces"},
        ]
        for event in events:
            self.assertEqual(_message(dict(event)), formatEvent(dict(event)), event)

    def test_text_values_as_before(self):
        from spectroreg.logging import _text_value

        def written_as_is(text):
            return bool(text) and all(c.isalnum() or c in "-._/:@+" for c in text)

        for value in ["", "abc", "a_b", "é1", "x y", "a\nb", "/v2/a:b@c+d.e-f", 200, 0.5, "٣", "ß", "a\u00b2",
                      "tab\t", "x\u2028", 'quote"', "=", "sha256:0f", "x\u0301", "\u00aa", "_", "-", "+@",
                      "a\u00a0b", "\u2160", "\U0001d7d8", "a,b", "a;b", "~"] + [chr(c) for c in range(0x3000)]:
            text = value if isinstance(value, str) else str(value)
            expected = text if written_as_is(text) else json.dumps(text)
            self.assertEqual(_text_value(value), expected, value)

    def test_timestamps_across_seconds(self):
        from spectroreg.logging import _timestamp

        self.assertEqual(_timestamp(0.25), "1970-01-01T00:00:00.250Z")
        self.assertEqual(_timestamp(0.9996), "1970-01-01T00:00:01.000Z")
        self.assertEqual(_timestamp(1.5), "1970-01-01T00:00:01.500Z")
        self.assertEqual(_timestamp(86400.001), "1970-01-02T00:00:00.001Z")
        self.assertEqual(_timestamp(0.5), "1970-01-01T00:00:00.500Z")
