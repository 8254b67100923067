# SPDX-License-Identifier: MIT
"""The `clrmemtrace` command: one subcommand per module.

Each subcommand module exposes `register(subparsers)`, which adds its parser
and sets `func` (taking the parsed arguments, returning the exit status).
Errors the user can act on are raised as `UserError` and printed as one line.
"""

import argparse
import importlib
import sys

from clrmemtrace import __version__

# Subcommand modules, in the order `clrmemtrace --help` lists them.
SUBCOMMANDS = [
    "record",
    "summary",
    "timeline",
    "mapcmd",
    "leaks",
    "check",
    "latency",
    "plot",
    "report",
    "export",
    "diff",
]

# Exit statuses shared by every subcommand.
EXIT_OK = 0
EXIT_USAGE = 2  # bad command line (argparse's own code)
EXIT_ERROR = 3  # the command could not do its work (message on stderr)


class UserError(Exception):
    """A failure explained in one line to the user; no traceback."""

    def __init__(self, message, status=EXIT_ERROR):
        super().__init__(message)
        self.status = status


def build_parser():
    parser = argparse.ArgumentParser(
        prog="clrmemtrace",
        description="Record and analyse traces of what a CLR host's runtime does with memory.",
    )
    parser.add_argument("--version", action="version", version=f"clrmemtrace {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"clrmemtrace.{name}").register(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return args.func(args)
    except UserError as e:
        print(f"clrmemtrace {args.command}: {e}", file=sys.stderr)
        return e.status
    except KeyboardInterrupt:
        print(f"clrmemtrace {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
