"""Reading S3's XML answers (namespaces stripped) and writing its request bodies."""

import calendar
import time
import xml.etree.ElementTree as ET
from email.utils import parsedate_to_datetime
from xml.sax.saxutils import escape


def _strip(tag):
    return tag.rsplit("}", 1)[-1]


def parse(body):
    """The root element of C{body} with namespace prefixes removed from tags."""
    root = ET.fromstring(body)
    for element in root.iter():
        element.tag = _strip(element.tag)
    return root


def text(element, name, default=None):
    child = element.find(name)
    if child is None or child.text is None:
        return default
    return child.text


def parse_error(body):
    """C{(code, message)} from an S3 error body, (None, None) if it is not one."""
    if not body:
        return None, None
    try:
        root = parse(body)
    except ET.ParseError:
        return None, None
    if root.tag != "Error":
        return None, None
    return text(root, "Code"), text(root, "Message")


def iso_seconds(value):
    """POSIX seconds from S3's ISO 8601 timestamps (``2026-11-27T09:44:39.000Z``)."""
    if not value:
        return 0.0
    whole, _, fraction = value.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(whole[:19], "%Y-%m-%dT%H:%M:%S"))
    if fraction:
        digits = "".join(c for c in fraction if c.isdigit())
        if digits:
            seconds += float("0." + digits)
    return float(seconds)


def http_date_seconds(value):
    """POSIX seconds from an HTTP date (``Last-Modified``)."""
    if not value:
        return 0.0
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return 0.0


def list_objects(body):
    """
    ListObjectsV2 → C{(objects, prefixes, next_token)}: objects as
    C{(key, size, modified, etag)}, prefixes as keys ending in the delimiter.
    """
    root = parse(body)
    objects = [
        (text(item, "Key"), int(text(item, "Size", "0")), iso_seconds(text(item, "LastModified")),
         text(item, "ETag"))
        for item in root.findall("Contents")
    ]
    prefixes = [text(item, "Prefix") for item in root.findall("CommonPrefixes")]
    token = None
    if text(root, "IsTruncated", "false").lower() == "true":
        token = text(root, "NextContinuationToken")
    return objects, prefixes, token


def list_uploads(body):
    """ListMultipartUploads → C{(uploads, next_key_marker, next_upload_id_marker)}."""
    root = parse(body)
    uploads = [
        (text(item, "Key"), text(item, "UploadId"), iso_seconds(text(item, "Initiated")))
        for item in root.findall("Upload")
    ]
    if text(root, "IsTruncated", "false").lower() == "true":
        return uploads, text(root, "NextKeyMarker"), text(root, "NextUploadIdMarker")
    return uploads, None, None


def list_parts(body):
    """ListParts → C{(parts, next_marker)}, parts as C{(number, etag, size)}."""
    root = parse(body)
    parts = [
        (int(text(item, "PartNumber")), text(item, "ETag"), int(text(item, "Size", "0")))
        for item in root.findall("Part")
    ]
    marker = None
    if text(root, "IsTruncated", "false").lower() == "true":
        marker = text(root, "NextPartNumberMarker")
    return parts, marker


def complete_body(parts):
    """The CompleteMultipartUpload body for C{(number, etag)} pairs."""
    items = "".join(
        "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>".format(number, escape(etag))
        for number, etag in parts
    )
    return ("<CompleteMultipartUpload>{}</CompleteMultipartUpload>".format(items)).encode()


def delete_body(keys):
    """The DeleteObjects body (quiet: only failures are reported)."""
    items = "".join("<Object><Key>{}</Key></Object>".format(escape(key)) for key in keys)
    return "<Delete><Quiet>true</Quiet>{}</Delete>".format(items).encode()


def delete_errors(body):
    """C{(key, code, message)} for each key DeleteObjects could not delete."""
    root = parse(body)
    return [
        (text(item, "Key"), text(item, "Code"), text(item, "Message"))
        for item in root.findall("Error")
    ]
