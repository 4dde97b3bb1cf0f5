"""Who is asking: the address a request came from, for logs and throttles."""


def client_host(request):
    """The peer's host (TCP) or address (unix socket) as text; "unknown" without one."""
    try:
        address = request.getClientAddress()
    except AttributeError:
        return "unknown"
    return str(getattr(address, "host", address))
