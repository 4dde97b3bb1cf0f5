"""
Measures of the source tree's shape, read from the source with C{ast}.

Each function takes a mapping C{{dotted module name: (path, source text)}}
(see L{read_tree}) and returns the offenders, each a short line naming the
file and line, so a failing test lists all of them. Run this module
(C{python -m tests.support.architecture}) to print every figure at once.
"""

import ast
import os
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
    return {dotted: (path, ast.parse(source, path)) for dotted, (path, source) in modules.items()}


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
    The node of the package graph a module belongs to: the package directory
    holding it (C{spectroreg.storage.s3} for C{spectroreg.storage.s3.driver});
    a module directly in the top package is a node of its own
    (C{spectroreg.service}), since the top package only names them all.
    """
    path = modules[dotted][0]
    is_package = path.endswith("__init__.py")
    parts = dotted.split(".")
    if not is_package:
        parts = parts[:-1]
    if len(parts) == 1:
        return dotted
    return ".".join(parts)


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
                        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in names:
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
    lines = []
    for title, items in sections:
        lines.append("{}: {}".format(title, len(items)))
        lines.extend("  " + item for item in items)
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(sys.argv[1] if len(sys.argv) > 1 else os.getcwd()))
