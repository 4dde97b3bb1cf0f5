"""
Tests that need an outside program (skopeo, docker-registry, pebble, moto).

On a developer's machine a missing program skips the test with the reason;
under CI (``CI`` set to a true value) it fails instead, so a CI run can never
pass by skipping the tests that prove the most.
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


def require_binary(name):
    """The absolute path of program C{name}, or skip/fail as L{missing} says."""
    path = shutil.which(name)
    if path is None:
        missing("{} is not installed".format(name))
    return path
