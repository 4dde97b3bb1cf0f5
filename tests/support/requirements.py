"""
Tests that need an outside program (skopeo, docker-registry, pebble, moto).

On a developer's machine a missing program skips the test with the reason;
under CI (``CI`` set to a true value) it fails instead, so a CI run can never
pass by skipping the tests that prove the most.

``SPECTROREG_TEST_OFFLINE=1`` (set by the Debian package build, which must
not depend on outside programs or servers) skips every such test even where
the program is installed.
"""

import os
import shutil

from twisted.trial.unittest import SkipTest


def in_ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason):
    """Skip (developer machine) or fail (CI) because C{reason}."""
    if in_ci():
        raise AssertionError("required for CI: " + reason)
    raise SkipTest(reason)


def offline():
    return os.environ.get("SPECTROREG_TEST_OFFLINE", "").lower() in ("1", "true", "yes")


def require_external(description):
    """Skip when outside programs and servers are ruled out (package builds)."""
    if offline():
        raise SkipTest("SPECTROREG_TEST_OFFLINE is set: needs " + description)


def require_binary(name):
    """The absolute path of program C{name}, or skip/fail as L{missing} says."""
    require_external(name)
    path = shutil.which(name)
    if path is None:
        missing("{} is not installed".format(name))
    return path
