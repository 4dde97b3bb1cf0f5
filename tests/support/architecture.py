"""
Measures of the source tree's shape, read from the source with C{ast}.

Each function takes a mapping C{{dotted module name: (path, source text)}}
(see L{read_tree}) and returns the offenders, each a short line naming the
file and line, so a failing test lists all of them. Run this module
(C{python -m tests.support.architecture}) to print every figure at once.
"""

import ast
import functools
import os
import re
import sys

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60
MAX_REGISTRY_PUBLIC = 25

# Test helpers shipped in the package, used by the test suite only.
EXEMPT = frozenset(["spectroreg/storage/testing.py", "spectroreg/tls/acme/testing.py"])

# Attributes of Twisted's requests, channels, transports, producers,
# factories and log observers that are not part of its public API: they
# change between releases (and some are deleted while a request runs).
TWISTED_PRIVATE = frozenset([
    # twisted.web.http.HTTPChannel
    "_command", "_path", "_version", "_receivedHeaderCount", "_receivedHeaderSize",
    "_networkProducer", "_transferDecoder", "_handlingRequest", "_waitingForTransport",
    "_send100Continue", "_dataBuffer", "_requestProducer", "_requestProducerStreaming",
    "_savedTimeOut", "_maybeChooseTransferDecoder", "_respondToBadRequestAndDisconnect",
    "_header", "_abortingCall", "_optimisticEagerReadSize", "_channel",
    # twisted.web.http.Request / twisted.web.server.Request
    "_disconnected", "_finishedDeferreds", "_forceSSL", "_encoder", "_inFakeHead",
    "_log", "_producer",
    # twisted.protocols.basic.LineReceiver, the channel's base
    "dataBuffer", "_buffer", "_busyReceiving", "_tempDataBuffer", "_tempDataLen",
    # transports and producers (twisted.internet.abstract, tcp, protocols.tls)
    "producerPaused", "streamingProducer", "_tempDataBuffer", "_tempDataLen",
    "_tlsConnection", "_lostTLSConnection", "_appSendBuffer", "_aborted",
    # twisted.web.client.HTTPConnectionPool, twisted.internet.protocol factories
    "_factory", "_connections", "_timeouts",
    # twisted.logger file observers
    "_stream", "_encoding", "_formatEvent",
])

# Private hooks of Twisted's that our subclasses override, each for a reason
# no public API covers; overriding reads no private state, and any read of
# one of these names is still reported.
#  - HTTPChannel._respondToBadRequestAndDisconnect: Twisted's own 400 for a
#    malformed head (request line, headers, framing), called from many places
#    of its parser; ours adds the configured headers, Content-Length and
#    Connection: close, as Go's server answers.
ALLOWED_OVERRIDES = {
    ("RegistryChannel", "_respondToBadRequestAndDisconnect"),
}

_TWISTED_SUBCLASS_ROOTS = ("twisted.",)


def read_tree(root, package="spectroreg"):
    """{dotted module name: (path relative to C{root}, source)} of a package."""
    modules = {}
    for directory, folders, files in os.walk(os.path.join(root, package)):
        folders[:] = sorted(f for f in folders if not f.startswith(("_", ".")) or f == "__init__")
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.relpath(os.path.join(directory, name), root)
            dotted = path[:-3].replace(os.sep, ".")
            if dotted.endswith(".__init__"):
                dotted = dotted[: -len(".__init__")]
            with open(os.path.join(root, path), encoding="utf-8") as f:
                modules[dotted] = (path, f.read())
    return modules


def _parsed(modules):
    return {dotted: (path, _parse(source, path)) for dotted, (path, source) in modules.items()}


@functools.lru_cache(maxsize=None)
def _parse(source, path):
    # Each measure walks the same trees: parse each source once.
    return ast.parse(source, path)


def long_modules(modules, limit=MAX_MODULE_LINES):
    """Modules over C{limit} lines: C{"path: N lines"}."""
    found = []
    for dotted, (path, source) in sorted(modules.items()):
        if path in EXEMPT:
            continue
        count = len(source.splitlines())
        if count > limit:
            found.append("{}: {} lines".format(path, count))
    return found


def long_functions(modules, limit=MAX_FUNCTION_LINES):
    """
    Functions and methods (nested ones too) whose C{def} line to last line
    span more than C{limit} lines: C{"path:line Class.name N lines"}.
    """
    found = []
    for dotted, (path, tree) in sorted(_parsed(modules).items()):
        if path in EXEMPT:
            continue
        for qualified, node in _functions(tree):
            count = node.end_lineno - node.lineno + 1
            if count > limit:
                found.append("{}:{} {} {} lines".format(path, node.lineno, qualified, count))
    return found


