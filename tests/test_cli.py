"""The command line: --version everywhere, `config` with secrets masked, usage errors."""

import io
import os
import subprocess
import sys

import yaml
from twisted.trial import unittest

from spectroreg import __version__
from spectroreg.cli import main
from tests.support.daemon import REPO_ROOT


def run(args, env=None):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    environment["PYTHONPATH"] = REPO_ROOT
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "spectroreg"] + args, cwd=REPO_ROOT, env=environment,
        capture_output=True, text=True, timeout=60,
    )


class VersionTests(unittest.SynchronousTestCase):
    def capture(self, argv, prog):
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        with self.assertRaises(SystemExit) as raised:
            main(argv, prog=prog)
        self.assertEqual(raised.exception.code, 0)
        return out.getvalue()

    def test_version_everywhere(self):
        for prog in ("spectroreg", "registry"):
            for argv in (["--version"], ["serve", "--version"], ["config", "--version"],
                         ["garbage-collect", "--version"]):
                self.assertEqual(self.capture(argv, prog), "{} {}\n".format(prog, __version__))

    def test_module_version(self):
        result = run(["--version"])
        self.assertEqual((result.returncode, result.stdout), (0, "spectroreg " + __version__ + "\n"))

    def test_no_command_is_usage_error(self):
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        self.assertEqual(main([], prog="spectroreg"), 2)
        self.assertIn("serve", err.getvalue())


class ConfigCommandTests(unittest.SynchronousTestCase):
    def write(self, data):
        path = os.path.abspath(self.mktemp()) + ".yml"
        with open(path, "w") as f:
            yaml.safe_dump(data, f)
        return path

    def test_secrets_masked(self):
        path = self.write({
            "version": "0.1",
            "storage": {"s3": {"bucket": "b", "region": "r", "accesskey": "AKIDEXAMPLE",
                               "secretkey": "FILESECRETKEY"}},
            "http": {"addr": ":5000", "secret": "HTTPSECRET"},
        })
        result = run(["config", path], env={"REGISTRY_STORAGE_S3_SECRETKEY": "ENVSECRETKEY",
                                            "REGISTRY_HTTP_ADDR": "127.0.0.1:6000"})
        self.assertEqual(result.returncode, 0, result.stderr)
        for secret in ("FILESECRETKEY", "ENVSECRETKEY", "HTTPSECRET"):
            self.assertNotIn(secret, result.stdout)
        body = yaml.safe_load(result.stdout)
        self.assertEqual(body["http"]["addr"], "127.0.0.1:6000")
        self.assertIn("secretkey", body["storage"]["s3"])
        self.assertIn("secret", body["http"])

    def test_path_from_environment(self):
        path = self.write({"version": "0.1", "storage": "inmemory"})
        result = run(["config"], env={"REGISTRY_CONFIGURATION_PATH": path})
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("inmemory", yaml.safe_load(result.stdout)["storage"])

    def test_broken_config_one_line(self):
        path = self.write({"version": "0.1", "storage": "inmemory", "log": {"level": "loud"}})
        result = run(["config", path])
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stdout, "")
        lines = result.stderr.splitlines()
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertIn("log.level", lines[0])


class GarbageCollectCommandTests(unittest.SynchronousTestCase):
    """The command itself; what it collects is tests.test_gc_reference's."""

    def write(self, data):
        path = os.path.abspath(self.mktemp()) + ".yml"
        with open(path, "w") as f:
            yaml.safe_dump(data, f)
        return path

    def test_empty_registry(self):
        root = os.path.abspath(self.mktemp())
        path = self.write({"version": "0.1", "storage": {"filesystem": {"rootdirectory": root}}})
        result = run(["garbage-collect", "--dry-run", path])
        self.assertEqual((result.returncode, result.stderr), (0, ""))
        self.assertEqual(result.stdout, "\n0 blobs marked, 0 blobs and 0 manifests eligible for deletion\n")
        result = run(["garbage-collect", "-q", "-m", path])
        self.assertEqual((result.returncode, result.stdout, result.stderr), (0, "", ""))
        self.assertFalse(os.path.exists(root))

    def test_broken_config_one_line(self):
        path = self.write({"version": "0.1", "storage": "inmemory", "log": {"level": "loud"}})
        result = run(["garbage-collect", path])
        self.assertEqual((result.returncode, result.stdout), (1, ""))
        self.assertEqual(len(result.stderr.splitlines()), 1, result.stderr)
        self.assertIn("log.level", result.stderr)
