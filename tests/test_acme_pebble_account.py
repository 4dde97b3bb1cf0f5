"""
Let's Encrypt against pebble: the CA forgets our account between issuance
and renewal (a pebble restart loses every account), as a CA whose state was
reset does. Split from tests/test_acme_pebble.py to keep each module short.
"""

import datetime
import time

from twisted.internet import reactor, task, threads
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from tests.support.asynctest import async_test
from tests.test_acme_pebble import PebbleWorld, https_get


class AccountResetTests(PebbleWorld):
    @async_test
    async def test_account_lost_before_renewal(self):
        """
        30-second certificates and a first retry delay of 15 s: waiting for
        the retry after ``accountDoesNotExist`` would serve an expired
        certificate. The renewal registers again at once instead, in the
        same attempt (no failure is logged), and what is served never
        expires.
        """
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        await self.start_world(validity=30)
        setup, _ = await self.start_registry(self.settings(hosts=("localhost",)), retry_initial=15.0)
        await self.wait_valid(setup)
        first = setup.source.bundle_for("localhost")
        account = setup.issuer.client.account_url
        await self.pebble.restart()

        expired = []
        deadline = time.monotonic() + 45
        while len(setup.issuer.issued) < 2 and time.monotonic() < deadline:
            served = setup.source.bundle_for("localhost")
            now = datetime.datetime.now(datetime.timezone.utc)
            if served.not_after <= now:
                expired.append(now.isoformat())
            await task.deferLater(reactor, 0.2, lambda: None)

        self.assertEqual(len(setup.issuer.issued), 2, "no renewal within 45 s")
        self.assertEqual(expired, [])
        renewed = setup.source.bundle_for("localhost")
        self.assertGreater(renewed.not_after, first.not_after)
        self.assertNotEqual(setup.issuer.client.account_url, account)
        ours = [e for e in events if e.get("log_namespace", "").startswith("spectroreg")]
        self.assertTrue(any("registering again" in formatEvent(e) for e in ours))
        # The renewal did not fail and wait for a retry: it succeeded at once.
        failures = [formatEvent(e) for e in ours if e.get("log_level") in (LogLevel.error, LogLevel.critical)]
        self.assertEqual(failures, [])
        root = await self.pebble.root_pem()
        status, _, _ = await threads.deferToThread(https_get, self.tls_port, "localhost", root)
        self.assertEqual(status, b"HTTP/1.1 200 OK")
