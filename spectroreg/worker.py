"""
``python -m spectroreg.worker``: one of the processes that worker 0 starts
for ``http.workers`` (L{spectroreg.prefork}), not a command to run by hand.

    python -m spectroreg.worker --index N --listen FD:FAMILY[,...] [--config PATH]

It loads the same configuration (file and C{REGISTRY_*} variables, which it
inherits), listens on the sockets it was given as open descriptors, logs to
its stdout (a pipe to worker 0) and stops, draining as the daemon does, on
SIGTERM or when its stdin (a pipe from worker 0) reaches its end: worker 0
is gone. SIGINT is ignored: worker 0 stops the workers.
"""

import argparse
import os
import signal
import sys
import threading


def watch_parent(reactor, fd=0):
    """Stop C{reactor} once C{fd} (a pipe from the parent) reaches its end."""

    def wait():
        try:
            while os.read(fd, 4096):
                pass
        except OSError:
            pass
        reactor.callFromThread(_stop, reactor)

    thread = threading.Thread(target=wait, name="spectroreg-parent-watch", daemon=True)
    thread.start()
    return thread


def _stop(reactor):
    if reactor.running:
        reactor.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="spectroreg.worker")
    parser.add_argument("--index", required=True, type=int)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--config", default=None)
    args = parser.parse_args(argv)
    prog = "spectroreg worker {}".format(args.index)

    from spectroreg.config.errors import ConfigError
    from spectroreg.config.load import load_settings

    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        sys.stderr.write("{}: {}\n".format(prog, error))
        return 1

    from twisted.internet import reactor

    from spectroreg.listeners import CannotListen
    from spectroreg.prefork import WorkerRole
    from spectroreg.service import install_log_observer, makeService

    try:
        service = makeService(settings, reactor=reactor, worker=WorkerRole.parse(args.index, args.listen))
    except (ConfigError, OSError, ValueError) as error:
        sys.stderr.write("{}: {}\n".format(prog, error))
        return 1
    install_log_observer(service.log_observer)
    try:
        service.privilegedStartService()
        service.startService()
    except (ConfigError, CannotListen, OSError) as error:
        sys.stderr.write("{}: {}\n".format(prog, error))
        return 1
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    # Ctrl-C in a terminal reaches every process of the group: worker 0
    # stops the workers itself (SIGTERM), after its own listeners.
    reactor.callWhenRunning(signal.signal, signal.SIGINT, signal.SIG_IGN)
    watch_parent(reactor)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