def _functions(tree, prefix=""):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
            yield from _functions(node, prefix + node.name + ".")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, prefix + node.name + ".")
        else:
            yield from _functions(node, prefix)


# Import graph


def package_of(dotted, modules):
    """
    The node of the package graph a module belongs to: the top-level package
    holding it (C{spectroreg.storage} for C{spectroreg.storage.s3.driver}: a
    subpackage is part of its package, and the layers are the top-level
    packages); a module directly in the top package is a node of its own
    (C{spectroreg.service}), since the top package only names them all.
    """
    path = modules[dotted][0]
    is_package = path.endswith("__init__.py")
    parts = dotted.split(".")
    if not is_package:
        parts = parts[:-1]
    if len(parts) == 1:
        return dotted
    return ".".join(parts[:2])


def _imported(dotted, path, tree, modules):
    """(imported module, line) for every import in a module, lazy ones too."""
    is_package = path.endswith("__init__.py")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield _existing(alias.name, modules), node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = dotted.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                candidate = source + "." + alias.name
                if candidate in modules:
                    yield candidate, node.lineno
                else:
                    yield _existing(source, modules), node.lineno


def _existing(name, modules):
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(modules, top="spectroreg"):
    """{package: {imported package: [(path, line), ...]}} within C{top}."""
    graph = {}
    for dotted, (path, tree) in _parsed(modules).items():
        here = package_of(dotted, modules)
        graph.setdefault(here, {})
        for target, line in _imported(dotted, path, tree, modules):
            if target is None or not (target == top or target.startswith(top + ".")):
                continue
            there = package_of(target, modules)
            if there != here and there != top:
                graph[here].setdefault(there, []).append((path, line))
    return graph


def _strongly_connected(graph):
    """Tarjan's components of more than one node, each sorted."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = [0]

    def visit(node):
        # Iterative, so deep graphs cannot exhaust the recursion limit.
        work = [(node, iter(sorted(graph.get(node, ()))))]
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        while work:
            current, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[current] = min(low[current], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[current])
                if low[current] == index[current]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == current:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _cycle_through(graph, component):
    """One cycle inside a strongly connected component, from its first node."""
    members = set(component)
    start = component[0]
    # Breadth-first from start back to start, staying inside the component.
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph.get(node, ())):
            if child not in members:
                continue
            if child == start:
                return paths[node] + [start]
            if child not in paths:
                paths[child] = paths[node] + [child]
                queue.append(child)
    return component


def import_cycles(modules):
    """
    Package import cycles, one line each: the packages of a cycle and, for
    each link, the first import making it (C{"a -> b (path:line)"}).
    """
    graph = import_graph(modules)
    found = []
    for component in _strongly_connected(graph):
        cycle = _cycle_through(graph, component)
        links = []
        for here, there in zip(cycle, cycle[1:]):
            path, line = sorted(graph[here][there])[0]
            links.append("{} -> {} ({}:{})".format(here, there, path, line))
        found.append("cycle among {}: {}".format(", ".join(component), "; ".join(links)))
    return found


# Twisted's private attributes


class _Imports(ast.NodeVisitor):
    """Local names bound to Twisted by a module's imports."""

    def __init__(self):
        self.twisted_names = set()

    def visit_Import(self, node):
        for alias in node.names:
            if alias.name.startswith(_TWISTED_SUBCLASS_ROOTS):
                self.twisted_names.add((alias.asname or alias.name).split(".")[0])

    def visit_ImportFrom(self, node):
        if not node.level and (node.module or "").startswith(_TWISTED_SUBCLASS_ROOTS):
            for alias in node.names:
                self.twisted_names.add(alias.asname or alias.name)


def _root_name(expression):
    while isinstance(expression, ast.Attribute):
        expression = expression.value
    return expression.id if isinstance(expression, ast.Name) else None


