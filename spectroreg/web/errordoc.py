"""
The OCI error document, ``{"errors": [{"code", "message", "detail"}]}``:
the body of every error answer, whoever writes it (the API, the request
that refused a body, the health gate).
"""

import json


def error_body(code, message, detail=None):
    """The error document (bytes) for one error."""
    entry = {"code": code, "message": message}
    entry["detail"] = detail if detail is not None else {}
    return json.dumps({"errors": [entry]}).encode("utf-8")


__all__ = ["error_body"]
