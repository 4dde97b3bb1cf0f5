"""
Operating the daemon: health checks (``health``), Prometheus metrics
(``metrics``), webhook notifications (``events``, ``notifications``) and
the debug listener that serves the first two (``debug``).

The API reaches them through the interfaces in ``interfaces``; when nothing
is configured it gets the null implementations, which cost one method call.
"""
