"""The one error a broken configuration produces."""


class ConfigError(Exception):
    """
    The configuration cannot be used. ``str(error)`` is one line that names
    the cause: the key path and file line, the environment variable, or the
    file that could not be read.
    """
