"""Request-size and connection-time limits of the HTTP listener."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """
    @ivar max_request_line: bytes in the request line (method, target,
        version); longer: 414.
    @ivar max_header_bytes: bytes in the request line and all header lines
        together; more: 431.
    @ivar max_headers: number of header fields; more: 431.
    @ivar idle_timeout: seconds a connection may stay silent between or
        inside requests before it is closed.
    @ivar header_timeout: seconds from the first byte of a request until its
        last header line; a client trickling its headers (slowloris) is
        answered 408 and disconnected when it runs out.
    @ivar max_discard: bytes of a request body nobody will use (the answer
        was decided without it) that are read and dropped so the connection
        can carry the next request; a body with more left is not read: the
        answer says ``Connection: close`` and the connection closes. Go's
        server discards 256 KiB the same way.
    @ivar linger_timeout: seconds the client's bytes are still read and
        dropped around such a close, so that its unread data does not make
        the kernel reset the connection before the client read the answer.
    """

    max_request_line: int = 8192
    max_header_bytes: int = 64 * 1024
    max_headers: int = 200
    idle_timeout: float = 60.0
    header_timeout: float = 20.0
    max_discard: int = 256 * 1024
    linger_timeout: float = 2.0


DEFAULT_LIMITS = Limits()
