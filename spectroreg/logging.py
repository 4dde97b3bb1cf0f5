"""
The daemon's log output: one twisted.logger observer that honours the
``log`` section of the configuration.

- ``log.level`` (error | warn | info | debug) filters events; the access log
  (namespace ``spectroreg.access``) is not filtered by level, as in
  Distribution, and is switched off with ``log.accesslog.disabled`` instead.
- ``log.fields`` are added to every line.
- ``log.formatter``: ``text`` writes logrus-style ``key=value`` lines
  (``time="..." level=info msg="..." service=registry``), ``json`` one JSON
  object per line (``time``, ``level``, ``msg``), ``logstash`` the same with
  ``@timestamp``, ``@version`` and ``message``.

The observer writes to a stream it is given (stdout by default); the caller
decides how it is installed (``spectroreg serve`` begins logging to it,
``twistd`` picks it up as the application's ``ILogObserver``). While the
daemon runs, lines below warn wait for the end of the reactor turn and go
out in one write (L{RegistryLogObserver.write_per_turn}).

Debug events (what the registry decides: auth outcomes, storage operations,
cache hits, upload states) are made on busy paths, so they are only made
at all once an observer at level ``debug`` exists in the process: code
guards them with ``if debug_enabled():``.
"""

import json
import logging as _stdlib_logging
import re
import sys
import threading
import time
from json.encoder import encode_basestring_ascii as _json_string

from twisted.logger import ILogObserver, LogLevel, formatEvent
from zope.interface import implementer

ACCESS_NAMESPACE = "spectroreg.access"

LEVELS = {
    "error": LogLevel.error,
    "warn": LogLevel.warn,
    "info": LogLevel.info,
    "debug": LogLevel.debug,
}

# logrus' names, which Distribution's users grep for.
_LEVEL_NAMES = {
    LogLevel.critical: "error",
    LogLevel.error: "error",
    LogLevel.warn: "warning",
    LogLevel.info: "info",
    LogLevel.debug: "debug",
}


_debug = [False]


def debug_enabled():
    """Whether any L{RegistryLogObserver} of this process writes debug events."""
    return _debug[0]


# (whole second, its text): the log writes many lines per second.
_last_second = [None, ""]


def _timestamp(seconds):
    whole = int(seconds)
    millis = int(round((seconds - whole) * 1000))
    if millis == 1000:
        whole, millis = whole + 1, 0
    if _last_second[0] != whole:
        _last_second[:] = [whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))]
    return _last_second[1] + ".%03dZ" % (millis,)


def publish(logger, level, log_format, event):
    """
    What C{logger.emit(level, log_format, **event)} does, for a C{level}
    known to be one of L{LogLevel}'s, without its checks: the access log
    sends one event per request. C{event} becomes the event.
    """
    event["log_logger"] = logger
    event["log_level"] = level
    event["log_namespace"] = logger.namespace
    event["log_source"] = logger.source
    event["log_format"] = log_format
    event["log_time"] = time.time()
    if "log_trace" in event:
        event["log_trace"].append((logger, logger.observer))
    logger.observer(event)


def _event_level(event):
    level = event.get("log_level")
    if level is None:
        # Events from the legacy twisted.python.log API.
        level = LogLevel.error if event.get("isError") else LogLevel.info
    return level


# Letters, digits and "-._/:@+" (\\w and "-./:@+"): written as they are. One
# character class, not an alternation: several fields of every access-log line.
_PLAIN_TEXT = re.compile(r"[\w./:@+-]+\Z")


def _text_value(value):
    if type(value) is int:
        # Digits and a sign: always plain (statuses, byte counts).
        return str(value)
    text = value if isinstance(value, str) else str(value)
    if _PLAIN_TEXT.match(text):
        return text
    return _json_string(text)


def _message(event):
    """
    The event's message, as C{formatEvent} makes it. A plain format (only
    C{{name}} fields, as the access log's) is filled in by C{str.format_map},
    which is C code: C{formatEvent}'s own formatter is Python and was most
    of the cost of an access-log line. Anything else, or any error, goes
    through C{formatEvent} itself.
    """
    log_format = event.get("log_format")
    if type(log_format) is str and "()" not in log_format and "log_flattened" not in event:
        try:
            return log_format.format_map(event)
        except Exception:
            pass
    return formatEvent(event)


def _json_default(value):
    return str(value)


