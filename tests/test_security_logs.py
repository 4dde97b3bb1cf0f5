"""
A whole authenticated run of the real daemon, then its log is searched for
secrets: no password (plain or base64, alone or as ``user:password``), no
Authorization header value. The generated ``docker`` password is the one
exception, by design: it appears exactly once, in its WARN line.
"""

import base64
import os
import stat

from twisted.trial import unittest

from tests.support.daemon import minimal_config, start_daemon
from tests.test_auth_daemon import basic, hashed, push_small_image

ALICE_PASSWORD = "Correct-Horse-Battery-7781"
WRONG_PASSWORD = "Wrong-Guess-Staple-5519"
LONG_PASSWORD = "L" * 60 + "ong-Password-Over-72-Bytes-0042"


def _forms(user, password):
    """Every way a credential could leak into a log."""
    pair = "{}:{}".format(user, password).encode()
    return [
        password,
        base64.b64encode(password.encode()).decode(),
        base64.b64encode(pair).decode(),
        base64.urlsafe_b64encode(pair).decode(),
    ]


class NoSecretsInLogTests(unittest.TestCase):
    def run_and_collect(self, formatter):
        directory = os.path.abspath(self.mktemp())
        path = os.path.join(directory, "auth", "htpasswd")
        config = minimal_config(
            log={"level": "debug", "formatter": formatter},
            auth={"htpasswd": {"realm": "secret test", "path": path}},
        )
        daemon = start_daemon(self, config)
        match = daemon.wait_for_log(r"created it with user \W*docker\W* and password (\S+)")
        docker_password = match.group(1)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode), 0o700)
        with open(path, "ab") as handle:
            handle.write(b"\nalice:" + hashed(ALICE_PASSWORD) + b"\n")

        def get(route, authorization=None):
            headers = {"Authorization": authorization} if authorization else {}
            return daemon.request("GET", route, headers).status

        self.assertEqual(get("/v2/"), 401)
        self.assertEqual(get("/v2/", basic("docker", docker_password)), 200)
        self.assertEqual(get("/v2/", basic("alice", ALICE_PASSWORD)), 200)
        self.assertEqual(get("/v2/", basic("alice", WRONG_PASSWORD)), 401)
        self.assertEqual(get("/v2/", basic("nobody", WRONG_PASSWORD)), 401)
        self.assertEqual(get("/v2/", basic("alice", LONG_PASSWORD)), 401)
        self.assertEqual(get("/v2/", "Basic " + base64.b64encode(WRONG_PASSWORD.encode()).decode()), 401)
        push_small_image(daemon, basic("alice", ALICE_PASSWORD))
        self.assertEqual(get("/v2/demo/app/manifests/v1", basic("docker", docker_password)), 200)
        self.assertEqual(get("/v2/demo/app/manifests/v1", basic("alice", WRONG_PASSWORD)), 401)
        self.assertEqual(get("/v2/_catalog", basic("alice", ALICE_PASSWORD)), 200)
        daemon.stop()
        return daemon.log_text(), docker_password

    def check(self, log, docker_password):
        self.assertGreater(len(log.splitlines()), 10, log)  # the run was really logged
        for user, password in (("alice", ALICE_PASSWORD), ("alice", WRONG_PASSWORD),
                               ("nobody", WRONG_PASSWORD), ("alice", LONG_PASSWORD)):
            for form in _forms(user, password):
                self.assertNotIn(form, log)
        for form in _forms("docker", docker_password)[1:]:
            self.assertNotIn(form, log)
        self.assertEqual(log.count(docker_password), 1)
        line = [l for l in log.splitlines() if docker_password in l][0]
        self.assertRegex(line.lower(), r"warn")
        self.assertNotRegex(log, r"(?i)authorization\s*[:=]")
        self.assertNotRegex(log, r"(?i)basic\s+[A-Za-z0-9+/]{8,}")
        self.assertNotIn("$2b$", log)  # nor a password hash

    def test_text_log(self):
        self.check(*self.run_and_collect("text"))

    def test_json_log(self):
        self.check(*self.run_and_collect("json"))
