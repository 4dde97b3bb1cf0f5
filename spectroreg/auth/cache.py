"""
A bounded cache of credentials that bcrypt has already verified.

bcrypt costs milliseconds of CPU by design; running it on every request (as
Distribution does) makes an authenticated registry CPU-bound. Here a
successful check is remembered under HMAC-SHA256(key, user ":" password),
with a random key made per process and never stored: the cache holds
nothing from which a password could be recovered or tested offline. Each
entry remembers the hash line it was verified against, so a changed
password (or a reloaded file) no longer matches it.
"""

import hashlib
import hmac
import os

from spectroreg.bounded import LRU


class VerifiedCredentials:
    def __init__(self, max_entries=1024):
        self._key = os.urandom(32)
        # fingerprint -> (user, the hash it was verified against)
        self._entries = LRU(max_entries)

    @property
    def max_entries(self):
        return self._entries.capacity

    def __len__(self):
        return len(self._entries)

    def fingerprint(self, user, password):
        """The cache key for C{user} (str) and C{password} (bytes)."""
        return hmac.new(
            self._key, user.encode("utf-8") + b":" + password, hashlib.sha256
        ).digest()

    def lookup(self, fingerprint, user, current_hash):
        """
        True when this fingerprint was verified for C{user} against
        C{current_hash} (the user's hash in the file now).
        """
        entry = self._entries.get(fingerprint)
        if entry is None:
            return False
        if entry != (user, current_hash):
            self._entries.pop(fingerprint)
            return False
        return True

    def remember(self, fingerprint, user, current_hash):
        self._entries.put(fingerprint, (user, current_hash))

    def clear(self):
        self._entries.clear()