@implementer(ILogObserver)
class RegistryLogObserver:
    """
    Formats and writes events; see the module docstring.

    @param level: one of L{LEVELS}' keys.
    @param formatter: text | json | logstash.
    @param fields: mapping added to every line.
    @param stream: a text stream with C{write} and C{flush}; stdout when None.
    @param clock: returns the current time; used when an event has no time.
    """

    # At most this many lines wait for the end of a reactor turn.
    MAX_PENDING = 512

    _call_later = None
    _batch_thread = None
    _pending = None

    def __init__(self, level="info", formatter="text", fields=None, stream=None, clock=time.time):
        if level not in LEVELS:
            raise ValueError("unknown log level {!r}".format(level))
        if formatter not in ("text", "json", "logstash"):
            raise ValueError("unknown log formatter {!r}".format(formatter))
        self.level = level
        self.formatter = formatter
        self.fields = dict(fields or {})
        self._min_level = LEVELS[level]
        if self._min_level <= LogLevel.debug:
            _debug[0] = True
        self._stream = stream
        self._clock = clock

    def _output(self):
        stream = self._stream
        if stream is None:
            stream = sys.stdout
            real = getattr(sys, "__stdout__", None)
            # Under twistd, sys.stdout may be redirected into the log system
            # itself; writing there would loop.
            if stream is not real and getattr(stream, "log", None) is not None and hasattr(sys, "__stdout__"):
                stream = real
        return stream

    def wants(self, event):
        if event.get("log_namespace") == ACCESS_NAMESPACE:
            return True
        if _is_client_factory_noise(event):
            return False
        return _event_level(event) >= self._min_level

    def write_per_turn(self, call_later):
        """
        From now on, lines below C{warn} (the access log, info and debug
        events) made on this thread (the reactor's) wait for the end of the
        reactor turn they were made in and go out together, in one C{write}:
        one per turn instead of one per request. Warnings and errors, and
        lines from other threads, go out at once (after what waits).

        @param call_later: C{reactor.callLater}.
        """
        self._call_later = call_later
        self._batch_thread = threading.get_ident()

    def write_at_once(self):
        """Back to one C{write} per line; what waits goes out now."""
        self._call_later = None
        self._batch_thread = None
        self.flush()

    def flush(self):
        """Write the lines that wait for the end of the turn."""
        pending, self._pending = self._pending, None
        if pending:
            self._write("".join(pending))

    def write_text(self, text):
        """
        Whole lines formatted elsewhere (a worker process's), written as
        this observer's own below C{warn} are: at the end of the turn when
        made on the reactor's thread, at once otherwise.
        """
        if self._call_later is not None and threading.get_ident() == self._batch_thread:
            self._queue(text)
        else:
            self._write(text)

    def __call__(self, event):
        if not self.wants(event):
            return
        line = self.format(event) + "\n"
        if self._call_later is not None and threading.get_ident() == self._batch_thread:
            if _event_level(event) < LogLevel.warn:
                self._queue(line)
                return
            if self._pending:
                self._pending.append(line)
                self.flush()
                return
        self._write(line)

    def _queue(self, text):
        """Hold C{text} until the end of this reactor turn (or L{MAX_PENDING} lines)."""
        pending = self._pending
        if pending is None:
            self._pending = [text]
            self._call_later(0, self.flush)
            return
        pending.append(text)
        if len(pending) >= self.MAX_PENDING:
            self.flush()

    def _write(self, text):
        stream = self._output()
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):
            # A closed or broken stdout must not take the daemon down.
            pass

    def format(self, event):
        """One line (no newline) for C{event}."""
        when = event.get("log_time") or self._clock()
        level = _LEVEL_NAMES.get(_event_level(event), "info")
        message = _message(event) or ""
        extra = dict(self.fields)
        extra.update(event.get("log_fields") or {})
        failure = event.get("log_failure")
        if failure is not None:
            try:
                extra["error"] = failure.getTraceback()
            except Exception:  # a broken failure must still be logged
                extra["error"] = repr(failure)
        if self.formatter == "text":
            # json.dumps of a str is this function, without its Python layers.
            parts = ['time="' + _timestamp(when) + '"', "level=" + level, "msg=" + _json_string(message)]
            for key in sorted(extra):
                value = extra[key]
                if key == "error":
                    # One line per event, even with a traceback.
                    value = str(value).strip().replace("\n", " | ")
                parts.append(key + "=" + _text_value(value))
            return " ".join(parts)
        if self.formatter == "json":
            record = {"time": _timestamp(when), "level": level, "msg": message}
        else:
            record = {
                "@timestamp": _timestamp(when),
                "@version": "1",
                "level": level,
                "message": message,
            }
        for key, value in extra.items():
            record.setdefault(key, value)
        return json.dumps(record, default=_json_default, sort_keys=False)


_FACTORY_NOISE = frozenset(["Starting factory {factory!r}", "Stopping factory {factory!r}"])


def _is_client_factory_noise(event):
    """
    Twisted's "Starting/Stopping factory" lines for the per-connection
    factories of its HTTP client (S3 and ACME requests): one pair per
    connection, nothing an operator can act on.
    """
    if event.get("log_format") not in _FACTORY_NOISE:
        return False
    return type(event.get("factory")).__module__ == "twisted.web.client"


def observer_from_settings(log_settings, stream=None):
    """A L{RegistryLogObserver} for a L{spectroreg.config.settings.LogSettings}."""
    formatter = log_settings.formatter
    return RegistryLogObserver(
        level=log_settings.level,
        formatter=formatter,
        fields=log_settings.fields,
        stream=stream,
    )


class _TwistedLoggerHandler(_stdlib_logging.Handler):
    """Forwards stdlib logging records (botocore, acme) to twisted.logger."""

    def __init__(self):
        super().__init__(level=_stdlib_logging.WARNING)

    def emit(self, record):
        from twisted.logger import Logger

        if record.levelno >= _stdlib_logging.ERROR:
            level = LogLevel.error
        else:
            level = LogLevel.warn
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        Logger(namespace=record.name).emit(level, "{message}", message=message)


def bridge_stdlib_logging():
    """
    Send WARNING and above from the stdlib ``logging`` module into our log.

    Only warnings and errors: the DEBUG output of libraries such as botocore
    contains request headers, signatures included, and must never reach the log.
    """
    root = _stdlib_logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, _TwistedLoggerHandler):
            return handler
    handler = _TwistedLoggerHandler()
    root.addHandler(handler)
    if root.level == _stdlib_logging.NOTSET or root.level < _stdlib_logging.WARNING:
        root.setLevel(_stdlib_logging.WARNING)
    return handler
