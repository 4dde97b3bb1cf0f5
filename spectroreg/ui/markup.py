"""
HTML built by construction: every value is escaped unless it is L{Markup}.

L{Markup} is text already known to be HTML (our own templates and what
L{html} returns). L{html} formats a template (itself trusted text written in
the code) with arguments that are escaped, quotes included, so a value is
safe both between tags and inside a quoted attribute. Nothing from storage or
from the request can become markup except through these functions.
"""

import html as _html
import string
from urllib.parse import quote


class Markup(str):
    """Text that is HTML already; L{escape} leaves it as it is."""

    __slots__ = ()

    def __add__(self, other):
        return Markup(str.__add__(self, escape(other)))

    def __radd__(self, other):
        return Markup(str.__add__(escape(other), self))

    def __html__(self):
        return self


def escape(value):
    """C{value} as HTML text: L{Markup} unchanged, None as "", anything else escaped."""
    if isinstance(value, Markup):
        return value
    if value is None:
        return Markup("")
    if not isinstance(value, str):
        value = str(value)
    return Markup(_html.escape(value, quote=True))


class _EscapingFormatter(string.Formatter):
    def get_field(self, field_name, args, kwargs):
        # Plain names and positions only: no attribute or item lookups that
        # could reach into objects from a template.
        if not field_name.isidentifier() and not field_name.isdigit():
            raise ValueError("template fields are plain names: {!r}".format(field_name))
        return super().get_field(field_name, args, kwargs)

    def format_field(self, value, format_spec):
        if isinstance(value, Markup):
            if format_spec:
                raise ValueError("no format spec for markup")
            return value
        return escape(format(value, format_spec))

    def convert_field(self, value, conversion):
        if conversion is not None:
            raise ValueError("no conversions in templates")
        return value


_formatter = _EscapingFormatter()


def html(template, *args, **kwargs):
    """
    C{template} (str, written in the code) with C{{name}} fields replaced by
    the escaped arguments. @return: L{Markup}.
    """
    return Markup(_formatter.vformat(template, args, kwargs))


def join(parts, separator=""):
    """Concatenate C{parts}, each escaped unless L{Markup}. @return: L{Markup}."""
    return Markup(escape(separator).join(escape(part) for part in parts))


def url_path(*segments):
    """
    A path built from C{segments} (str), each percent-encoded on its own
    (``/`` kept inside a segment only where the caller splits it).
    """
    return "/".join(quote(segment, safe="@:") for segment in segments)


__all__ = ["Markup", "escape", "html", "join", "url_path"]
