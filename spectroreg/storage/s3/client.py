"""
A small S3 client on Twisted's ``Agent``: the operations a registry needs.

botocore does what it is good at (SigV4 signing, credentials); the I/O is
Twisted's HTTP/1.1 client over a persistent, bounded connection pool, so no
request ever blocks the reactor and bodies stream both ways.

Every request is retried with exponential backoff (on the injected clock) on
5xx answers, throttling (``SlowDown``), dropped or refused connections and
timeouts; bodies are bytes held for the duration, so a retry sends them
again. ``stream=True`` requests hand back the response with its body unread
(a streamed GET), everything else is read whole under an idle timeout.

No botocore ``Client`` is built, so the flexible-checksum defaults of newer
botocore (CRC32 trailers, which some S3-compatible servers reject) never
apply: the only integrity headers sent are those chosen here
(``X-Amz-Content-SHA256``, ``Content-MD5`` where S3 requires it).
"""

import base64
import hashlib
import random

from botocore.auth import UNSIGNED_PAYLOAD, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers

from spectroreg.storage.s3 import xmlparse
from spectroreg.storage.s3.errors import S3Error, is_retriable
from spectroreg.storage.s3.transport import BytesProducer, collect_body, tls_policy

log = Logger()

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# Bodies up to this size are hashed into the signature; bigger ones (parts)
# go as UNSIGNED-PAYLOAD, S3's mode for streamed uploads.
SIGNED_PAYLOAD_LIMIT = 1024 * 1024
XML_LIMIT = 64 * 1024 * 1024
ERROR_BODY_LIMIT = 1024 * 1024

_STATUS_CODES = {
    301: "PermanentRedirect",
    304: "NotModified",
    400: "BadRequest",
    403: "AccessDenied",
    404: "NoSuchKey",
    409: "Conflict",
    412: "PreconditionFailed",
    416: "InvalidRange",
    429: "SlowDown",
    500: "InternalError",
    503: "SlowDown",
}


class _Signer(S3SigV4Auth):
    """SigV4 with the payload hash decided by the caller (or UNSIGNED-PAYLOAD)."""

    def payload(self, request):
        return request.context.get("payload_hash", UNSIGNED_PAYLOAD)


class S3Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name, default=None):
        values = self.headers.getRawHeaders(name)
        if not values:
            return default
        return values[0].decode("latin-1") if isinstance(values[0], bytes) else values[0]


def raw_header(response, name, default=None):
    values = response.headers.getRawHeaders(name)
    if not values:
        return default
    value = values[0]
    return value.decode("latin-1") if isinstance(value, bytes) else value


class RetryPolicy:
    """
    How often and how long to retry.

    @param attempts: tries per request, the first included.
    @param base: the first backoff delay (seconds); each retry doubles it,
        up to C{cap}, with full jitter.
    """

    def __init__(self, attempts=5, base=0.2, cap=10.0, jitter=True):
        self.attempts = attempts
        self.base = base
        self.cap = cap
        self.jitter = jitter

    def delay(self, retry):
        """Seconds to wait before retry number C{retry} (1-based)."""
        ceiling = min(self.cap, self.base * (2 ** (retry - 1)))
        if self.jitter:
            return ceiling / 2 + random.uniform(0, ceiling / 2)
        return ceiling


