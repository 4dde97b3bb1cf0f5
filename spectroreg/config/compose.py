"""
A YAML document composed into PyYAML nodes from the parser's events, without
expanding aliases and without recursion.

PyYAML's own composer (the C one in particular) recurses once per nesting
level, so a document nested a hundred thousand levels deep overflows the C
stack and kills the process; and it hands aliases back as the anchored node
itself, so nothing later can tell where an alias was written. Here nesting is
bounded (L{MAX_DEPTH}) and every alias stays an L{Alias} that knows its line;
expanding aliases, with Go's bound on how far, is the caller's business
(L{spectroreg.config.tree}).
"""

import yaml
from yaml.composer import ComposerError

# A configuration nests a handful of levels; Go's YAML parser stops at 10000,
# libyaml 0.2.5 at 1000 (where built with the limit). Far below Python's
# recursion limit, so the recursive walk over the result is safe.
MAX_DEPTH = 100


class Alias:
    """An alias (``*name``) where it was written, and the node its anchor names."""

    __slots__ = ("anchor", "target", "start_mark")

    def __init__(self, anchor, target, start_mark):
        self.anchor = anchor
        self.target = target
        self.start_mark = start_mark


def _tag(loader, kind, event, value=None):
    tag = event.tag
    if tag is None or tag == "!":
        tag = loader.resolve(kind, value, event.implicit)
    return tag


def compose(loader, max_depth=MAX_DEPTH):
    """
    The root node of the single document C{loader} (a PyYAML loader) parses,
    or None for an empty stream. Mapping and sequence values may be
    L{Alias}es.

    @raise yaml.YAMLError: the text is not YAML, holds more than one document,
        uses an undefined alias, or nests deeper than C{max_depth}.
    """
    loader.get_event()  # StreamStartEvent
    if loader.check_event(yaml.StreamEndEvent):
        loader.get_event()
        return None
    document = loader.get_event()  # DocumentStartEvent
    anchors = {}
    root = None
    # Open collections: [node, key node waiting for its value (mappings)].
    stack = []
    while True:
        event = loader.get_event()
        if isinstance(event, yaml.DocumentEndEvent):
            break
        if isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            stack.pop()[0].end_mark = event.end_mark
            continue
        node = _node(loader, event, anchors)
        if not stack:
            root = node
        else:
            _attach(stack[-1], node)
        if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)):
            if len(stack) >= max_depth:
                raise ComposerError(
                    None, None, "nested deeper than {} levels".format(max_depth), event.start_mark
                )
            stack.append([node, None])
    _single_document(loader, document)
    return root


def _node(loader, event, anchors):
    """The node (or L{Alias}) C{event} starts, recorded under its anchor."""
    if isinstance(event, yaml.AliasEvent):
        if event.anchor not in anchors:
            raise ComposerError(
                None, None, "found undefined alias {!r}".format(event.anchor), event.start_mark
            )
        return Alias(event.anchor, anchors[event.anchor], event.start_mark)
    if isinstance(event, yaml.ScalarEvent):
        node = yaml.ScalarNode(
            _tag(loader, yaml.ScalarNode, event, event.value),
            event.value,
            event.start_mark,
            event.end_mark,
            style=event.style,
        )
    elif isinstance(event, yaml.SequenceStartEvent):
        node = yaml.SequenceNode(
            _tag(loader, yaml.SequenceNode, event), [], event.start_mark, None, flow_style=event.flow_style
        )
    else:  # MappingStartEvent
        node = yaml.MappingNode(
            _tag(loader, yaml.MappingNode, event), [], event.start_mark, None, flow_style=event.flow_style
        )
    if event.anchor is not None:
        anchors[event.anchor] = node
    return node


def _attach(parent, node):
    """Add C{node} to the open collection C{parent} ([node, pending key])."""
    if isinstance(parent[0], yaml.SequenceNode):
        parent[0].value.append(node)
    elif parent[1] is None:
        parent[1] = node
    else:
        parent[0].value.append((parent[1], node))
        parent[1] = None


def _single_document(loader, document):
    if not loader.check_event(yaml.StreamEndEvent):
        event = loader.get_event()
        raise ComposerError(
            "expected a single document in the stream",
            document.start_mark,
            "but found another document",
            event.start_mark,
        )
