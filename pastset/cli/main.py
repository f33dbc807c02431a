"""The ``pastset`` command line: run, status, clean, config, launchers (and worker/server,
which launchers start).

Usage errors exit 2 (argparse); a failure prints one ``pastset: error: ...`` line and
exits 1 — a traceback only with ``--log-level debug``.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
from typing import Any, Dict, Iterable, List, Optional

from .. import __version__
from ..settings.files import CONFIG_ENV, default_system_files, default_user_files
from ..errors import PastSetError
from ..settings.specs import SETTINGS, SettingSpec, show_value

log = logging.getLogger("pastset")

DESCRIPTION = """\
pastset runs PastSet programs: a tuple-space server, workers that run spawned tasks,
and your application, on this machine or across a cluster (ssh, SLURM, Grid Engine, PBS).

  python -m pastset run app.py ARGS      run app.py with its workers
  python -m pastset status               show the elements, waiting calls, tasks and workers of a live run
  python -m pastset top                  the same, redrawn every second
  python -m pastset trace-plot FILE      draw a trace written by `run --trace FILE` as a PNG
  python -m pastset clean                remove what a crashed run left behind
  python -m pastset config               show every setting, its value and its source
  python -m pastset launchers            list the launchers and who provides them
"""


#: the settings ``pastset status`` uses: how to reach the run, and logging
STATUS_SETTINGS = ("tunnel", "tunnel_via", "tunnel_key", "log_level", "log_path")
#: the tables ``pastset status`` can show
STATUS_TABLES = ("all", "clients", "tasks", "elements", "workers")
#: ``--run`` of ``status`` and ``top``
RUN_HELP = "which run (an id or a prefix); needed when several are live"


def config_files_text() -> str:
    """The config files pastset reads, in order, for ``--help``."""
    files = default_system_files() + default_user_files() + ["./pastset.toml"]
    home = os.path.expanduser("~")
    shown = ["~" + f[len(home):] if home not in ("", "/") and f.startswith(home + os.sep) else f for f in files]
    return (f"Config files read, later ones winning: {', '.join(shown)}; or exactly --config FILE "
            f"(or ${CONFIG_ENV}). Files ending in .toml hold a [pastset] table; the others are ini "
            "files with PS* keys under [DEFAULT].")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pastset", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"pastset {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    run = commands.add_parser(
        "run", help="run a PastSet application with its workers",
        description="Run APP (looked up in the bin directory, or a path) with `procs` workers.\n"
                    "The application gets PASTSET_ADDRESS and PASTSET_AUTHKEY, so pastset.PastSet()\n"
                    "connects to this run. The exit code is the application's.",
        epilog="example: python -m pastset run --procs 4 --bin examples mcpiserver.py 4 40 200000\n\n"
               + "\n".join(textwrap.wrap(config_files_text(), 90)) + "\n"
               "Settings also come from PS* environment variables; `pastset config` shows each\n"
               "value and its source.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_setting_flags(run)
    run.add_argument("app", metavar="APP", nargs="?", help="the application, e.g. mcpiserver.py")
    run.add_argument("app_args", metavar="ARGS", nargs=argparse.REMAINDER, help="arguments for APP (optional)")

    status = commands.add_parser(
        "status", help="show the elements, waiting calls, tasks and workers (clients) of a live run",
        description="Show a live run's elements (with their flow rates), the calls waiting on them, "
                    "the spawned tasks and the registered workers (clients) as tables; FILTER words keep "
                    "only rows that contain all of them. --json prints the status document instead.")
    status.add_argument("words", nargs="*", metavar="WORD",
                        help=f"first the table: {', '.join(STATUS_TABLES)} (default all); then FILTER words")
    status.add_argument("--run", metavar="ID", help=RUN_HELP)
    status.add_argument("--list", action="store_true", help="list the live runs of this user and exit")
    status.add_argument("--json", action="store_true",
                        help="print the status document as JSON (its keys are listed in the README)")
    add_setting_flags(status, only=STATUS_SETTINGS)

    top = commands.add_parser(
        "top", help="watch a live run: its status redrawn every second",
        description="Redraw the status of a live run every second, fitted to the terminal, until Ctrl-C "
                    "or the run ends (exit code 0 either way). When stdout is not a terminal, print "
                    "one plain status block per second instead.")
    top.add_argument("--run", metavar="ID", help=RUN_HELP)
    top.add_argument("--interval", type=float, default=1.0, metavar="SECONDS", help="seconds between redraws")
    add_setting_flags(top, only=STATUS_SETTINGS)

    plot = commands.add_parser(
        "trace-plot", help="draw a trace written by `pastset run --trace FILE` as a PNG timeline",
        description="Draw a run's trace (closed, or left open by a killed run) as a PNG: a row per "
                    "worker track with a bar per task, the app's run, long waits, and element counters. "
                    "Needs matplotlib: pip install 'pastset[plot]'.")
    from ..observe.traceplot import add_arguments as add_plot_arguments

    add_plot_arguments(plot)

    clean = commands.add_parser(
        "clean", help="remove processes and jobs left by crashed runs",
        description="For every recorded run whose runner is gone, stop the processes and batch jobs it "
                    "recorded (checked by PID and start time; nothing is killed by name) and delete the "
                    "record.")
    clean.add_argument("--run", metavar="ID", help="only this run")
    clean.add_argument("--dry-run", action="store_true", help="say what would be done")

    config = commands.add_parser(
        "config", help="print every effective setting and where it came from",
        description="Print every setting (and the options of the launchers in use or configured) with "
                    "its value and source, the config files read, and the launcher a run would use. "
                    "A config file with a problem is an error here too.",
        epilog=config_files_text())
    add_setting_flags(config)

    commands.add_parser("launchers", help="list the launchers and the distributions that provide them",
                        description="List every installed launcher (the values of the launcher setting), "
                                    "the distribution that provides it, and what it does.")

    worker = commands.add_parser(
        "worker", help="(started by launchers) serve tasks of a run",
        description="Serve the tasks of a run: connect to its server, register, and run spawned tasks. "
                    "Launchers start this; you do not need to.")
    worker.add_argument("--address", required=True, help="HOST:PORT of the run's server")
    worker.add_argument("--run", required=True, help="the run's id")
    worker.add_argument("--bin", required=True, help="directory the tasks run from")
    worker.add_argument("--authkey-stdin", action="store_true",
                        help="read the authkey from the first stdin line; stop when stdin reaches EOF")
    worker.add_argument("--authkey-file", metavar="PATH",
                        help="read the authkey from this file (mode 0600; batch jobs on a shared file system)")
    worker.add_argument("--tunnel", metavar="[USER@]HOST[:PORT]", help="reach the server through this sshd")
    worker.add_argument("--python", help="interpreter command for tasks (default: this one)")
    worker.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error", "critical"))

    server = commands.add_parser(
        "server", help="(started over ssh for `master`) serve a run's tuple space",
        description="Serve a run's tuple space on this host. `pastset run` starts this over ssh when the "
                    "master setting names another host; you do not need to.")
    server.add_argument("--bind", required=True, help="address to listen on")
    server.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    server.add_argument("--bin", required=True, help="the run's application directory (X-function modules)")
    server.add_argument("--run", required=True, help="the run's id")
    server.add_argument("--authkey-stdin", action="store_true", required=True,
                        help="read the authkey from the first stdin line; stop when stdin reaches EOF")
    server.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error", "critical"))
    server.add_argument("--label-output", choices=("true", "false"), default="false",
                        help="start task output lines with [TASKID] (the run decides)")
    server.add_argument("--max-connections", type=int, default=None, help="the run's max_connections")
    for sub in commands.choices.values():
        sub.set_defaults(command_parser=sub)  # usage errors found after parsing use its usage
    return parser


def add_setting_flags(parser: Any, only: Optional[Iterable[str]] = None) -> Any:
    """Add a flag for every setting that has one (or those in ``only``), plus ``--config
    FILE``, to an argparse parser. All default to ``None``, meaning "not given".

    :return: the argument group the flags were added to.
    """
    group = parser.add_argument_group("settings (override config files and PS* environment variables)")
    group.add_argument("--config", metavar="FILE", default=None,
                       help=f"read only this config file (.toml or ini); env {CONFIG_ENV}")
    for name, spec in SETTINGS.items():
        if spec.flag is None or (only is not None and name not in only):
            continue
        help_text = _flag_help(spec)
        if spec.metavar is None:
            group.add_argument(spec.flag, dest=name, default=None, action=argparse.BooleanOptionalAction,
                               help=help_text)
        else:
            group.add_argument(spec.flag, dest=name, default=None, metavar=spec.metavar, help=help_text)
    return group


def _flag_help(spec: SettingSpec) -> str:
    """Help text: the doc, the environment name and the default (``%`` escaped for argparse)."""
    default = "procs" if spec.default is None else show_value(spec.default)
    return f"{spec.doc} (env {spec.env}; default {default})".replace("%", "%%")


def setting_flags(namespace: argparse.Namespace) -> Dict[str, Any]:
    """The setting flags given on the command line, as ``load_settings(flags=...)`` takes them."""
    given: Dict[str, Any] = {}
    for name, spec in SETTINGS.items():
        value = getattr(namespace, name, None)
        if spec.flag is not None and value is not None:
            given[name] = value
    return given


def _load_settings(args: argparse.Namespace, pm: Any) -> Any:
    from ..launch.plugins import launchers
    from ..settings.load import load_settings

    return load_settings(flags=setting_flags(args), config_file=args.config, plugin_manager=pm,
                         launcher_options={name: info.cls.option_specs for name, info in launchers(pm).items()})


def _setup_logging(level: str, path: str = "") -> None:
    """Log records at ``level`` and above to stderr (and ``path``), as event lines."""
    from ..observe.events import setup_logging

    setup_logging(level, path)


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = _parse(parser, argv)
    debug = getattr(args, "log_level", None) == "debug"
    try:
        return _dispatch(args)
    except PastSetError as exc:
        if debug:
            raise
        print(f"pastset: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `pastset config | head`: the reader left; that is not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush stays quiet
        return 0


def _parse(parser: argparse.ArgumentParser, argv: Optional[List[str]]) -> argparse.Namespace:
    """Parse, with usage errors from the subcommand's own parser (its usage, its words)."""
    args, extra = parser.parse_known_args(argv)
    sub = args.command_parser
    if extra:
        sub.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "run" and args.app is None:
        sub.error("which application? name it after the options, then its own arguments, "
                  "e.g. pastset run --procs 4 app.py 10")
    if args.command == "status":
        words = list(args.words)
        if words and words[0] not in STATUS_TABLES:
            sub.error(f"{words[0]!r} is not a table; choose one of {', '.join(STATUS_TABLES)} "
                      "(FILTER words come after it, e.g. pastset status tasks running)")
        args.what = words.pop(0) if words else "all"
        args.filters = words
    return args


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "worker":
        from ..run import worker

        _setup_logging(args.log_level)
        return worker.main(args.address, args.run, args.bin, args.authkey_stdin, args.tunnel, args.python,
                           authkey_file=args.authkey_file)

    if args.command == "server":
        from ..run.remote_master import serve

        _setup_logging(args.log_level)
        return serve(args.bind, args.port, args.bin, args.run, labels=args.label_output == "true",
                     max_connections=args.max_connections)

    from ..launch.plugins import get_plugin_manager

    pm = get_plugin_manager()
    if args.command == "launchers":
        return _launchers(pm)
    if args.command == "trace-plot":
        from ..observe.traceplot import run as plot_trace

        return plot_trace(args)
    if args.command == "clean":
        from .commands import clean

        return clean(args.run, args.dry_run, pm)
    settings = _load_settings(args, pm)
    _setup_logging(settings.log_level, settings.log_path)
    if args.command == "config":
        from .commands import show_config

        return show_config(settings, pm)
    if args.command == "status":
        from .commands import status

        return status(args.what, args.filters, args.run, args.list, settings, as_json=args.json)
    if args.command == "top":
        from .commands import top

        return top(args.run, settings, interval=args.interval)
    from ..run.runner import run_app

    return run_app(settings, args.app, args.app_args, pm)


def _launchers(pm: Any) -> int:
    from ..launch.plugins import launchers

    rows = [(info.name, info.provider, info.cls.summary) for info in sorted(launchers(pm).values(),
                                                                            key=lambda i: i.name)]
    width = [max(len(r[i]) for r in rows) for i in range(2)] if rows else [0, 0]
    for name, provider, summary in rows:
        print(f"{name:<{width[0]}}  {provider:<{width[1]}}  {summary}")
    return 0
