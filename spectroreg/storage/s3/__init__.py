"""
The ``s3`` storage driver: AWS S3 or any S3-compatible server.

``S3Driver.from_settings(s3_settings, reactor=None, redirect=True)`` is what
``spectroreg.storage.factory`` calls. Object keys are exactly Distribution's
(``<rootdirectory>/docker/registry/v2/...``), so a bucket moves between the
two servers.
"""

from spectroreg.storage.s3.driver import S3Driver
from spectroreg.storage.s3.errors import S3Error

__all__ = ["S3Driver", "S3Error"]
