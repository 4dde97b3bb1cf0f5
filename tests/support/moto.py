"""
S3 for tests: moto's server, and a proxy that counts or breaks S3 requests.

``shared_moto()`` starts one ``moto_server`` per test process on a free
127.0.0.1 port (``SPECTROREG_MOTO_SERVER`` names the program; default
``moto_server`` on PATH, else ``/opt/venv-latest/bin/moto_server``) with
signature checking ON: ``INITIAL_NO_AUTH_ACTION_COUNT=4`` lets the first
calls create an IAM user with an access key, and every later request must
be signed with that key (a wrong signature gets 403
``SignatureDoesNotMatch``). The process is stopped when the tests exit.
``SPECTROREG_TEST_S3_ENDPOINT`` (e.g. a moto that CI started) is used
instead when set, with ``SPECTROREG_TEST_S3_ACCESS_KEY``/``_SECRET_KEY``
if it checks signatures (else an IAM user is created as above).

``fresh_bucket(test)`` creates a bucket for one test and empties and
removes it on cleanup. ``start_moto(auth=False)`` gives a test its own
server (moto's presigned GETs fail with a 500 when signatures are checked).

``S3Proxy`` sits between a client and S3 on 127.0.0.1: it counts requests
by S3 operation and bytes each way (the benchmark), and can refuse
connections, answer ``503 SlowDown`` or cut connections mid-body (the fault
tests). It parses requests (Content-Length framed) so it also follows
keep-alive connections.
"""

import atexit
import collections
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from urllib.parse import parse_qsl, urlsplit

from twisted.internet import protocol

from tests.support.requirements import missing, require_external

MOTO_ENV = "SPECTROREG_MOTO_SERVER"
ENDPOINT_ENV = "SPECTROREG_TEST_S3_ENDPOINT"
DEFAULT_MOTO = "/opt/venv-latest/bin/moto_server"
REGION = "us-east-1"

ALLOW_ALL = ('{"Version":"2012-10-17","Statement":'
             '[{"Effect":"Allow","Action":"*","Resource":"*"}]}')


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def moto_program():
    """The moto_server to run, or skip/fail (CI) when there is none."""
    require_external("moto_server")
    program = os.environ.get(MOTO_ENV) or shutil.which("moto_server")
    if not program and os.path.exists(DEFAULT_MOTO):
        program = DEFAULT_MOTO
    if not program:
        missing("moto_server is not installed (pip install 'moto[s3,iam,server]'; "
                "or set {})".format(MOTO_ENV))
    return program


