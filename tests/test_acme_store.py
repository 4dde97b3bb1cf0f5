"""The certificate stores: one contract for both, and Go autocert's on-disk layout."""

import datetime
import os
import stat

from twisted.internet import reactor
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from spectroreg.tls.acme import certs
from spectroreg.tls.acme.interfaces import ICertificateStore
from spectroreg.tls.acme.store import ACCOUNT_KEY, DirectoryStore, MemoryStore
from tests.support.asynctest import async_test


def entry(host="registry.example.com"):
    now = datetime.datetime.now(certs.UTC)
    return certs.fallback_bundle(host, now).to_pem()


class StoreTestsMixin:
    """The contract every L{ICertificateStore} keeps."""

    def make_store(self):
        raise NotImplementedError

    def test_interface(self):
        self.assertTrue(verifyObject(ICertificateStore, self.make_store()))

    @async_test
    async def test_empty(self):
        store = self.make_store()
        self.assertIsNone(await store.load_account_key())
        self.assertIsNone(await store.load("registry.example.com"))

    @async_test
    async def test_round_trip(self):
        store = self.make_store()
        key = certs.key_to_pem(certs.generate_key())
        data = entry()
        await store.save_account_key(key)
        await store.save("registry.example.com", data)
        self.assertEqual(await store.load_account_key(), key)
        self.assertEqual(await store.load("registry.example.com"), data)
        self.assertIsNone(await store.load("other.example.com"))

    @async_test
    async def test_replace(self):
        store = self.make_store()
        await store.save("registry.example.com", b"old")
        await store.save("registry.example.com", b"new")
        self.assertEqual(await store.load("registry.example.com"), b"new")

    @async_test
    async def test_names_that_escape_refused(self):
        store = self.make_store()
        for name in ("../x", "a/b", ".hidden", "", "a\\b"):
            with self.assertRaises(ValueError):
                await store.save(name, b"x")


class MemoryStoreTests(StoreTestsMixin, unittest.TestCase):
    def make_store(self):
        return MemoryStore()


class DirectoryStoreTests(StoreTestsMixin, unittest.TestCase):
    def make_store(self):
        self.path = os.path.join(self.mktemp(), "letsencrypt")
        return DirectoryStore(self.path, reactor)

    def mode(self, path):
        return stat.S_IMODE(os.stat(path).st_mode)

    @async_test
    async def test_autocert_layout_and_permissions(self):
        """
        ``acme_account+key`` and one file named after each host, key PEM
        first then the chain; directory 0700, files 0600, no temporary files
        left behind.
        """
        store = self.make_store()
        await store.save_account_key(certs.key_to_pem(certs.generate_key()))
        await store.save("registry.example.com", entry())
        self.assertEqual(sorted(os.listdir(self.path)), [ACCOUNT_KEY, "registry.example.com"])
        self.assertEqual(ACCOUNT_KEY, "acme_account+key")
        self.assertEqual(self.mode(self.path), 0o700)
        for name in os.listdir(self.path):
            self.assertEqual(self.mode(os.path.join(self.path, name)), 0o600, name)
        with open(os.path.join(self.path, "registry.example.com"), "rb") as f:
            data = f.read()
        kinds = [kind for kind, _ in certs.split_pem(data)]
        self.assertEqual(kinds, ["EC PRIVATE KEY", "CERTIFICATE"])
        with open(os.path.join(self.path, ACCOUNT_KEY), "rb") as f:
            self.assertTrue(f.read().startswith(b"-----BEGIN EC PRIVATE KEY-----"))

    @async_test
    async def test_loose_directory_is_tightened(self):
        store = self.make_store()
        os.makedirs(self.path, mode=0o755)
        os.chmod(self.path, 0o755)
        await store.save("registry.example.com", b"x")
        self.assertEqual(self.mode(self.path), 0o700)

    @async_test
    async def test_legacy_account_key_name(self):
        """Older autocert releases wrote ``acme_account.key``: it is read too."""
        store = self.make_store()
        os.makedirs(self.path, mode=0o700)
        with open(os.path.join(self.path, "acme_account.key"), "wb") as f:
            f.write(b"legacy")
        self.assertEqual(await store.load_account_key(), b"legacy")

    @async_test
    async def test_failed_write_keeps_old_entry(self):
        """A write that fails half way leaves the previous entry intact."""
        store = self.make_store()
        await store.save("registry.example.com", b"old")

        class Boom(Exception):
            pass

        original = os.fsync

        def failing(fd):
            raise Boom()

        self.patch(os, "fsync", failing)
        with self.assertRaises(Boom):
            await store.save("registry.example.com", b"new")
        self.patch(os, "fsync", original)
        self.assertEqual(await store.load("registry.example.com"), b"old")
        self.assertEqual(os.listdir(self.path), ["registry.example.com"])

    @async_test
    async def test_reads_an_entry_written_by_distribution(self):
        """
        An entry as Go's autocert writes it (EC key, then leaf and chain)
        parses into a usable bundle.
        """
        store = self.make_store()
        now = datetime.datetime.now(certs.UTC)
        bundle = certs.fallback_bundle("registry.example.com", now)
        await store.save("registry.example.com", bundle.to_pem())
        loaded = certs.Bundle.from_pem(await store.load("registry.example.com"))
        self.assertTrue(loaded.usable_for("registry.example.com", now))
        self.assertFalse(loaded.usable_for("other.example.com", now))
        self.assertFalse(loaded.usable_for("registry.example.com", now + datetime.timedelta(days=8)))
