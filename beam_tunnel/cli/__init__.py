"""The ``beam-tunnel`` command line.

Usage::

    beam-tunnel emulator --port 8080 --data-dir ./tunnel-data
    beam-tunnel emulator create-table orders --pk id:STRING --split-points h,p --stream
    beam-tunnel consume --table orders --tunnel orders-sync --type BaseAndStream
    beam-tunnel demo

One module per subcommand; each has ``add_parser(subparsers)``, which adds
its parser and sets ``func`` (called with the parsed arguments, returns the
exit status). Keep them thin: parse, call the library, print.
"""

from __future__ import annotations

import argparse
import logging
from typing import List, Optional

from ..monitoring import add_monitoring_subcommands
from . import consume, demo, emulator

__all__ = ["main", "build_parser"]

_LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]

# Every subcommand, in the order `beam-tunnel --help` lists them. To add one,
# append its ``add_parser(subparsers)`` function here.
_SUBCOMMANDS = (
    emulator.add_parser,
    consume.add_parser,
    demo.add_parser,
    add_monitoring_subcommands,  # lag, monitor
)


def build_parser() -> argparse.ArgumentParser:
    """The ``beam-tunnel`` parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="beam-tunnel",
        description="Tablestore Tunnel Service tools: client, embedded emulator, Beam pipelines.",
    )
    _add_log_level(parser, default=None)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add_parser in _SUBCOMMANDS:
        add_parser(subparsers)
    _accept_log_level_everywhere(parser)
    return parser


def _add_log_level(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument("--log-level", default=default, choices=_LOG_LEVELS, type=str.upper,
                        help="logging level (default INFO; WARNING for consume and demo)")


def _accept_log_level_everywhere(parser: argparse.ArgumentParser) -> None:
    """Let ``--log-level`` also follow the subcommand (``beam-tunnel consume
    --log-level INFO``), on every subcommand however it was registered.

    SUPPRESS keeps a subcommand from resetting a level given before it.
    """
    for action in parser._actions:  # argparse has no public accessor for subparsers
        if isinstance(action, argparse._SubParsersAction):
            for subparser in set(action.choices.values()):
                if "--log-level" not in subparser._option_string_actions:
                    _add_log_level(subparser, default=argparse.SUPPRESS)
                _accept_log_level_everywhere(subparser)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    # A subcommand may pick a quieter default (consume and demo print their own story).
    level = args.log_level or getattr(args, "log_level_default", "INFO")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(func(args) or 0)