class S3Client:
    """
    Requests against one bucket.

    @param endpoint: an L{Endpoint}.
    @param credentials: a L{CredentialSource}.
    @param reactor: for the Agent and pool (default: the global reactor).
    @param clock: for backoff and timeouts (default: C{reactor}).
    @param agent: an C{IAgent} to use instead of building one (tests).
    @param request_timeout: seconds to wait for an answer's headers, plus one
        second per MB of request body.
    @param idle_timeout: seconds a response body may stall.
    @param max_requests: requests in flight at once, streamed GETs excluded
        (they are bounded by the clients reading them).
    """

    def __init__(self, endpoint, bucket, region, credentials, reactor=None, clock=None,
                 agent=None, useragent=None, skipverify=False, retry=None,
                 request_timeout=60.0, idle_timeout=60.0, max_requests=64, pool_size=16):
        if reactor is None:
            from twisted.internet import reactor
        self._reactor = reactor
        self._clock = clock if clock is not None else reactor
        self.endpoint = endpoint
        self.bucket = bucket
        self.region = region or "us-east-1"
        self._credentials = credentials
        self._useragent = useragent or "spectroreg"
        self.retry = retry or RetryPolicy()
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self._limit = defer.DeferredSemaphore(max_requests)
        self._pool = None
        if agent is None:
            self._pool = HTTPConnectionPool(reactor, persistent=True)
            self._pool.maxPersistentPerHost = pool_size
            # S3 drops idle connections after about 20 s; reusing one it
            # already closed costs a failed request.
            self._pool.cachedConnectionTimeout = 15
            self._pool.retryAutomatically = True
            agent = Agent(reactor, contextFactory=tls_policy(skipverify), pool=self._pool,
                          connectTimeout=min(30.0, request_timeout))
        self._agent = agent
        # Counters, for logs and benchmarks.
        self.requests = 0
        self.retries = 0

    def close(self):
        """Drop pooled connections. @return: Deferred."""
        if self._pool is None:
            return defer.succeed(None)
        return self._pool.closeCachedConnections()

    # signing

    async def _signed_headers(self, method, url, headers, body, sign_payload):
        frozen = await self._credentials.frozen()
        headers = dict(headers)
        if frozen is None:
            return headers
        request = AWSRequest(method=method, url=url, headers=headers, data=b"")
        if sign_payload:
            request.context["payload_hash"] = (
                hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256)
        _Signer(frozen, "s3", self.region).add_auth(request)
        return dict(request.headers.items())

    async def presign(self, key, method="GET", expires=1200):
        """A presigned (query-string SigV4) URL for C{key}, valid C{expires} s."""
        url = self.endpoint.url(self.bucket, key)
        frozen = await self._credentials.frozen()
        if frozen is None:
            return url
        request = AWSRequest(method=method, url=url)
        S3SigV4QueryAuth(frozen, "s3", self.region, expires=expires).add_auth(request)
        return request.url

    # the request loop

    async def request(self, method, key=None, query=(), headers=None, body=b"",
                      expect=(200,), path=None, stream=False, limit=XML_LIMIT,
                      check_body=False, sign_payload=None):
        """
        Send one S3 request, retrying as the class docstring says.

        @param key: the object key, or None for the bucket.
        @param query: C{(name, value)} pairs.
        @param expect: statuses that mean success.
        @param path: the storage path, for error messages.
        @param stream: return the response with its body unread.
        @param check_body: a 200 answer may still carry an S3 C{<Error>}
            (CopyObject, UploadPartCopy, CompleteMultipartUpload).
        @return: an L{S3Response} (body read), or with C{stream} an
            C{IResponse}.
        @raise S3Error: with C{code}/C{status} from S3, C{retriable} set when
            the last failure was a temporary one.
        """
        headers = dict(headers or {})
        headers["User-Agent"] = self._useragent
        if sign_payload is None:
            sign_payload = len(body) <= SIGNED_PAYLOAD_LIMIT
        url = self.endpoint.url(self.bucket, key, query)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(method, url, headers, body, expect, path, stream,
                                           limit, check_body, sign_payload)
            except S3Error as error:
                if not error.retriable or attempt >= self.retry.attempts:
                    if error.retriable and attempt > 1:
                        raise S3Error(
                            "{} (after {} attempts)".format(error, attempt), path,
                            error.code, error.status, True) from error
                    raise
                last = error
            delay = self.retry.delay(attempt)
            self.retries += 1
            log.info("{error}; retry {n} in {delay:.2f} s", error=str(last), n=attempt,
                     delay=delay)
            await task.deferLater(self._clock, delay, lambda: None)

    async def _attempt(self, method, url, headers, body, expect, path, stream, limit,
                       check_body, sign_payload):
        if not stream:
            await self._limit.acquire()
        try:
            signed = await self._signed_headers(method, url, headers, body, sign_payload)
            twisted_headers = Headers()
            for name, value in signed.items():
                twisted_headers.addRawHeader(name.encode("latin-1"), value.encode("latin-1"))
            producer = BytesProducer(body) if (body or method in ("PUT", "POST")) else None
            self.requests += 1
            try:
                d = self._agent.request(method.encode("ascii"), url.encode("ascii"),
                                        twisted_headers, producer)
                d.addTimeout(self.request_timeout + len(body) / 1e6, self._clock)
                response = await d
            except Exception as error:
                raise S3Error("S3 {} failed: {}: {}".format(
                    method, type(error).__name__, error), path, retriable=True) from error
            status = response.code
            if status in expect and not check_body:
                if stream:
                    return response
                body_bytes = await self._read(response, method, path, limit)
                return S3Response(status, response.headers, body_bytes)
            body_bytes = await self._read(
                response, method, path, ERROR_BODY_LIMIT if status not in expect else limit)
            code, message = xmlparse.parse_error(body_bytes)
            if status in expect and code is None:
                return S3Response(status, response.headers, body_bytes)
            if code is None:
                code = _STATUS_CODES.get(status, "HTTP{}".format(status))
            raise S3Error(
                "S3 {} {}: {} {}{}".format(method, url.split("?")[0], status, code,
                                           ": " + message if message else ""),
                path, code, status, is_retriable(status if status not in expect else None, code))
        finally:
            if not stream:
                self._limit.release()

    async def _read(self, response, method, path, limit):
        if method == "HEAD":
            return b""
        try:
            return await collect_body(response, self._clock, self.idle_timeout, limit)
        except Exception as error:
            raise S3Error("S3 {} failed reading the answer: {}: {}".format(
                method, type(error).__name__, error), path, retriable=True) from error

    # object operations

    async def get_object(self, key, path=None, byte_range=None):
        headers = {"Range": byte_range} if byte_range else {}
        response = await self.request("GET", key, headers=headers, expect=(200, 206),
                                      path=path, limit=None)
        return response.body

    async def open_object(self, key, path=None, byte_range=None, if_match=None):
        """A GET whose body is left unread: @return: an C{IResponse}."""
        headers = {}
        if byte_range:
            headers["Range"] = byte_range
        if if_match:
            headers["If-Match"] = if_match
        return await self.request("GET", key, headers=headers, expect=(200, 206),
                                  path=path, stream=True)

    async def head_object(self, key, path=None):
        """@return: C{(size, modified, etag)}; raises S3Error NoSuchKey."""
        response = await self.request("HEAD", key, path=path)
        size = int(response.header(b"content-length", "0"))
        modified = xmlparse.http_date_seconds(response.header(b"last-modified"))
        return size, modified, response.header(b"etag")

    async def put_object(self, key, body, headers, path=None):
        response = await self.request("PUT", key, headers=headers, body=body, path=path)
        return response.header(b"etag")

    async def delete_object(self, key, path=None):
        await self.request("DELETE", key, expect=(200, 204), path=path)

    async def delete_objects(self, keys, path=None):
        """Delete up to 1000 keys in one request; raises on any per-key error."""
        body = xmlparse.delete_body(keys)
        headers = {
            "Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode("ascii"),
            "Content-Type": "application/xml",
        }
        response = await self.request("POST", None, query=[("delete", None)],
                                      headers=headers, body=body, path=path)
        errors = [e for e in xmlparse.delete_errors(response.body) if e[1] != "NoSuchKey"]
        if errors:
            key, code, message = errors[0]
            raise S3Error("S3 DeleteObjects: {} of {} keys failed, first {}: {} {}".format(
                len(errors), len(keys), key, code, message), path, code, 200,
                code in ("InternalError", "SlowDown"))

    async def list_objects(self, prefix, delimiter=None, token=None, max_keys=1000,
                           start_after=None, path=None):
        """One ListObjectsV2 page: C{(objects, prefixes, next_token)}."""
        query = [("list-type", "2")]
        if token:
            query.append(("continuation-token", token))
        if delimiter:
            query.append(("delimiter", delimiter))
        query.append(("max-keys", str(max_keys)))
        query.append(("prefix", prefix))
        if start_after:
            query.append(("start-after", start_after))
        query.sort()
        response = await self.request("GET", None, query=query, path=path)
        return xmlparse.list_objects(response.body)

    async def copy_object(self, source_key, key, headers, path=None):
        headers = dict(headers)
        headers["x-amz-copy-source"] = "/{}/{}".format(self.bucket, _quote_source(source_key))
        headers["x-amz-metadata-directive"] = "REPLACE"
        await self.request("PUT", key, headers=headers, path=path, check_body=True)

    # multipart

    async def create_multipart(self, key, headers, path=None):
        response = await self.request("POST", key, query=[("uploads", None)],
                                      headers=headers, path=path)
        return xmlparse.text(xmlparse.parse(response.body), "UploadId")

    async def upload_part(self, key, upload_id, number, body, path=None):
        response = await self.request(
            "PUT", key, query=[("partNumber", str(number)), ("uploadId", upload_id)],
            body=body, path=path)
        return response.header(b"etag")

    async def upload_part_copy(self, key, upload_id, number, source_key, first, last,
                               path=None):
        headers = {
            "x-amz-copy-source": "/{}/{}".format(self.bucket, _quote_source(source_key)),
            "x-amz-copy-source-range": "bytes={}-{}".format(first, last),
        }
        response = await self.request(
            "PUT", key, query=[("partNumber", str(number)), ("uploadId", upload_id)],
            headers=headers, path=path, check_body=True)
        return xmlparse.text(xmlparse.parse(response.body), "ETag")

    async def complete_multipart(self, key, upload_id, parts, path=None):
        body = xmlparse.complete_body(parts)
        await self.request("POST", key, query=[("uploadId", upload_id)],
                           headers={"Content-Type": "application/xml"}, body=body,
                           path=path, check_body=True)

    async def abort_multipart(self, key, upload_id, path=None):
        try:
            await self.request("DELETE", key, query=[("uploadId", upload_id)],
                               expect=(200, 204), path=path)
        except S3Error as error:
            if error.code != "NoSuchUpload" and error.status != 404:
                raise

    async def list_parts(self, key, upload_id, path=None):
        """Every part of an upload: C{[(number, etag, size)]}."""
        parts = []
        marker = None
        while True:
            query = [("uploadId", upload_id)]
            if marker:
                query.insert(0, ("part-number-marker", marker))
            response = await self.request("GET", key, query=query, path=path)
            page, marker = xmlparse.list_parts(response.body)
            parts.extend(page)
            if not marker:
                return parts

    async def list_multipart_uploads(self, prefix, path=None):
        """Every multipart upload under C{prefix}: C{[(key, upload_id, initiated)]}."""
        uploads = []
        key_marker = upload_marker = None
        while True:
            query = []
            if key_marker:
                query.append(("key-marker", key_marker))
            query.append(("prefix", prefix))
            query.append(("uploads", None))
            if upload_marker:
                query.append(("upload-id-marker", upload_marker))
            response = await self.request("GET", None, query=query, path=path)
            page, key_marker, upload_marker = xmlparse.list_uploads(response.body)
            uploads.extend(page)
            if not key_marker:
                return uploads


def _quote_source(key):
    from spectroreg.storage.s3.endpoint import quote_key

    return quote_key(key)
