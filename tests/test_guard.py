"""Guards against tests that would pass without running."""

import ast
import pathlib

from twisted.trial import unittest

TESTS = pathlib.Path(__file__).parent


def _decorator_names(node):
    for decorator in node.decorator_list:
        if isinstance(decorator, ast.Name):
            yield decorator.id
        elif isinstance(decorator, ast.Attribute):
            yield decorator.attr
        elif isinstance(decorator, ast.Call):
            target = decorator.func
            yield getattr(target, "id", getattr(target, "attr", ""))


def unwrapped_async_tests(source, filename="<test>"):
    """Names of ``async def test_*`` functions in C{source} without @async_test."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.AsyncFunctionDef) and node.name.startswith("test"):
            if "async_test" not in set(_decorator_names(node)):
                found.append(node.name)
    return found


class AsyncTestGuardTests(unittest.SynchronousTestCase):
    def test_detector(self):
        """The detector flags a bare coroutine test and accepts a wrapped one."""
        source = (
            "class T:\n"
            "    async def test_bare(self): pass\n"
            "    @async_test\n"
            "    async def test_wrapped(self): pass\n"
            "    async def helper(self): pass\n"
        )
        self.assertEqual(unwrapped_async_tests(source), ["test_bare"])

    def test_every_async_test_is_wrapped(self):
        """No test module holds an ``async def test_*`` that trial 22.4 would skip silently."""
        offenders = []
        for path in sorted(TESTS.rglob("*.py")):
            for name in unwrapped_async_tests(path.read_text(), str(path)):
                offenders.append("{}: {}".format(path.relative_to(TESTS), name))
        self.assertEqual(offenders, [])

    def test_wrapper_runs_the_coroutine(self):
        """A wrapped coroutine test really runs and its failure is seen."""
        from tests.support.asynctest import async_test

        ran = []

        class Case(unittest.TestCase):
            @async_test
            async def test_it(self):
                ran.append(True)
                self.fail("seen")

        import unittest as pyunit

        result = pyunit.TestResult()
        Case("test_it").run(result)
        self.assertEqual(ran, [True])
        self.assertEqual(len(result.failures), 1)
