"""
``python -m spectroreg.worker``: one of the processes that worker 0 starts
for ``http.workers`` (L{spectroreg.prefork}), not a command to run by hand.

    python -m spectroreg.worker --index N --listen FD:FAMILY[,...] [--config PATH] [--config-on-stdin]

It loads the same configuration: the C{REGISTRY_*} variables it inherits
over the file's content as worker 0 read it, sent first on its stdin
(C{--config-on-stdin}: a line with the length, then the bytes; C{PATH} then
only names it in messages) or else the file itself. It listens on the
sockets it was given as open descriptors, logs to its stdout (a pipe to
worker 0) and stops, draining as the daemon does, on SIGTERM or when its
stdin reaches its end: worker 0 is gone. SIGINT is ignored: worker 0 stops
the workers.
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


def read_config(fd=0):
    """The configuration worker 0 sent on C{fd}: a line with its length, then its bytes."""
    header = b""
    while not header.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            raise EOFError("worker 0 closed the pipe before the configuration")
        header += chunk
    size = int(header)
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise EOFError("worker 0 closed the pipe within the configuration")
        data += chunk
    return data


def _stop(reactor):
    if reactor.running:
        reactor.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="spectroreg.worker")
    parser.add_argument("--index", required=True, type=int)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--config", default=None)
    parser.add_argument("--config-on-stdin", action="store_true")
    args = parser.parse_args(argv)
    prog = "spectroreg worker {}".format(args.index)

    from spectroreg.config.errors import ConfigError
    from spectroreg.config.load import load_settings

    try:
        data = read_config() if args.config_on_stdin else None
        settings = load_settings(args.config, data=data)
    except (ConfigError, EOFError, ValueError) as error:
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