def _twisted_classes(parsed):
    """Names of our classes that derive (maybe through ours) from Twisted's."""
    ours = {}
    for dotted, (path, tree) in parsed.items():
        imports = _Imports()
        imports.visit(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = [_root_name(b) for b in node.bases]
                direct = any(b in imports.twisted_names for b in bases if b)
                last = [b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", None)
                        for b in node.bases]
                ours.setdefault(node.name, [False, set()])
                ours[node.name][0] |= direct
                ours[node.name][1].update(n for n in last if n)
    changed = True
    while changed:
        changed = False
        for name, entry in ours.items():
            if not entry[0] and any(ours.get(b, [False])[0] for b in entry[1]):
                entry[0] = changed = True
    return {name for name, (twisted, _) in ours.items() if twisted}


def twisted_private_reads(modules, names=TWISTED_PRIVATE):
    """
    Uses of Twisted's private attributes (C{names}): C{x.name} or
    C{getattr/hasattr/setattr(x, "name")} on any object but C{self}, and on
    C{self} too inside a class deriving from a Twisted class (reading what
    the base class keeps) unless that class assigns the attribute itself; a
    method of such a class overriding one of them counts as well.
    C{"path:line receiver.name"}.
    """
    parsed = _parsed(modules)
    twisted_classes = _twisted_classes(parsed)
    found = []
    for dotted, (path, tree) in sorted(parsed.items()):
        for use in _private_uses(path, tree, names, twisted_classes):
            # x._a = f(x._a) is one use of x._a, not two.
            if use not in found:
                found.append(use)
    return found


def _private_uses(path, tree, names, twisted_classes):
    found = []

    def scan(node, subclass, own):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                inner = child.name in twisted_classes
                assigned = {
                    n.attr for n in ast.walk(child)
                    if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
                    and isinstance(n.value, ast.Name) and n.value.id == "self"
                }
                if inner:
                    for item in child.body:
                        if (isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in names
                                and (child.name, item.name) not in ALLOWED_OVERRIDES):
                            found.append("{}:{} {}.{} overrides a private method".format(
                                path, item.lineno, child.name, item.name))
                scan(child, inner, assigned)
                continue
            attribute = receiver = None
            if isinstance(child, ast.Attribute) and child.attr in names:
                attribute, receiver = child.attr, child.value
            elif (isinstance(child, ast.Call) and isinstance(child.func, ast.Name)
                  and child.func.id in ("getattr", "hasattr", "setattr") and len(child.args) >= 2
                  and isinstance(child.args[1], ast.Constant) and child.args[1].value in names):
                attribute, receiver = child.args[1].value, child.args[0]
            if attribute is not None:
                on_self = isinstance(receiver, ast.Name) and receiver.id == "self"
                if not on_self or (subclass and attribute not in own):
                    found.append("{}:{} {}.{}".format(path, child.lineno, ast.unparse(receiver), attribute))
            scan(child, subclass, own)

    scan(tree, False, set())
    return found


# The registry facade


def registry_public(modules, module="spectroreg.registry.registry", name="Registry"):
    """
    The public methods and properties of C{Registry}, its own and those of
    its bases defined in spectroreg: a sorted list of names.
    """
    parsed = _parsed(modules)
    classes = {}
    for dotted, (path, tree) in parsed.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                classes.setdefault(node.name, node)
    if module in parsed:
        for node in parsed[module][1].body:
            if isinstance(node, ast.ClassDef) and node.name == name:
                classes[name] = node
    public, seen, todo = set(), set(), [name]
    while todo:
        current = todo.pop()
        if current in seen or current not in classes:
            continue
        seen.add(current)
        node = classes[current]
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_"):
                public.add(item.name)
        todo.extend(b.id if isinstance(b, ast.Name) else b.attr for b in node.bases
                    if isinstance(b, (ast.Name, ast.Attribute)))
    return sorted(public)


# Names in the documentation

_CHAIN = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_CALL = re.compile(r"(?<![\w.])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\(")

# Twisted and standard-library names the documentation may use.
_OUTSIDE = {
    "Site": "twisted.web.server.Site",
    "HTTPChannel": "twisted.web.http.HTTPChannel",
    "Agent": "twisted.web.client.Agent",
    "os": "os",
}


class _Index:
    """What the source defines: modules, classes and their members, all names, string constants."""

    def __init__(self, modules):
        self.modules = {}
        self.classes = {}
        self.names = set()
        self.strings = set()
        self.paths = set()
        for dotted, (path, tree) in _parsed(modules).items():
            self.paths.add(path)
            folder = os.path.dirname(path)
            while folder:
                self.paths.add(folder)
                folder = os.path.dirname(folder)
            top = self.modules.setdefault(dotted, {"names": set(), "classes": []})
            self.names.add(dotted.rpartition(".")[2])
            for node in tree.body:
                top["names"].update(_bound(node))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    members = set()
                    for item in node.body:
                        members.update(_bound(item))
                    members.update(
                        n.attr for n in ast.walk(node)
                        if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)
                        and isinstance(n.value, ast.Name) and n.value.id == "self")
                    bases = [b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases]
                    self.classes.setdefault(node.name, []).append((members, bases))
                    top["classes"].append(node.name)
                    self.names.add(node.name)
                    self.names.update(members)
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self.names.add(node.name)
                elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                    self.strings.add(node.value)
            self.names.update(top["names"])

    def module(self, parts):
        """
        The modules the longest prefix of C{parts} may name (C{errors} is
        several): ([module, ...], parts left), or ([], parts).
        """
        for cut in range(len(parts), 0, -1):
            suffix = ".".join(parts[:cut])
            found = [m for m in self.modules if m == suffix or m.endswith("." + suffix)]
            if found:
                return sorted(found), parts[cut:]
        return [], parts

    def member(self, cls, name, seen=()):
        for members, bases in self.classes.get(cls, ()):
            if name in members:
                return True
            for base in bases:
                if base in _OUTSIDE and _outside_has(_OUTSIDE[base], [name]):
                    return True
                if base not in seen and base in self.classes and self.member(base, name, seen + (cls,)):
                    return True
        return False

    def resolves(self, chain):
        parts = chain.split(".")
        modules, rest = self.module(parts)
        if modules:
            return any(self._in_module(module, rest) for module in modules)
        if parts[0] in self.classes:
            return len(parts) == 1 or (len(parts) == 2 and self.member(parts[0], parts[1]))
        if parts[0] in _OUTSIDE:
            return _outside_has(_OUTSIDE[parts[0]], parts[1:])
        # A variable (driver.put_content, guard.claim): its last name must exist.
        return parts[-1] in self.names or parts[-1] in self.strings

    def _in_module(self, module, rest):
        if not rest:
            return True
        entry = self.modules[module]
        if rest[0] in entry["classes"]:
            return len(rest) == 1 or (len(rest) == 2 and self.member(rest[0], rest[1]))
        if rest[0] in entry["names"]:
            return len(rest) == 1
        # A method of one of the module's classes (events.blob_pushed).
        return len(rest) == 1 and any(self.member(c, rest[0]) for c in entry["classes"])


