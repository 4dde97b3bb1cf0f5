"""
In-process HTTP tests of the daemon's plumbing: ``makeService`` with a
stand-in API resource, listening for real on 127.0.0.1, driven by real
clients (twisted.web's Agent and raw TCP).
"""

import json

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.logger import globalLogPublisher
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from spectroreg.config.settings import HTTPSettings, LogSettings, Settings, StorageSettings
from spectroreg.service import makeService


class StandInAPI(Resource):
    """
    What ``<prefix>/v2`` serves in these tests: ``/v2/`` 200 ``{}``,
    ``/v2/slow?seconds=N`` answers after N seconds, ``/v2/boom`` raises.
    """

    isLeaf = True

    def render(self, request):
        name = request.postpath[0] if request.postpath else b""
        if name == b"boom":
            raise ZeroDivisionError("boom")
        if name == b"slow":
            seconds = float(request.args.get(b"seconds", [b"1"])[0])
            call = reactor.callLater(seconds, self._finish_slow, request)
            request.notifyFinish().addErrback(lambda _: call.active() and call.cancel())
            return NOT_DONE_YET
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"docker-distribution-api-version", b"registry/2.0")
        return b"{}"

    def _finish_slow(self, request):
        request.write(b"slow done")
        request.finish()


def settings_for(addr="127.0.0.1:0", net="tcp", headers=None, prefix="", draintimeout=0.0,
                 access_log=True, level="info", formatter="text", fields=None):
    return Settings(
        version="0.1",
        log=LogSettings(level=level, formatter=formatter, fields=fields or {},
                        accesslog_disabled=not access_log),
        storage=StorageSettings(driver="inmemory"),
        http=HTTPSettings(addr=addr, net=net, prefix=prefix, draintimeout=draintimeout,
                          headers=headers or {}),
    )


class LogCapture:
    """Collects every log event while installed."""

    def __init__(self, testcase):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        testcase.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def namespace(self, name):
        return [e for e in self.events if e.get("log_namespace") == name]


def start_service(testcase, settings, limits=None, api=None):
    """A started daemon service with a stand-in API; stopped at cleanup."""
    service = makeService(settings, reactor=reactor, limits=limits, api_resource=api or StandInAPI())
    service.handle_sighup = False
    service.privilegedStartService()
    service.startService()

    def stop():
        if service.running:
            return service.stopService()

    testcase.addCleanup(stop)
    return service


def port_of(service, index=0):
    return service.listeners[index].port.getHost().port


async def get(url, headers=None, method=b"GET"):
    """(response, body) for one request with a fresh connection."""
    agent = Agent(reactor)
    response = await agent.request(method, url.encode("ascii"), Headers(headers or {}))
    body = await readBody(response)
    return response, body


class RawClient(protocol.Protocol):
    """Collects everything the server sends until it closes."""

    def __init__(self):
        self.data = b""
        self.closed = defer.Deferred()

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason):
        self.closed.callback(self.data)


async def raw_connect(port, host="127.0.0.1"):
    client = RawClient()
    await connectProtocol(TCP4ClientEndpoint(reactor, host, port), client)
    return client


def status_of(raw):
    """The status code of the first response in C{raw} bytes."""
    line = raw.split(b"\r\n", 1)[0]
    return int(line.split()[1])


def json_body(body):
    return json.loads(body.decode("utf-8"))
