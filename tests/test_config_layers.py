"""
The configuration package is a leaf of the daemon: it imports nothing of
spectroreg outside itself, so the packages that read settings (tls, storage,
service, ...) depend on it and never the other way round.
"""

import ast
import os

from twisted.trial import unittest

import spectroreg

PACKAGE_DIR = os.path.dirname(spectroreg.__file__)


def imported_modules(path, module):
    """Every module C{path} (the file of C{module}) imports, at any depth."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    package = module.rsplit(".", 1)[0] if not path.endswith("__init__.py") else module
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found.update(base + "." + alias.name for alias in node.names)
    return found


def modules_of(package):
    """C{(module name, file path)} of every module of C{package} (e.g. "config")."""
    top = os.path.join(PACKAGE_DIR, *package.split("."))
    for directory, _, files in os.walk(top):
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, PACKAGE_DIR)[: -len(".py")].split(os.sep)
            if relative[-1] == "__init__":
                relative = relative[:-1]
            yield "spectroreg." + ".".join(relative), path


def spectroreg_imports(package):
    """C{{module: imported spectroreg modules}} for the modules of C{package}."""
    result = {}
    for module, path in modules_of(package):
        result[module] = {
            name for name in imported_modules(path, module) if name.split(".")[0] == "spectroreg"
        }
    return result


class ConfigLayerTests(unittest.SynchronousTestCase):
    def test_config_imports_only_itself(self):
        """spectroreg.config never imports another spectroreg package (no config<->tls cycle)."""
        outside = {
            module: sorted(name for name in names if not name.startswith("spectroreg.config"))
            for module, names in spectroreg_imports("config").items()
        }
        self.assertEqual({module: names for module, names in outside.items() if names}, {})

    def test_leaf_modules(self):
        """ConfigError and the TLS name tables import nothing of spectroreg: any package may use them."""
        imports = spectroreg_imports("config")
        for leaf in ("spectroreg.config.errors", "spectroreg.config.tlsnames"):
            self.assertEqual(imports[leaf], set(), leaf)

    def test_tls_reads_its_tables_from_the_leaf(self):
        """spectroreg.tls imports configuration modules, and those import nothing of tls."""
        from spectroreg.tls import ciphers

        from spectroreg.config import tlsnames

        self.assertIs(ciphers.TLS12_SUITES, tlsnames.TLS12_SUITES)
        tls_imports = set().union(*spectroreg_imports("tls").values())
        self.assertIn("spectroreg.config.tlsnames", tls_imports)

    def test_checker_finds_imports(self):
        """The check itself sees absolute, relative and function-level imports."""
        imports = spectroreg_imports("tls")
        self.assertIn("spectroreg.config.errors", imports["spectroreg.tls.context"])
        acme = imports["spectroreg.tls.acme"]
        self.assertTrue(any(name.startswith("spectroreg.tls.acme.") for name in acme), acme)


def package_graph():
    """C{{package: packages it imports}} over spectroreg's packages and top-level modules."""
    names = set()
    for entry in os.listdir(PACKAGE_DIR):
        if entry.endswith(".py") and entry != "__init__.py":
            names.add(entry[:-3])
        elif os.path.isfile(os.path.join(PACKAGE_DIR, entry, "__init__.py")):
            names.add(entry)
    graph = {}
    for name in names:
        if os.path.isdir(os.path.join(PACKAGE_DIR, name)):
            imports = set().union(*spectroreg_imports(name).values())
        else:
            module = "spectroreg." + name
            imports = imported_modules(os.path.join(PACKAGE_DIR, name + ".py"), module)
        graph[name] = {
            part[1] for part in (found.split(".") for found in imports)
            if len(part) > 1 and part[0] == "spectroreg" and part[1] in names and part[1] != name
        }
    return graph


class PackageCycleTests(unittest.SynchronousTestCase):
    def test_no_cycle_through_config_tls_or_assembly(self):
        """Configuration, TLS, listeners and assembly sit in one direction: none reaches back to itself."""
        graph = package_graph()
        for start in ("config", "tls", "listeners", "service"):
            seen, todo = set(), list(graph[start])
            while todo:
                name = todo.pop()
                if name not in seen:
                    seen.add(name)
                    todo.extend(graph.get(name, ()))
            self.assertNotIn(start, seen, start)
