"""
AWS credentials for signing, resolved without blocking the reactor.

Keys from the config are used as they are. Otherwise botocore's standard
chain (environment, shared credentials/config files, web identity, container
and instance roles) is asked once, in the reactor's thread pool, because it
reads files and may call the instance metadata service. Refreshable
credentials (roles) are refreshed the same way when botocore says they are
about to expire. No credentials at all means unsigned (anonymous) requests.
"""

from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.failure import Failure

from spectroreg.bounded import Waiters

log = Logger()


class CredentialSource:
    """
    @param accesskey, secretkey: the config's keys, or None for the chain.
    @param sessiontoken: with them, for temporary credentials.
    @param reactor: runs the chain in C{reactor.getThreadPool()}.
    @param session_factory: makes a botocore session (tests replace it).
    """

    def __init__(self, accesskey=None, secretkey=None, reactor=None, session_factory=None,
                 sessiontoken=None):
        self._reactor = reactor
        self._session_factory = session_factory
        self._static = None
        if accesskey and secretkey:
            from botocore.credentials import Credentials

            self._static = Credentials(
                accesskey, secretkey, sessiontoken or None).get_frozen_credentials()
        self._credentials = None
        self._resolved = False
        self._waiters = Waiters()

    def _in_thread(self, function):
        reactor = self._reactor
        if reactor is None:
            from twisted.internet import reactor
        return threads.deferToThreadPool(reactor, reactor.getThreadPool(), function)

    def _resolve_chain(self):
        if self._session_factory is not None:
            session = self._session_factory()
        else:
            import botocore.session

            session = botocore.session.get_session()
        credentials = session.get_credentials()
        if credentials is None:
            return None, None
        return credentials, credentials.get_frozen_credentials()

    def frozen(self):
        """
        @return: a Deferred firing with botocore C{ReadOnlyCredentials}, or
            None for anonymous requests. Fires synchronously when nothing
            needs resolving.
        """
        if self._static is not None:
            return defer.succeed(self._static)
        if self._resolved:
            credentials = self._credentials
            if credentials is None:
                return defer.succeed(None)
            refresh_needed = getattr(credentials, "refresh_needed", None)
            if refresh_needed is None or not refresh_needed():
                return defer.succeed(credentials.get_frozen_credentials())
            return self._share(lambda: credentials.get_frozen_credentials())
        return self._share(self._first)

    def _first(self):
        credentials, frozen = self._resolve_chain()
        self._credentials = credentials
        self._resolved = True
        if credentials is None:
            log.warn("storage.s3: no credentials in the config or the AWS chain; "
                     "requests are sent unsigned")
        return frozen

    def _share(self, function):
        # One resolution at a time; everyone waiting gets its result.
        first = not self._waiters
        waiter = self._waiters.wait()
        if first:

            def finish(result):
                if isinstance(result, Failure):
                    self._waiters.fail(result)
                else:
                    self._waiters.fire(result)

            self._in_thread(function).addBoth(finish)
        return waiter
