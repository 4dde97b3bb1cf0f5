"""
A small Redis client native to Twisted: RESP2 over one TCP connection,
commands pipelined (replies come back in order), every call bounded by a
timeout on the injected reactor, reconnection on the next call after a
failure.

``redis.pool`` (Distribution's pool of connections) applied to one
pipelined connection: ``maxactive`` bounds the calls in flight (beyond it a
lookup is not sent and storage answers, as Distribution's pool does not wait
either; 0: no bound), ``maxidle: 0`` closes the connection whenever nothing
is in flight, and ``idletimeout`` closes it after that long idle (0: never).

Why not ``redis`` (redis-py, Debian's python3-redis) in the thread pool: a
thread hop per call costs more than the Redis round trip itself (see
docs/scaling.md for the figures), takes threads the storage needs, and a
blocked call cannot be abandoned on a timeout; ``txredisapi`` is not packaged
in Debian. The registry needs a handful of commands, in pipelines, with
timeouts: that is what this module does, and nothing more.
"""

from twisted.internet import defer, error as neterror, protocol
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.logger import Logger
from twisted.python.failure import Failure

from spectroreg.bounded import Waiters

log = Logger()

# After a failure, calls fail at once for this long before a new connection
# is tried: an unreachable Redis costs requests nothing.
RETRY_AFTER = 1.0


class RedisUnavailable(Exception):
    """Redis could not answer in time (down, unreachable, slow, or refused us)."""


class RedisBusy(RedisUnavailable):
    """
    ``redis.pool.maxactive`` calls are already waiting for replies: this one
    is not sent (the caller answers from storage), as Distribution's pool,
    which does not wait for a connection either.
    """


class RedisError(Exception):
    """Redis answered a command with an error reply."""


def encode(args):
    """One command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode("utf-8")
        elif isinstance(arg, int):
            arg = str(arg).encode("ascii")
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


class _Incomplete(Exception):
    pass


class ReplyParser:
    """Incremental RESP2 parser: L{feed} bytes, get the complete replies."""

    def __init__(self):
        self._buffer = b""

    def feed(self, data):
        self._buffer += data
        replies = []
        while self._buffer:
            try:
                reply, end = self._parse(0)
            except _Incomplete:
                break
            self._buffer = self._buffer[end:]
            replies.append(reply)
        return replies

    def _line(self, start):
        end = self._buffer.find(b"\r\n", start)
        if end < 0:
            raise _Incomplete()
        return self._buffer[start + 1:end], end + 2

    def _parse(self, start):
        if start >= len(self._buffer):
            raise _Incomplete()
        kind = self._buffer[start:start + 1]
        line, after = self._line(start)
        if kind == b"+":
            return line, after
        if kind == b"-":
            return RedisError(line.decode("utf-8", "replace")), after
        if kind == b":":
            return int(line), after
        if kind == b"$":
            size = int(line)
            if size < 0:
                return None, after
            if len(self._buffer) < after + size + 2:
                raise _Incomplete()
            return self._buffer[after:after + size], after + size + 2
        if kind == b"*":
            count = int(line)
            if count < 0:
                return None, after
            items = []
            for _ in range(count):
                item, after = self._parse(after)
                items.append(item)
            return items, after
        raise ValueError("not a RESP reply: {!r}".format(kind))


class RedisProtocol(protocol.Protocol):
    """One connection: each pipeline's Deferred fires with its replies, in order."""

    def __init__(self):
        self._parser = ReplyParser()
        self._waiting = []  # [(Deferred, count, replies so far)]
        self.closed = defer.Deferred()
        self.lost = False

    def send(self, commands):
        d = defer.Deferred()
        self._waiting.append((d, len(commands), []))
        self.transport.write(b"".join(encode(command) for command in commands))
        return d

    def dataReceived(self, data):
        try:
            replies = self._parser.feed(data)
        except ValueError as failure:
            log.warn("redis: unreadable reply ({error}); reconnecting", error=failure)
            self.transport.abortConnection()
            return
        for reply in replies:
            if not self._waiting:
                self.transport.abortConnection()
                return
            d, count, got = self._waiting[0]
            got.append(reply)
            if len(got) == count:
                self._waiting.pop(0)
                d.callback(got)

    def connectionLost(self, reason):
        self.lost = True
        waiting, self._waiting = self._waiting, []
        for d, _, _ in waiting:
            d.errback(RedisUnavailable("connection lost"))
        self.closed.callback(None)


