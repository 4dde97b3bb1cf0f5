"""The errors every storage driver raises (see ``interfaces``)."""


class StorageError(Exception):
    """A storage operation failed for a reason other than those below."""

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


class PathNotFound(StorageError):
    """Nothing exists at the path."""

    def __init__(self, path):
        super().__init__("path not found: {}".format(path), path)


class InvalidPath(StorageError):
    """The path does not match ``^(/[A-Za-z0-9._-]+)+$``."""

    def __init__(self, path):
        super().__init__("invalid path: {!r}".format(path), path)


class InvalidOffset(StorageError):
    """A read or append asked for an offset the file does not have."""

    def __init__(self, path, offset):
        super().__init__("invalid offset {} for {}".format(offset, path), path)
        self.offset = offset


class Unsupported(StorageError):
    """The driver cannot do this operation."""
