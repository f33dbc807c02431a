"""``pastset worker``: serve the tasks of a run (launchers start it on every host).

A run starts this command once per worker, all at once, so it parses its own command line
(:func:`main_alone`, reached from :func:`pastset.cli.main` without the parser of every
command) and imports only what a worker needs.
"""
from __future__ import annotations

import argparse
from typing import Any, List

from .logs import setup_logging
from .outcome import docs_line
from .outcome import execute as execute_command

#: the documentation page that covers this command; its ``--help`` ends with it
DOCS_PAGE = "docs/clusters.md"
HELP = "(started by launchers) serve tasks of a run"
DESCRIPTION = ("Serve the tasks of a run: connect to its server, register, and run spawned tasks. "
               "Launchers start this; you do not need to.")


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """``worker`` among the subcommands of the full parser (``pastset --help`` lists it)."""
    return _add_arguments(commands.add_parser("worker", help=HELP, description=DESCRIPTION))


def main_alone(argv: List[str]) -> int:
    """``pastset worker ARGV``, parsed by this command's parser alone; its exit status.

    Its help, usage errors and outcome are those the full parser gives the command.
    """
    parser = _add_arguments(argparse.ArgumentParser(prog="pastset worker", description=DESCRIPTION,
                                                    epilog=docs_line(DOCS_PAGE)))
    parser.set_defaults(command_parser=parser, execute=execute)
    return execute_command(parser.parse_args(argv))


def _add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--address", required=True, help="HOST:PORT of the run's server")
    parser.add_argument("--run", required=True, help="the run's id")
    parser.add_argument("--bin", required=True, help="directory the tasks run from")
    parser.add_argument("--authkey-stdin", action="store_true",
                        help="read the authkey from the first stdin line; stop when stdin reaches EOF")
    parser.add_argument("--authkey-file", metavar="PATH",
                        help="read the authkey from this file (mode 0600; batch jobs on a shared file system)")
    parser.add_argument("--tunnel", metavar="[USER@]HOST[:PORT]", help="reach the server through this sshd")
    parser.add_argument("--python", help="interpreter command for tasks (default: this one)")
    parser.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error", "critical"))
    parser.add_argument("--fork-stderr", metavar="FD[,FD...]", type=_fds, default=[],
                        help="(the local launcher) fork one worker per inherited pipe FD, its stderr, "
                             "from this one interpreter")
    parser.add_argument("--fork-report", metavar="FD", type=int,
                        help="(with --fork-stderr) the inherited pipe that hears of each forked worker")
    return parser


def _fds(text: str) -> List[int]:
    try:
        return [int(fd) for fd in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of file descriptors: {text!r}") from None


def execute(args: argparse.Namespace) -> int:
    from ..run import worker

    setup_logging(args.log_level)
    if args.fork_stderr:
        if args.fork_report is None:
            args.command_parser.error("--fork-stderr needs --fork-report")
        from ..launch.forked_workers import spawn_workers

        spawned = spawn_workers(args.fork_report, args.fork_stderr, worker.PRELOAD)
        args.leave_at_once = True  # the spawner and each worker it forked: see forked_workers.leave_at_once
        if spawned is not None:  # the spawner, once every worker it forked has ended
            return spawned
    return worker.main(args.address, args.run, args.bin, args.authkey_stdin, args.tunnel, args.python,
                       authkey_file=args.authkey_file)