class RedisClient:
    """
    Pipelines to one Redis server.

    @param settings: L{spectroreg.config.redis_settings.RedisSettings}.
    @param reactor: IReactorTime + IReactorTCP.
    @param endpoint: an IStreamClientEndpoint (tests); else made from C{addr}.
    """

    def __init__(self, settings, reactor, endpoint=None):
        self.settings = settings
        self._reactor = reactor
        self._endpoint = endpoint
        self._connection = None
        self._connecting = None
        self._failed_at = None
        # Pipelines sent and not yet answered (or failed), and the call
        # that closes the connection once it has been idle long enough.
        self.active = 0
        self._idle_close = None

    def _make_endpoint(self):
        host, _, port = self.settings.addr.rpartition(":")
        endpoint = HostnameEndpoint(self._reactor, host.strip("[]") or "localhost", int(port or 6379),
                                    timeout=self.settings.dialtimeout)
        if self.settings.tls:
            from twisted.internet.ssl import optionsForClientTLS

            endpoint = wrapClientTLS(optionsForClientTLS(host.strip("[]")), endpoint)
        return endpoint

    def _reply_timeout(self):
        # A pipeline is written and answered as one: writing and reading
        # are not told apart, the longer bound applies.
        return max(self.settings.readtimeout, self.settings.writetimeout)

    def _timed(self, d, seconds, what):
        """C{d}, failed with RedisUnavailable after C{seconds}."""
        def expire(failure, timeout):
            if failure.check(defer.CancelledError, defer.TimeoutError, neterror.TimeoutError):
                raise RedisUnavailable("{} took longer than {}s".format(what, seconds))
            return failure

        d.addTimeout(seconds, self._reactor)
        d.addErrback(expire, seconds)
        return d

    async def _connect(self):
        endpoint = self._endpoint or self._make_endpoint()
        factory = protocol.Factory.forProtocol(RedisProtocol)
        try:
            connection = await self._timed(endpoint.connect(factory), self.settings.dialtimeout, "connecting")
        except (neterror.ConnectError, neterror.DNSLookupError, neterror.TimeoutError) as failure:
            raise RedisUnavailable("cannot connect: {}".format(failure))
        setup = []
        if self.settings.password:
            if self.settings.username:
                setup.append(("AUTH", self.settings.username, self.settings.password))
            else:
                setup.append(("AUTH", self.settings.password))
        if self.settings.db:
            setup.append(("SELECT", self.settings.db))
        if setup:
            try:
                replies = await self._timed(connection.send(setup), self._reply_timeout(), "logging in")
            except RedisUnavailable:
                connection.transport.abortConnection()
                raise
            for reply in replies:
                if isinstance(reply, RedisError):
                    connection.transport.abortConnection()
                    raise RedisUnavailable("refused: {}".format(reply))
        return connection

    async def _connection_ready(self):
        if self._connection is not None and not self._connection.lost:
            return self._connection
        self._connection = None
        if self._failed_at is not None and self._reactor.seconds() - self._failed_at < RETRY_AFTER:
            raise RedisUnavailable("unavailable (retrying in a moment)")
        # Every caller waits on a Deferred of its own: a Deferred awaited by
        # several coroutines hands its result to the first one only.
        first = self._connecting is None
        if first:
            self._connecting = Waiters()
        waiting = self._connecting.wait()
        if first:
            defer.ensureDeferred(self._connect()).addBoth(self._connect_done, self._connecting)
        try:
            connection = await waiting
        except RedisUnavailable:
            self._failed_at = self._reactor.seconds()
            raise
        self._connection = connection
        self._failed_at = None
        return connection

    def _connect_done(self, result, waiters):
        if self._connecting is waiters:
            self._connecting = None
        if isinstance(result, Failure):
            waiters.fail(result)
        else:
            waiters.fire(result)

    async def pipeline(self, commands, limited=True):
        """
        Send C{commands} (tuples of str/bytes/int) at once.

        @param limited: whether ``redis.pool.maxactive`` applies (lookups and
            fills); invalidations are always sent.
        @return: their replies in order (bytes, int, list, None, or
            L{RedisError} for a command Redis refused).
        @raise RedisUnavailable: no answer within the timeouts.
        @raise RedisBusy: C{maxactive} pipelines are already in flight.
        """
        maxactive = self.settings.maxactive
        if limited and maxactive and self.active >= maxactive:
            raise RedisBusy("connection pool exhausted ({} calls in flight)".format(maxactive))
        self.active += 1
        if self._idle_close is not None:
            self._idle_close.cancel()
            self._idle_close = None
        try:
            return await self._send(commands)
        finally:
            self.active -= 1
            if not self.active:
                self._idle()

    async def _send(self, commands):
        connection = await self._connection_ready()
        try:
            return await self._timed(connection.send(commands), self._reply_timeout(), "a reply")
        except RedisUnavailable:
            # Replies may still come for what was sent: a new connection
            # keeps replies and requests paired.
            self._failed_at = self._reactor.seconds()
            connection.transport.abortConnection()
            raise

    def _idle(self):
        """
        Nothing in flight: ``pool.maxidle: 0`` keeps no idle connection; else
        the connection is closed after ``pool.idletimeout`` (0: never).
        """
        if self._connection is None:
            return
        if not self.settings.maxidle:
            self.close()
        elif self.settings.idletimeout > 0:
            self._idle_close = self._reactor.callLater(self.settings.idletimeout, self._closed_idle)

    def _closed_idle(self):
        self._idle_close = None
        if not self.active:
            self.close()

    async def execute(self, *command):
        """One command's reply; a RedisError reply is raised."""
        reply = (await self.pipeline([command]))[0]
        if isinstance(reply, RedisError):
            raise reply
        return reply

    def close(self):
        """Drop the connection. @return: a Deferred fired when it is closed."""
        if self._idle_close is not None:
            self._idle_close.cancel()
            self._idle_close = None
        connection, self._connection = self._connection, None
        if connection is None or connection.lost:
            return defer.succeed(None)
        connection.transport.loseConnection()
        return connection.closed
