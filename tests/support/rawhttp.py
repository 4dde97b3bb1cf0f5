"""
Plain, blocking HTTP to a registry subprocess, for tests that need control
over every byte on the wire (throttled bodies, chunked uploads, raw status
codes) and for the memory benchmark. Each call opens its own connection, so
it is safe from many threads at once.
"""

import hashlib
import http.client
import json
import urllib.parse


class Response(object):
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> value
        self.body = body

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def error_codes(self):
        """The ``code`` of every entry in an OCI error body (empty if none)."""
        try:
            return [e.get("code") for e in json.loads(self.body.decode("utf-8"))["errors"]]
        except (ValueError, KeyError, TypeError, AttributeError):
            return []

    def describe(self):
        return "HTTP {} {} {!r}".format(self.status, dict(self.headers), self.body[:300])


def path_of(location):
    """The path and query of a Location (absolute or relative), for any port."""
    parts = urllib.parse.urlsplit(location)
    return parts.path + ("?" + parts.query if parts.query else "")


def add_query(path, **params):
    separator = "&" if "?" in path else "?"
    return path + separator + urllib.parse.urlencode(params)


def request(server, method, path, body=b"", headers=None, timeout=30.0):
    """One request; C{body} is bytes or an iterable of bytes (sent as it comes)."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        headers = dict(headers or {})
        if isinstance(body, (bytes, bytearray)):
            headers.setdefault("Content-Length", str(len(body)))
            pieces = [body] if body else []
        else:
            pieces = body
            if "Content-Length" not in headers:
                raise ValueError("a streamed body needs a Content-Length")
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        for piece in pieces:
            connection.send(piece)
        response = connection.getresponse()
        data = response.read()
        return Response(response.status,
                        {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        connection.close()


def hash_body(response, chunk_size=1024 * 1024):
    """Read C{response}'s body in chunks, keeping nothing: (byte count, sha256 digest)."""
    digest = hashlib.sha256()
    count = 0
    while True:
        chunk = response.read(chunk_size)
        if not chunk:
            break
        digest.update(chunk)
        count += len(chunk)
    return count, "sha256:" + digest.hexdigest()


def download(server, path, chunk_size=1024 * 1024, timeout=60.0):
    """GET C{path} streaming: (status, byte count, sha256 digest, headers); nothing kept."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        count, digest = hash_body(response, chunk_size)
        return (response.status, count, digest,
                {k.lower(): v for k, v in response.getheaders()})
    finally:
        connection.close()


def exchange(host, port, data, timeout=30.0):
    """
    Send C{data} (the whole request, bytes, as it should appear on the wire)
    on a new connection and read until the server closes it; send
    ``Connection: close`` in C{data}. Returns (status or None, headers as
    {lower-case name: bytes}, body, raw bytes received).
    """
    import socket

    with socket.create_connection((host, port), timeout=timeout) as connection:
        connection.sendall(data)
        received = b""
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = None
    parts = lines[0].split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip()
    return status, headers, body, received
