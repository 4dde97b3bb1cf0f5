"""Interfaces shared across the daemon's packages."""

from zope.interface import Interface


class IReloadable(Interface):
    """Something that re-reads its material from disk on SIGHUP (TLS files, htpasswd)."""

    def reload():
        """
        Re-read the material; on failure keep the current one.

        @return: a Deferred (or a plain value) firing when done.
        """
