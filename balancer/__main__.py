"""Command line: ``balancer study`` (also ``python -m balancer study``); see
:mod:`balancer.study._cli` for the command and ``balancer study --help`` for its options."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from balancer.study._cli import add_study_parser

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """Usage errors print the one useful line first, then where to find the usage."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n(see '{self.prog} --help' for every "
                     f"option)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="balancer", description="balancer command line")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                       parser_class=_Parser)
    add_study_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``balancer`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.handler(args, args.parser, "balancer " + shlex.join(argv))


if __name__ == "__main__":
    sys.exit(main())
