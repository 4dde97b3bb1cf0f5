"""The benchmark's own modules (``bench/``), for tests that use them."""

import importlib.util
import os
import sys

BENCH_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "bench")


def bench_module(name):
    """Module C{name} of ``bench/`` (``procstat``, ``compare``), loaded once."""
    qualified = "spectroreg_bench_" + name
    module = sys.modules.get(qualified)
    if module is None:
        spec = importlib.util.spec_from_file_location(qualified, os.path.join(BENCH_DIR, name + ".py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[qualified] = module
    return module
