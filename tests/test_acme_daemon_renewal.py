"""
Renewal through the real daemon against pebble, while a client keeps pulling
(split from tests/test_acme_daemon.py to keep each module short).
"""

import http.client
import ssl
import time

from twisted.internet import reactor, task, threads

from tests.support.asynctest import async_test
from tests.support.images import Image
from tests.test_acme_daemon import DaemonWorld, pull


class DaemonRenewalTests(DaemonWorld):
    @async_test
    async def test_renewal_while_pulling(self):
        """
        20-second certificates, renewed at 2/3 of their lifetime while a
        client keeps pulling (new connections, plus one connection kept
        open across the renewal): no pull fails, and the certificate changes.
        """
        await self.start_world(validity=20)
        daemon = self.make_daemon(self.daemon_config())
        await daemon.start_async(timeout=20)
        root = await self.pebble.root_pem()
        await self.wait_for_certificate(root, daemon=daemon)
        image = Image("renewal", layer_sizes=(16 * 1024, 64 * 1024))
        await self.push(root, image)
        context = ssl.create_default_context(cadata=root.decode("ascii"))
        kept = http.client.HTTPSConnection("localhost", self.tls_port, context=context, timeout=10)
        self.addCleanup(kept.close)
        first = await threads.deferToThread(pull, self.tls_port, root, image, connection=kept)
        serials, failures, pulls = {first}, [], 0
        deadline = time.monotonic() + 45
        while len(serials) < 2 and time.monotonic() < deadline:
            try:
                serials.add(await threads.deferToThread(pull, self.tls_port, root, image))
                pulls += 1
            except Exception as e:
                failures.append(repr(e))
            await task.deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(failures, [])
        self.assertEqual(len(serials), 2, "no renewal within 45 s; log:\n" + daemon.log_text())
        # the connection opened before the renewal still works after it
        self.assertEqual(await threads.deferToThread(pull, self.tls_port, root, image, connection=kept), first)
        self.assertEqual(self.pebble.orders(), 2)
        print("\n{} pulls during renewal, 0 failed".format(pulls))

