"""
What can go wrong while talking to an ACME CA, as exceptions the issuing
service tells apart: retry at once (badNonce), retry later (CA down, rate
limit, server error), try another challenge type (validation failed).
"""


class ACMEError(Exception):
    """Base of every ACME failure."""


class ProblemError(ACMEError):
    """
    The CA answered with an RFC 7807 problem document.

    @ivar status: the HTTP status code.
    @ivar code: the ACME error code without its namespace (``badNonce``,
        ``rateLimited``, ``unauthorized``...), or None.
    @ivar detail: the CA's human-readable explanation.
    @ivar retry_after: seconds the CA asked us to wait (``Retry-After``), or
        None.
    """

    def __init__(self, status, code, detail, url, retry_after=None):
        self.status = status
        self.code = code
        self.detail = detail
        self.url = url
        self.retry_after = retry_after
        super().__init__(
            "ACME CA answered {} {} for {}: {}".format(status, code or "(no type)", url, detail)
        )


class RateLimitedError(ProblemError):
    """The CA refused because a rate limit was reached (``rateLimited``)."""


class BadNonceError(ProblemError):
    """The CA kept rejecting our nonces (``badNonce``) after several retries."""


class CAUnavailableError(ACMEError):
    """The CA could not be reached, timed out, or answered something unusable."""


class ValidationError(ACMEError):
    """
    The CA could not validate the challenge we answered.

    @ivar host: the name being validated.
    @ivar challenge_type: ``tls-alpn-01`` or ``http-01``.
    @ivar detail: the CA's explanation.
    """

    def __init__(self, host, challenge_type, detail):
        self.host = host
        self.challenge_type = challenge_type
        self.detail = detail
        super().__init__(
            "{} validation of {} failed: {}".format(challenge_type, host, detail)
        )


class NoUsableChallengeError(ACMEError):
    """The CA offered no challenge type we are configured to answer."""


class OrderFailedError(ACMEError):
    """The order became invalid or did not finish in time."""
