"""
Where ACME keys and certificates are kept between runs.

L{DirectoryStore} uses the layout of Go autocert's C{DirCache}, which is
what Distribution v3 writes into ``letsencrypt.cachefile``: the account key in
``acme_account+key`` and one file per host, named after the host, holding the
private key PEM followed by the certificate chain PEM. A user switching
between Distribution and spectroreg keeps account and certificates.
L{MemoryStore} keeps the same entries in a dict.
"""

import os
import tempfile

from twisted.internet import defer, threads
from zope.interface import implementer

from .interfaces import ICertificateStore

ACCOUNT_KEY = "acme_account+key"
# Older autocert releases wrote the account key under this name.
LEGACY_ACCOUNT_KEY = "acme_account.key"


def check_entry_name(name: str) -> str:
    """The name of a cache entry, refused when it could escape the directory."""
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\x00" in name:
        raise ValueError("not a usable cache entry name: {!r}".format(name))
    return name


@implementer(ICertificateStore)
class MemoryStore:
    """Entries in a dict: for tests, and for a registry with no cache directory."""

    def __init__(self, entries=None):
        self.entries = dict(entries or {})

    def load_account_key(self):
        return defer.succeed(self.entries.get(ACCOUNT_KEY))

    def save_account_key(self, pem):
        self.entries[ACCOUNT_KEY] = pem
        return defer.succeed(None)

    def load(self, host):
        return defer.succeed(self.entries.get(check_entry_name(host)))

    def save(self, host, pem):
        self.entries[check_entry_name(host)] = pem
        return defer.succeed(None)


@implementer(ICertificateStore)
class DirectoryStore:
    """
    Go autocert's directory cache: directory 0700, files 0600, every write
    atomic (a temporary file in the same directory renamed over the entry),
    so a crash never leaves half a key behind. File I/O runs in the
    reactor's thread pool.
    """

    def __init__(self, path, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self.path = os.path.abspath(path)
        self._reactor = reactor

    def _in_thread(self, function, *args):
        return threads.deferToThreadPool(
            self._reactor, self._reactor.getThreadPool(), function, *args
        )

    def _ensure_directory(self):
        if not os.path.isdir(self.path):
            os.makedirs(self.path, mode=0o700, exist_ok=True)
            os.chmod(self.path, 0o700)
        elif os.stat(self.path).st_mode & 0o077:
            # It holds private keys: nobody but the owner may look inside.
            os.chmod(self.path, 0o700)

    def _read(self, name):
        try:
            with open(os.path.join(self.path, check_entry_name(name)), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def _write(self, name, data):
        self._ensure_directory()
        target = os.path.join(self.path, check_entry_name(name))
        fd, temporary = tempfile.mkstemp(prefix="." + name + ".", dir=self.path)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, target)
        except BaseException:
            try:
                os.unlink(temporary)
            except FileNotFoundError:
                pass
            raise

    def _read_account_key(self):
        data = self._read(ACCOUNT_KEY)
        if data is None:
            data = self._read(LEGACY_ACCOUNT_KEY)
        return data

    def load_account_key(self):
        return self._in_thread(self._read_account_key)

    def save_account_key(self, pem):
        return self._in_thread(self._write, ACCOUNT_KEY, pem)

    def load(self, host):
        return self._in_thread(self._read, host)

    def save(self, host, pem):
        return self._in_thread(self._write, host, pem)
