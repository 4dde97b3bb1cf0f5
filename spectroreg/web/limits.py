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
    """

    max_request_line: int = 8192
    max_header_bytes: int = 64 * 1024
    max_headers: int = 200
    idle_timeout: float = 60.0
    header_timeout: float = 20.0


DEFAULT_LIMITS = Limits()