def _die_with_parent():
    # The server must not outlive a test process that was killed.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _botocore_client(service, endpoint, access_key, secret_key):
    import botocore.session
    from botocore.config import Config

    options = {"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 2}}
    session = botocore.session.get_session()
    verify = None
    if endpoint.startswith("https:"):
        # moto's own self-signed certificate; the tests check TLS themselves.
        import warnings

        warnings.filterwarnings("ignore", message="Unverified HTTPS request")
        verify = False
    return session.create_client(
        service, region_name=REGION, endpoint_url=endpoint, verify=verify,
        aws_access_key_id=access_key, aws_secret_access_key=secret_key,
        config=Config(**options))


class MotoServer:
    """
    A moto server: C{endpoint} (``http://127.0.0.1:PORT``), C{host},
    C{port}, C{access_key}, C{secret_key}, C{auth} (signatures checked).
    """

    def __init__(self, endpoint, access_key, secret_key, auth, process=None, log_path=None):
        self.endpoint = endpoint
        parts = urlsplit(endpoint)
        self.host = parts.hostname
        self.port = parts.port
        self.access_key = access_key
        self.secret_key = secret_key
        self.auth = auth
        self.process = process
        self.log_path = log_path
        self.remove_log = False

    def s3(self):
        """A blocking botocore S3 client with this server's keys (test setup only)."""
        # Building a botocore client loads its service model: a few hundred ms.
        if getattr(self, "_s3", None) is None:
            self._s3 = _botocore_client("s3", self.endpoint, self.access_key, self.secret_key)
        return self._s3

    def create_bucket(self, name=None):
        name = name or "spectroreg-" + uuid.uuid4().hex[:16]
        self.s3().create_bucket(Bucket=name)
        return name

    def remove_bucket(self, name):
        """Abort uploads, delete every object, delete the bucket."""
        s3 = self.s3()
        for upload in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
        while True:
            listing = s3.list_objects_v2(Bucket=name)
            keys = [{"Key": item["Key"]} for item in listing.get("Contents", [])]
            if not keys:
                break
            s3.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        s3.delete_bucket(Bucket=name)

    def uploads(self, bucket):
        """Multipart uploads in progress: C{[(key, upload_id)]}."""
        listing = self.s3().list_multipart_uploads(Bucket=bucket)
        return [(u["Key"], u["UploadId"]) for u in listing.get("Uploads", [])]

    def keys(self, bucket):
        listing = self.s3().list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.remove_log and self.log_path:
            try:
                os.remove(self.log_path)
            except OSError:
                pass


def _wait_ready(endpoint, process, timeout=30.0):
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError("moto_server exited with {}".format(process.returncode))
        try:
            urllib.request.urlopen(endpoint + "/moto-api/data.json", timeout=2,
                                   context=context).read()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise RuntimeError("moto_server at {} did not answer".format(endpoint))
            time.sleep(0.05)


def _create_keys(endpoint):
    """The first, unauthenticated calls: an IAM user allowed everything, and its key."""
    iam = _botocore_client("iam", endpoint, "bootstrap", "bootstrap")
    user = "spectroreg-" + uuid.uuid4().hex[:8]
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="everything", PolicyDocument=ALLOW_ALL)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def start_moto(auth=True, workdir=None, tls=False):
    """
    Start a moto_server of one's own; the caller stops it
    (C{addCleanup(server.stop)}). C{tls}: HTTPS with a self-signed
    certificate (moto's ``-s``).
    """
    program = moto_program()
    port = free_port()
    env = dict(os.environ)
    for name in list(env):
        if name.startswith("AWS_"):
            del env[name]
    # moto runs on its own virtualenv's packages: a PYTHONPATH of ours (trial
    # -j sets one to the test process's sys.path) would mix in other versions.
    env.pop("PYTHONPATH", None)
    if auth:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "4"
    else:
        env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
    log_path = os.path.join(workdir or tempfile.gettempdir(), "moto-{}.log".format(port))
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [program, "-H", "127.0.0.1", "-p", str(port)] + (["-s"] if tls else []),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            preexec_fn=_die_with_parent)
    endpoint = "{}://127.0.0.1:{}".format("https" if tls else "http", port)
    try:
        _wait_ready(endpoint, process)
        if auth:
            access_key, secret_key = _create_keys(endpoint)
        else:
            access_key, secret_key = "anything", "anything"
    except BaseException:
        process.kill()
        process.wait()
        raise
    server = MotoServer(endpoint, access_key, secret_key, auth, process, log_path)
    # A log in a directory of the caller's is the caller's; ours goes.
    server.remove_log = workdir is None
    return server


_shared = []


def shared_moto():
    """The process-wide moto with signature checking (or the CI's endpoint)."""
    if _shared:
        server = _shared[0]
        if server.process is None or server.process.poll() is None:
            return server
        _shared.clear()
    endpoint = os.environ.get(ENDPOINT_ENV)
    if endpoint:
        endpoint = endpoint.rstrip("/")
        access_key = os.environ.get("SPECTROREG_TEST_S3_ACCESS_KEY")
        secret_key = os.environ.get("SPECTROREG_TEST_S3_SECRET_KEY")
        _wait_ready(endpoint, None, timeout=10)
        if not (access_key and secret_key):
            access_key, secret_key = _create_keys(endpoint)
        server = MotoServer(endpoint, access_key, secret_key, True)
    else:
        server = start_moto(auth=True)
        atexit.register(server.stop)
    _shared.append(server)
    return server


def fresh_bucket(test, server=None):
    """A new, empty bucket for C{test} on C{server} (default: the shared one)."""
    server = server or shared_moto()
    name = server.create_bucket()
    test.addCleanup(server.remove_bucket, name)
    return server, name


def s3_settings(server, bucket, **overrides):
    """L{S3Settings} for C{bucket} on C{server} (path-style, plain HTTP)."""
    from spectroreg.config.settings import S3Settings

    values = dict(
        bucket=bucket, region=REGION, accesskey=server.access_key, secretkey=server.secret_key,
        regionendpoint=server.endpoint, secure=False)
    values.update(overrides)
    return S3Settings(**values)


# The proxy


def s3_operation(method, target, headers):
    """The S3 operation a (path-style) request is, from its method, target and headers."""
    parts = urlsplit(target)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    path = parts.path.lstrip("/")
    has_key = "/" in path and path.split("/", 1)[1] != ""
    copy = "x-amz-copy-source" in headers
    if method == "GET":
        if "uploads" in query:
            return "ListMultipartUploads"
        if "uploadId" in query:
            return "ListParts"
        if not has_key:
            return "ListObjectsV2" if query.get("list-type") == "2" else "ListObjects"
        return "GetObject"
    if method == "HEAD":
        return "HeadObject" if has_key else "HeadBucket"
    if method == "PUT":
        if "partNumber" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        if copy:
            return "CopyObject"
        return "PutObject" if has_key else "CreateBucket"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        if "delete" in query:
            return "DeleteObjects"
        return "POST"
    if method == "DELETE":
        if "uploadId" in query:
            return "AbortMultipartUpload"
        return "DeleteObject" if has_key else "DeleteBucket"
    return method


