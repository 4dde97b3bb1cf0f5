"""The seam between the HTTP API and whatever checks credentials."""

from zope.interface import Attribute, Interface


class Unauthorized(Exception):
    """No or wrong credentials: answer 401 with the challenge."""

    def __init__(self, message="authentication required"):
        super().__init__(message)
        self.message = message


class TooManyRequests(Exception):
    """This client failed too often: answer 429 TOOMANYREQUESTS."""

    def __init__(self, retry_after):
        super().__init__("too many failed authentication attempts")
        self.retry_after = retry_after  # seconds


class IAuthenticator(Interface):
    """Checks the credentials of one request."""

    def challenge():
        """
        @return: (header name, value) pairs (str) to send with a 401, e.g.
            [("WWW-Authenticate", 'Basic realm="basic-realm"')].
        """

    def authenticate(authorization, client):
        """
        @param authorization: the raw Authorization header value (bytes) or None.
        @param client: the client's address (str), for failure throttling.
        @return: a Deferred firing with the user name (str); failing with
            L{Unauthorized} or L{TooManyRequests}. Must not block the reactor.
        """

    realm = Attribute("The realm (str).")
