"""
The ``spectroreg`` and ``registry`` commands.

    spectroreg serve [CONFIG]     run the daemon in the foreground
    spectroreg config [CONFIG]    print the effective configuration, secrets masked
    spectroreg garbage-collect [--dry-run] [--delete-untagged] [--quiet] CONFIG
                                  Distribution's offline mark and sweep
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

    collect = commands.add_parser(
        "garbage-collect",
        help="delete the blobs no manifest references (registry stopped or read-only)",
    )
    collect.add_argument("config", nargs="?", help="config file (default: $REGISTRY_CONFIGURATION_PATH)")
    collect.add_argument("-d", "--dry-run", action="store_true", help="only print what would be deleted")
    collect.add_argument(
        "-m", "--delete-untagged", action="store_true",
        help="delete manifests no tag reaches, and what only they reference",
    )
    collect.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    collect.add_argument("--version", action="version", version=prog + " " + __version__)
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
    if args.command == "garbage-collect":
        return garbage_collect(args.config, prog, dry_run=args.dry_run,
                               delete_untagged=args.delete_untagged, quiet=args.quiet)
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
    from spectroreg.listeners import CannotListen
    from spectroreg.service import install_log_observer, makeService

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


def garbage_collect(path, prog="spectroreg", dry_run=False, delete_untagged=False, quiet=False,
                    reactor=None, out=None):
    """
    Distribution's ``registry garbage-collect`` on the configured storage;
    the exit status. As with Distribution, nothing may write to the
    storage meanwhile (stop the registry, or put it in read-only mode);
    ``storage.maintenance.gc`` collects while the daemon serves.
    """
    from spectroreg.config.errors import ConfigError
    from spectroreg.config.load import load_settings
    from spectroreg.registry.collector import collect_offline
    from spectroreg.storage.errors import StorageError
    from spectroreg.storage.factory import driver_from_settings

    try:
        settings = load_settings(path)
    except ConfigError as error:
        return _fail(prog, error)
    out = out or sys.stdout

    def emit(line):
        if not quiet:
            out.write(line + "\n")

    if reactor is None:
        from twisted.internet import reactor
    from twisted.internet import defer, task

    status = []

    async def run(reactor):
        driver = driver_from_settings(settings.storage, reactor=reactor)
        try:
            await collect_offline(driver, delete_untagged=delete_untagged, dry_run=dry_run, emit=emit)
            status.append(0)
        except (StorageError, OSError) as error:
            status.append(_fail(prog, "garbage collection failed: {}".format(error)))
        finally:
            await driver.close()

    try:
        task.react(lambda r: defer.ensureDeferred(run(r)), _reactor=reactor)
    except SystemExit as exit:
        if exit.code not in (0, None) and not status:
            return exit.code
    return status[0] if status else 1


def console_main():
    sys.exit(main())


if __name__ == "__main__":
    console_main()