class ProxyStats:
    """Requests and bytes by S3 operation, as the proxy saw them."""

    def __init__(self):
        self.requests = collections.Counter()
        self.bytes_up = collections.Counter()
        self.bytes_down = collections.Counter()
        self.log = []

    def reset(self):
        self.__init__()

    def total_requests(self):
        return sum(self.requests.values())

    def snapshot(self):
        return (collections.Counter(self.requests), sum(self.bytes_up.values()),
                sum(self.bytes_down.values()))


_SLOWDOWN = (b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>"
             b"<Message>Please reduce your request rate.</Message></Error>")


class _Upstream(protocol.Protocol):
    def __init__(self, downstream):
        self.downstream = downstream

    def connectionMade(self):
        self.downstream.upstream_connected(self)

    def dataReceived(self, data):
        self.downstream.from_upstream(data)

    def connectionLost(self, reason):
        self.downstream.upstream_lost()


class _ProxyConnection(protocol.Protocol):
    def __init__(self, proxy):
        self.proxy = proxy
        self.buffer = b""
        self.body_left = 0
        self.operation = None
        self.upstream = None
        self.pending = []
        self.action = None
        self.down_budget = None
        self.closed = False

    def connectionMade(self):
        if self.proxy.refuse:
            self.proxy.refused += 1
            self.transport.abortConnection()
            return
        self.proxy.connections += 1
        from twisted.internet import reactor

        protocol.ClientCreator(reactor, _Upstream, self).connectTCP(
            self.proxy.target_host, self.proxy.target_port).addErrback(self._no_upstream)

    def _no_upstream(self, failure):
        self.transport.abortConnection()

    def upstream_connected(self, upstream):
        self.upstream = upstream
        if self.closed:
            upstream.transport.loseConnection()
            return
        for data in self.pending:
            upstream.transport.write(data)
        self.pending = []

    def _send_up(self, data):
        if not data or self.action is not None:
            return
        if self.upstream is None:
            self.pending.append(data)
        else:
            self.upstream.transport.write(data)

    def dataReceived(self, data):
        if self.closed:
            return
        while data:
            if self.body_left:
                piece, data = data[:self.body_left], data[self.body_left:]
                self.body_left -= len(piece)
                self.proxy.stats.bytes_up[self.operation] += len(piece)
                self._send_up(piece)
                if not self.body_left and self.action == "503":
                    self._answer_503()
                    return
                continue
            self.buffer += data
            data = b""
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, rest = self.buffer[:end + 4], self.buffer[end + 4:]
            self.buffer = b""
            self._request(head)
            if self.closed:
                return
            self._send_up(head)
            if not self.body_left and self.action == "503":
                self._answer_503()
                return
            data = rest

    def _request(self, head):
        lines = head.decode("latin-1").split("\r\n")
        method, target = lines[0].split(" ")[:2]
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        self.body_left = int(headers.get("content-length", "0") or 0)
        self.operation = s3_operation(method, target, headers)
        stats = self.proxy.stats
        stats.requests[self.operation] += 1
        stats.bytes_up[self.operation] += len(head)
        stats.log.append((method, target, self.operation))
        action = self.proxy.decide(method, target, self.operation, headers)
        if action == "reset":
            self.proxy.faults += 1
            self.closed = True
            self.transport.abortConnection()
            if self.upstream is not None:
                self.upstream.transport.abortConnection()
        elif action == "503":
            self.proxy.faults += 1
            self.action = "503"
        elif isinstance(action, tuple) and action[0] == "cut":
            self.proxy.faults += 1
            self.down_budget = action[1]

    def _answer_503(self):
        self.closed = True
        self.transport.write(
            b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
            b"Content-Length: " + str(len(_SLOWDOWN)).encode() + b"\r\nConnection: close\r\n\r\n"
            + _SLOWDOWN)
        self.transport.loseConnection()
        if self.upstream is not None:
            self.upstream.transport.loseConnection()

    def from_upstream(self, data):
        if self.closed:
            return
        if self.down_budget is not None:
            if len(data) >= self.down_budget:
                data = data[:self.down_budget]
                self.proxy.stats.bytes_down[self.operation] += len(data)
                self.transport.write(data)
                self.closed = True
                self.transport.abortConnection()
                self.upstream.transport.abortConnection()
                return
            self.down_budget -= len(data)
        self.proxy.stats.bytes_down[self.operation] += len(data)
        self.transport.write(data)

    def upstream_lost(self):
        if not self.closed:
            self.closed = True
            self.transport.loseConnection()

    def connectionLost(self, reason):
        self.closed = True
        if self.upstream is not None:
            self.upstream.transport.loseConnection()
        elif self.pending is not None:
            self.pending = []


