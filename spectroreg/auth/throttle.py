"""
Slowing down password guessing, per client address.

Each address gets a small record of its recent failures. After
C{threshold} failures within C{window} seconds the address is blocked for
C{penalty} seconds, doubling with each further failure after a block, up to
C{max_penalty}. A success clears the record. Other addresses are never
affected. The table is bounded (least recently touched addresses are
forgotten first), so a flood of addresses costs bounded memory.

A check whose outcome is not known yet (a password waiting for bcrypt) is
counted as a failure when it is submitted (L{FailureThrottle.attempt}) and
forgiven if it succeeds: so an address can start at most C{threshold}
checks per window, however many it sends at once, instead of being stopped
only once the failures of all its pending checks have come back.
"""

import math

from spectroreg.auth.interfaces import TooManyRequests
from spectroreg.bounded import LRU


class _Record:
    __slots__ = ("failures", "window_start", "blocked_until", "blocks")

    def __init__(self, now):
        self.failures = 0
        self.window_start = now
        self.blocked_until = 0.0
        self.blocks = 0


class FailureThrottle:
    """
    @param clock: an C{IReactorTime} (its C{seconds()} is read).
    """

    def __init__(
        self,
        clock,
        threshold=10,
        window=60.0,
        penalty=10.0,
        max_penalty=300.0,
        max_clients=10000,
    ):
        self._clock = clock
        self.threshold = threshold
        self.window = window
        self.penalty = penalty
        self.max_penalty = max_penalty
        # address -> _Record, least recently failed first
        self._records = LRU(max_clients)

    @property
    def max_clients(self):
        return self._records.capacity

    def __len__(self):
        return len(self._records)

    def check(self, client):
        """
        @raise TooManyRequests: C{client} is blocked right now; its
            C{retry_after} is the whole seconds left.
        """
        record = self._records.peek(client)
        if record is None:
            return
        now = self._clock.seconds()
        if record.blocked_until > now:
            raise TooManyRequests(max(1, int(math.ceil(record.blocked_until - now))))

    def attempt(self, client):
        """
        Count an attempt by C{client} whose outcome is not known yet, as a
        failure; a later L{success} forgives it.

        @return: as L{failure}.
        """
        return self.failure(client)

    def failure(self, client):
        """
        Count one failed attempt by C{client}.

        @return: the seconds of the block this failure started, or None.
        """
        now = self._clock.seconds()
        record = self._records.get(client)
        if record is None:
            record = _Record(now)
            self._records.put(client, record)
        else:
            # A quiet period longer than the window (and than the last
            # block) forgives the past.
            quiet_since = max(record.window_start, record.blocked_until)
            if now - quiet_since > self.window:
                record.failures = 0
                record.blocks = 0
                record.window_start = now
        record.failures += 1
        if record.failures >= self.threshold:
            delay = min(self.max_penalty, self.penalty * (2 ** record.blocks))
            record.blocks += 1
            record.blocked_until = now + delay
            # The next block needs only one more failure: after a block,
            # each wrong guess is answered by a longer one.
            record.failures = self.threshold - 1
            return delay
        return None

    def success(self, client):
        """C{client} proved it knows a password: forget its failures."""
        self._records.pop(client, None)