def _bound(node):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    return set()


def _outside_has(dotted, names):
    import importlib

    module, _, attribute = dotted.rpartition(".")
    try:
        imported = importlib.import_module(module or dotted)
    except ImportError:
        # Run by a Python without Twisted: nothing to check against (the
        # tests always have it).
        return True
    value = getattr(imported, attribute, None) if module else imported
    if value is None:
        return False
    for name in names:
        if not hasattr(value, name):
            return False
        value = getattr(value, name)
    return True


def stale_doc_names(text, modules):
    """
    Code names in C{text} (Markdown) that the source no longer has, one
    line each with the line of C{text}: the module, class, function, method or attribute names
    between backquotes (dotted ones, those with an underscore or two
    capitals, and every name called with parentheses), and file paths
    (C{x.py}, C{dir/}) under spectroreg/.
    """
    index = _Index(modules)
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for token in re.findall(r"`([^`]+)`", line):
            if re.fullmatch(r"[\w/.]+(\.py|/)", token) and not token.startswith(("tests/", "twisted/")):
                if not any(p == "spectroreg/" + token or p.endswith("/" + token) or
                           (p + "/").endswith("/" + token) for p in index.paths):
                    found.append("line {}: {}: no such file or folder in spectroreg/".format(number, token))
                continue
            chains = set(_CALL.findall(token))
            if _CHAIN.fullmatch(token) and ("." in token or "_" in token or sum(c.isupper() for c in token) > 1):
                chains.add(token)
            for chain in sorted(chains):
                if not index.resolves(chain):
                    found.append("line {}: {}: not in the source".format(number, chain))
    return list(dict.fromkeys(found))


def report(root):
    modules = read_tree(root)
    sections = [
        ("modules over {} lines".format(MAX_MODULE_LINES), long_modules(modules)),
        ("functions over {} lines".format(MAX_FUNCTION_LINES), long_functions(modules)),
        ("package import cycles", import_cycles(modules)),
        ("reads of Twisted's private attributes", twisted_private_reads(modules)),
        ("Registry's public methods and properties (at most {})".format(MAX_REGISTRY_PUBLIC),
         registry_public(modules)),
    ]
    doc = os.path.join(root, "docs", "architecture.md")
    if os.path.exists(doc):
        with open(doc, encoding="utf-8") as f:
            sections.append(("names in docs/architecture.md missing from the source",
                             stale_doc_names(f.read(), modules)))
    lines = []
    for title, items in sections:
        lines.append("{}: {}".format(title, len(items)))
        lines.extend("  " + item for item in items)
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(sys.argv[1] if len(sys.argv) > 1 else os.getcwd()))
