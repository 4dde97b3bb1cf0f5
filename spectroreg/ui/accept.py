"""
Who gets the web page at ``/``: a client whose ``Accept`` header names
``text/html`` itself, with a quality no lower than any other type it names.

Browsers send ``text/html,...,*/*;q=0.8`` and w3m ``text/html, text/*;q=0.5``;
curl, Docker, containerd, skopeo and health checks send no ``Accept``, ``*/*``
or JSON types, and keep the empty 200 of the liveness answer. A wildcard
alone never selects the page.
"""


def _media_ranges(header):
    for item in header.split(","):
        parts = [p.strip() for p in item.split(";")]
        media = parts[0].lower()
        if not media:
            continue
        quality = 1.0
        for parameter in parts[1:]:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
                if not 0.0 <= quality <= 1.0:
                    quality = 0.0
        yield media, quality


def prefers_html(accept):
    """
    @param accept: the ``Accept`` header value (str or bytes) or None.
    @return: whether ``text/html`` is named explicitly and preferred.
    """
    if not accept:
        return False
    if isinstance(accept, bytes):
        accept = accept.decode("latin-1")
    html_quality = None
    best_other = 0.0
    for media, quality in _media_ranges(accept):
        if media == "text/html":
            html_quality = max(quality, html_quality or 0.0)
        elif "*" not in media:
            best_other = max(best_other, quality)
    return html_quality is not None and html_quality > 0 and html_quality >= best_other


__all__ = ["prefers_html"]
