"""
Running Debian's ``skopeo`` against test registries on 127.0.0.1.

Every run is isolated from the user's configuration: HOME and the XDG
directories point into a private directory, the auth file and the trust
policy are our own files there, and no registries.conf from the machine
is consulted. Registries are plain HTTP, so TLS verification is off on
both sides. A failing run raises L{SkopeoError} carrying the command line
and skopeo's stderr.
"""

import base64
import json
import os
import subprocess
import tempfile

from tests.support.requirements import require_binary

DEFAULT_TIMEOUT = 120.0


class SkopeoError(AssertionError):
    """skopeo exited non-zero or timed out; the message has its stderr."""

    def __init__(self, argv, returncode, stdout, stderr):
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        AssertionError.__init__(
            self,
            "skopeo failed (exit {}): {}\n--- stderr ---\n{}\n--- stdout ---\n{}".format(
                returncode, " ".join(argv), stderr.strip(), stdout.strip()[:2000]),
        )


class Skopeo(object):
    """skopeo with a private home, auth file and policy under C{workdir}."""

    def __init__(self, workdir=None, timeout=DEFAULT_TIMEOUT):
        self.binary = require_binary("skopeo")
        self.workdir = workdir or tempfile.mkdtemp(prefix="skopeo-")
        self.timeout = timeout
        self.home = os.path.join(self.workdir, "home")
        self.tmpdir = os.path.join(self.workdir, "tmp")
        self.registries_d = os.path.join(self.workdir, "registries.d")
        for sub in ("home", "tmp", "config", "runtime", "cache", "data", "registries.d"):
            os.makedirs(os.path.join(self.workdir, sub), mode=0o700, exist_ok=True)
        self.authfile = os.path.join(self.workdir, "auth.json")
        self.set_credentials({})
        self.policy = os.path.join(self.workdir, "policy.json")
        with open(self.policy, "w") as f:
            json.dump({"default": [{"type": "insecureAcceptAnything"}]}, f)
        self.registries_conf = os.path.join(self.workdir, "registries.conf")
        with open(self.registries_conf, "w") as f:
            f.write("unqualified-search-registries = []\n")

    def set_credentials(self, credentials):
        """C{credentials}: {"127.0.0.1:PORT": (user, password)} written to the auth file."""
        auths = {}
        for registry, (user, password) in credentials.items():
            token = base64.b64encode("{}:{}".format(user, password).encode()).decode()
            auths[registry] = {"auth": token}
        with open(self.authfile, "w") as f:
            json.dump({"auths": auths}, f)
        os.chmod(self.authfile, 0o600)

    def environment(self):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.home,
            "XDG_CONFIG_HOME": os.path.join(self.workdir, "config"),
            "XDG_RUNTIME_DIR": os.path.join(self.workdir, "runtime"),
            "XDG_CACHE_HOME": os.path.join(self.workdir, "cache"),
            "XDG_DATA_HOME": os.path.join(self.workdir, "data"),
            "TMPDIR": self.tmpdir,
            "REGISTRY_AUTH_FILE": self.authfile,
            "CONTAINERS_REGISTRIES_CONF": self.registries_conf,
            "LANG": "C",
        }
        return env

    def run(self, *args, timeout=None):
        """Run ``skopeo <global options> ARGS``; return stdout (str) or raise L{SkopeoError}."""
        return self.run_bytes(*args, timeout=timeout).decode("utf-8", "replace")

    def run_bytes(self, *args, timeout=None):
        """Run ``skopeo <global options> ARGS``; return stdout (bytes) or raise L{SkopeoError}."""
        argv = [self.binary, "--policy", self.policy, "--registries.d", self.registries_d,
                "--tmpdir", self.tmpdir] + [str(a) for a in args]
        try:
            completed = subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=self.environment(), cwd=self.workdir, timeout=timeout or self.timeout,
            )
        except subprocess.TimeoutExpired as e:
            raise SkopeoError(argv, "timeout after {}s".format(timeout or self.timeout),
                              (e.stdout or b"").decode("utf-8", "replace"),
                              (e.stderr or b"").decode("utf-8", "replace"))
        if completed.returncode != 0:
            raise SkopeoError(argv, completed.returncode,
                              completed.stdout.decode("utf-8", "replace"),
                              completed.stderr.decode("utf-8", "replace"))
        return completed.stdout

    def copy(self, source, destination, all_images=False, preserve_digests=True,
             format=None, extra=()):
        """``skopeo copy SOURCE DESTINATION`` over plain HTTP.

        C{all_images}: copy every instance of an index (``--all``).
        C{format}: ``oci`` / ``v2s2`` to convert the manifest (then digests
        cannot be preserved, so C{preserve_digests} is ignored).
        """
        args = ["copy", "--src-tls-verify=false", "--dest-tls-verify=false",
                "--authfile", self.authfile, "--retry-times", "0"]
        if all_images:
            args.append("--all")
        if format is not None:
            args += ["--format", format]
        elif preserve_digests:
            args.append("--preserve-digests")
        args += list(extra) + [source, destination]
        return self.run(*args)

    def inspect_raw(self, reference):
        """The manifest bytes as the registry serves them (``inspect --raw``)."""
        return self.run_bytes("inspect", "--raw", "--tls-verify=false", "--retry-times", "0",
                              "--authfile", self.authfile, reference)

    def inspect(self, reference):
        """``skopeo inspect`` as parsed JSON (digest, layers, architecture…)."""
        return json.loads(self.run("inspect", "--tls-verify=false", "--retry-times", "0",
                                   "--authfile", self.authfile, reference))

    def list_tags(self, reference):
        """Tags of a repository (``docker://HOST/NAME``), as a list."""
        output = self.run("list-tags", "--tls-verify=false", "--retry-times", "0",
                          "--authfile", self.authfile, reference)
        return json.loads(output)["Tags"]

    def delete(self, reference):
        """``skopeo delete docker://HOST/NAME:TAG`` (deletes the manifest the tag names)."""
        return self.run("delete", "--tls-verify=false", "--retry-times", "0",
                        "--authfile", self.authfile, reference)
