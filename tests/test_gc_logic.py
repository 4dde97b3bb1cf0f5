"""
Garbage collection's pure part (spectroreg.registry.gc): what a manifest
references, what a mark reaches, what a sweep removes. Tables, no I/O.
"""

import hashlib
import json

from twisted.trial import unittest

from spectroreg.registry import gc
from spectroreg.registry.digests import parse_digest


def d(name):
    return parse_digest("sha256:" + hashlib.sha256(name.encode()).hexdigest())


def desc(name, **extra):
    value = {"mediaType": "x", "digest": str(d(name)), "size": 1}
    value.update(extra)
    return value


def body(document):
    return json.dumps(document).encode()


class ReferencesTests(unittest.SynchronousTestCase):
    def test_image(self):
        refs = gc.references_of(body({"schemaVersion": 2, "config": desc("c"),
                                      "layers": [desc("l1"), desc("l2", urls=["http://x"])]}))
        self.assertEqual(refs, gc.References([d("c"), d("l1"), d("l2")]))

    def test_index_with_subject(self):
        refs = gc.references_of(body({"schemaVersion": 2, "manifests": [desc("m1"), desc("m2")],
                                      "subject": desc("s")}))
        self.assertEqual(refs, gc.References([], [d("m1"), d("m2")], d("s")))

    def test_schema1(self):
        refs = gc.references_of(body({"schemaVersion": 1, "fsLayers": [{"blobSum": str(d("a"))}]}))
        self.assertEqual(refs.blobs, (d("a"),))

    def test_unreadable(self):
        for raw in (b"\xff", b"[]", b"{", body({"config": {"digest": "nope"}, "layers": "x"})):
            self.assertEqual(gc.references_of(raw), gc.NOTHING)


def repo(name="r", revisions=(), tags=None, manifests=None, layers=()):
    return gc.RepositoryState(
        name, [d(r) for r in revisions], {t: d(m) for t, m in (tags or {}).items()},
        {d(m): refs for m, refs in (manifests or {}).items()}, [d(layer) for layer in layers])


def refs(blobs=(), children=(), subject=None):
    return gc.References([d(b) for b in blobs], [d(c) for c in children], d(subject) if subject else None)


class MarkTests(unittest.SynchronousTestCase):
    def names(self, digests):
        table = {d(n): n for n in "A B C I X Y R R2 S a b c x y shared own other".split()}
        return sorted(table[digest] for digest in digests)

    def test_every_revision_is_a_root(self):
        r = repo(revisions=["A", "B"], tags={"t": "A"},
                 manifests={"A": refs(["a", "shared"]), "B": refs(["b", "shared"])}, layers=["a", "b", "own"])
        marking = gc.mark([r])
        self.assertEqual(self.names(marking.marked), ["A", "B", "a", "b", "shared"])
        self.assertEqual(marking.untagged, {})
        self.assertEqual(self.names(gc.eligible_blobs(marking, [d("a"), d("own"), d("other")])), ["other", "own"])
        self.assertEqual(gc.stale_links(marking, [r]), [("r", d("own"))])

    def test_delete_untagged_keeps_tagged_and_what_they_reach(self):
        r = repo(revisions=["A", "B", "I", "X", "Y", "R", "R2", "S"], tags={"t": "A", "i": "I"},
                 manifests={"A": refs(["a", "shared"]), "B": refs(["b", "shared"]),
                            "I": refs(children=["X"]), "X": refs(["x"]), "Y": refs(["y"]),
                            "R": refs(["c"], subject="A"), "R2": refs(subject="R"), "S": refs(subject="B")})
        marking = gc.mark([r], delete_untagged=True)
        self.assertEqual(self.names(marking.kept["r"]), ["A", "I", "R", "R2", "X"])
        self.assertEqual(self.names(marking.untagged["r"]), ["B", "S", "Y"])
        self.assertEqual(self.names(marking.marked), ["A", "I", "R", "R2", "X", "a", "c", "shared", "x"])
        spared = gc.mark([r], True, {"r": {d("Y")}})
        self.assertEqual(self.names(spared.untagged["r"]), ["B", "S"])
        self.assertIn(d("y"), spared.marked)

    def test_marks_are_global_revisions_per_repository(self):
        one = repo("one", revisions=["A"], manifests={"A": refs(["shared"])})
        two = repo("two", revisions=["B"], tags={}, manifests={"B": refs(["shared", "b"])}, layers=["shared", "b"])
        marking = gc.mark([one, two], delete_untagged=True)
        self.assertEqual(self.names(marking.marked), [])
        marking = gc.mark([one, two])
        self.assertEqual(self.names(marking.marked), ["A", "B", "b", "shared"])
        # A child named by an index of another repository keeps nothing here.
        three = repo("three", revisions=["I"], tags={"t": "I"}, manifests={"I": refs(children=["B"])})
        marking = gc.mark([two, three], delete_untagged=True)
        self.assertEqual(self.names(marking.untagged["two"]), ["B"])
        self.assertEqual(self.names(marking.marked), ["B", "I"])

    def test_a_revision_without_a_body_references_nothing(self):
        r = repo(revisions=["A"], tags={"t": "A"})
        self.assertEqual(self.names(gc.mark([r]).marked), ["A"])

    def test_age(self):
        self.assertTrue(gc.is_old_enough(100.0, 160.0, 60.0))
        self.assertFalse(gc.is_old_enough(100.5, 160.0, 60.0))
        self.assertFalse(gc.is_old_enough(None, 160.0, 60.0))