class _ProxyFactory(protocol.Factory):
    def __init__(self, proxy):
        self.proxy = proxy

    def buildProtocol(self, addr):
        return _ProxyConnection(self.proxy)


class S3Proxy:
    """
    A proxy on 127.0.0.1 in front of C{target_host:target_port}.

    @ivar stats: a L{ProxyStats}.
    @ivar refuse: while True, connections are accepted and reset at once.
    @ivar rule: None, or C{rule(method, target, operation, headers)} returning
        None (forward), C{"503"} (answer SlowDown), C{"reset"} (drop the
        connection) or C{("cut", n)} (forward, but drop the connection after
        n bytes of the answer).
    """

    def __init__(self, target_host, target_port, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self._reactor = reactor
        self.target_host = target_host
        self.target_port = target_port
        self.stats = ProxyStats()
        self.refuse = False
        self.rule = None
        self.faults = 0
        self.refused = 0
        self.connections = 0
        self.port = None

    def decide(self, method, target, operation, headers):
        return self.rule(method, target, operation, headers) if self.rule else None

    def listen(self):
        """Start listening; @return: the port number."""
        self.port = self._reactor.listenTCP(0, _ProxyFactory(self), interface="127.0.0.1")
        return self.port.getHost().port

    @property
    def endpoint(self):
        return "http://127.0.0.1:{}".format(self.port.getHost().port)

    def stop(self):
        """@return: a Deferred that fires when the proxy stopped listening."""
        return self.port.stopListening()


# Registries on S3


def registry_s3_config(kind, server, bucket, port, endpoint=None, redirect=True,
                       rootdirectory="/registry", chunksize=None, loglevel="warn"):
    """
    A Distribution-format config for C{kind} ("spectroreg" or
    "docker-registry") storing in C{bucket} on moto C{server} (or at
    C{endpoint}, e.g. a proxy in front of it), listening on 127.0.0.1:C{port}.
    """
    s3 = {
        "accesskey": server.access_key, "secretkey": server.secret_key, "region": REGION,
        "regionendpoint": endpoint or server.endpoint, "bucket": bucket, "secure": False,
        "forcepathstyle": True, "v4auth": True, "rootdirectory": rootdirectory,
    }
    if chunksize:
        s3["chunksize"] = chunksize
    return {
        "version": "0.1",
        "log": {"level": loglevel if kind == "spectroreg" else "error",
                "accesslog": {"disabled": os.environ.get("SPECTROREG_TEST_ACCESSLOG") is None}},
        "storage": {
            "s3": s3,
            "delete": {"enabled": True},
            "redirect": {"disable": not redirect},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": "127.0.0.1:{}".format(port), "secret": "spectroreg-s3-tests"},
    }


def start_registry_s3(kind, server, bucket, workdir, **options):
    """
    Start C{kind} ("spectroreg": ``python -m spectroreg serve``, the same
    Python as the caller; "docker-registry": Debian's Distribution 2.8) on
    S3; @return: a L{tests.support.reference.ServerProcess} (the caller
    stops it).
    """
    import sys

    import yaml

    from tests.support.reference import ServerProcess, clean_environment, wait_http_ok
    from tests.support.requirements import require_binary

    os.makedirs(workdir, exist_ok=True)
    port = free_port()
    config_path = os.path.join(workdir, "config.yml")
    with open(config_path, "w") as f:
        yaml.safe_dump(registry_s3_config(kind, server, bucket, port, **options), f)
    env = clean_environment()
    if kind == "spectroreg":
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = root
        command = [sys.executable, "-m", "spectroreg", "serve", config_path]
    else:
        command = [require_binary("docker-registry"), "serve", config_path]
    log_path = os.path.join(workdir, "server.log")
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, env=env, cwd=workdir)
    registry = ServerProcess(kind, process, "127.0.0.1", port, log_path, config_path=config_path)
    try:
        wait_http_ok(registry.host, registry.port, timeout=30, process=process)
    except BaseException as error:
        registry.kill()
        raise RuntimeError("{} did not start: {}\n{}".format(kind, error, registry.log_text()))
    return registry
