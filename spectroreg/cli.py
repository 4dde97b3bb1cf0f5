"""
The ``spectroreg`` and ``registry`` commands.

    spectroreg serve [CONFIG]     run the daemon in the foreground
    spectroreg config [CONFIG]    print the effective configuration, secrets masked
    spectroreg --version

CONFIG defaults to ``$REGISTRY_CONFIGURATION_PATH``. ``serve`` runs the same
service as ``twistd spectroreg``: SIGTERM and SIGINT stop it (draining
requests in flight up to ``http.draintimeout``), SIGHUP reloads TLS material
and the htpasswd file. A configuration that cannot be used ends the command
with status 1 and one line on stderr, before anything listens.
"""

import argparse
import os
import sys

from spectroreg import __version__

EXIT_CONFIG = 1


def _parser(prog):
    parser = argparse.ArgumentParser(
        prog=prog,
        description="spectroreg: a container registry (Docker Registry HTTP API v2).",
    )
    parser.add_argument("--version", action="version", version=prog + " " + __version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the registry in the foreground")
    serve.add_argument(
        "config", nargs="?", help="config file (default: $REGISTRY_CONFIGURATION_PATH)"
    )
    serve.add_argument("--version", action="version", version=prog + " " + __version__)

    config = commands.add_parser(
        "config", help="print the effective configuration, secrets masked"
    )
    config.add_argument(
        "config", nargs="?", help="config file (default: $REGISTRY_CONFIGURATION_PATH)"
    )
    config.add_argument("--version", action="version", version=prog + " " + __version__)
    return parser


def _fail(prog, message):
    sys.stderr.write("{}: {}\n".format(prog, " ".join(str(message).split())))
    return EXIT_CONFIG


def main(argv=None, prog=None):
    if prog is None:
        prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "spectroreg"
        if prog in ("__main__.py", "-m", "-c", ""):
            prog = "spectroreg"
    args = _parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    if args.command in ("serve", "config"):
        from spectroreg.dependencies import FOR_CONFIG, REQUIRED, install_hint, missing_packages

        missing = missing_packages(REQUIRED if args.command == "serve" else FOR_CONFIG)
        if missing:
            return _fail(prog, install_hint(missing))
    if args.command == "serve":
        return serve(args.config, prog)
    if args.command == "config":
        return show_config(args.config, prog)
    _parser(prog).print_help(sys.stderr)
    return 2


def show_config(path, prog="spectroreg"):
    from spectroreg.config.errors import ConfigError
    from spectroreg.config.load import effective_config

    try:
        text = effective_config(path)
    except ConfigError as error:
        return _fail(prog, error)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def serve(path, prog="spectroreg", reactor=None):
    """Run the daemon until a signal stops it; the exit status."""
    from spectroreg.config.errors import ConfigError
    from spectroreg.config.load import load_settings

    try:
        settings = load_settings(path)
    except ConfigError as error:
        return _fail(prog, error)

    if reactor is None:
        from twisted.internet import reactor
    from spectroreg.service import CannotListen, install_log_observer, makeService

    try:
        service = makeService(settings, reactor=reactor)
    except (ConfigError, OSError) as error:
        return _fail(prog, error)
    install_log_observer(service.log_observer)
    try:
        service.privilegedStartService()
        service.startService()
    except (ConfigError, CannotListen, OSError) as error:
        return _fail(prog, error)

    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    return 0


def console_main():
    sys.exit(main())


if __name__ == "__main__":
    console_main()
