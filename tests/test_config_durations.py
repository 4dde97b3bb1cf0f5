"""Go-style durations and Go-style listening addresses."""

from twisted.trial import unittest

from spectroreg.config.addresses import join_host_port, split_host_port
from spectroreg.config.durations import format_duration, parse_duration


class DurationTests(unittest.SynchronousTestCase):
    def test_valid(self):
        cases = [
            ("60s", 60.0),
            ("168h", 168 * 3600.0),
            ("1h30m", 5400.0),
            ("1.5s", 1.5),
            ("300ms", 0.3),
            ("0", 0.0),
            ("0s", 0.0),
            ("+5m", 300.0),
            ("-2s", -2.0),
            (".5s", 0.5),
            ("1.s", 1.0),
            ("2h45m30.5s", 2 * 3600 + 45 * 60 + 30.5),
            ("10us", 10e-6),
            ("10\u00b5s", 10e-6),
            ("10\u03bcs", 10e-6),
            ("250ns", 250e-9),
            (" 60s ", 60.0),
        ]
        for text, seconds in cases:
            self.assertAlmostEqual(parse_duration(text), seconds, places=9, msg=text)

    def test_invalid(self):
        for text in ["", "5", "60", "s", "1d", "1 h", "1h 30m", "h1", ".s", "1..5s", "-", "60S", "1hh"]:
            self.assertRaises(ValueError, parse_duration, text)

    def test_not_a_string(self):
        error = self.assertRaises(ValueError, parse_duration, 60)
        self.assertIn("60s", str(error))

    def test_unknown_unit_named(self):
        error = self.assertRaises(ValueError, parse_duration, "3d")
        self.assertEqual(str(error), "unknown unit 'd' in duration '3d'; use ns, us, ms, s, m or h")

    def test_format(self):
        for seconds, text in [(0, "0s"), (60, "1m"), (5400, "1h30m"), (1.5, "1.5s"), (604800, "168h")]:
            self.assertEqual(format_duration(seconds), text)
            self.assertEqual(parse_duration(text), seconds)


class AddressTests(unittest.SynchronousTestCase):
    def test_valid(self):
        cases = [
            (":5000", ("", 5000)),
            ("0.0.0.0:5000", ("0.0.0.0", 5000)),
            ("localhost:443", ("localhost", 443)),
            ("[::1]:5000", ("::1", 5000)),
            ("[::]:80", ("::", 80)),
            ("127.0.0.1:0", ("127.0.0.1", 0)),
        ]
        for addr, expected in cases:
            self.assertEqual(split_host_port(addr), expected, addr)
            self.assertEqual(join_host_port(*expected), addr)

    def test_invalid(self):
        for addr in ["", "5000", "::1:5000", "[::1]5000", "[]:5000", "host:http", "host:70000", "a b:1", "[::1"]:
            self.assertRaises(ValueError, split_host_port, addr)
