"""Query parameters as text."""


def query_arg(request, name):
    """The first value of query parameter C{name}, decoded (bad UTF-8 replaced), or None."""
    values = request.args.get(name.encode("ascii")) if request.args else None
    if not values:
        return None
    value = values[0]
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
