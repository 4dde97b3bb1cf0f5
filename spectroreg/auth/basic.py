"""Parsing the ``Authorization: Basic`` header (RFC 7617), as a pure function."""

import binascii
import base64


class MalformedCredentials(ValueError):
    """The header is not usable Basic credentials (the reason never holds them)."""


def parse_basic(authorization):
    """
    Split an Authorization header value into user and password.

    @param authorization: the raw header value (bytes).
    @return: (user (str), password (bytes)).
    @raise MalformedCredentials: not ``Basic``, bad base64, no colon, or a
        user name that is not UTF-8.
    """
    scheme, _, encoded = authorization.strip().partition(b" ")
    if scheme.lower() != b"basic":
        raise MalformedCredentials("not Basic credentials")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MalformedCredentials("credentials are not valid base64") from None
    user, sep, password = decoded.partition(b":")
    if not sep:
        raise MalformedCredentials("credentials have no colon")
    try:
        user_text = user.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedCredentials("user name is not UTF-8") from None
    if not user_text:
        raise MalformedCredentials("empty user name")
    return user_text, password
