"""Filesystem paths for tests."""

import os
import shutil
import tempfile


def socket_path(testcase, name="registry.sock"):
    """
    A unix socket path in a fresh directory under the system temp folder,
    removed after the test. Trial's own temp directories can be deeper than
    the 107 bytes an AF_UNIX address may hold.
    """
    folder = tempfile.mkdtemp(prefix="spectroreg-")
    testcase.addCleanup(shutil.rmtree, folder, True)
    return folder + "/" + name


def snapshot(root):
    """{relative path: bytes} of every file under C{root}."""
    found = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, root)] = f.read()
    return found
