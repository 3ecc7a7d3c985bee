"""Command line: ``balancer study`` (also ``python -m balancer study``); see
:mod:`balancer.study._cli` for the command and ``balancer study --help`` for its options."""

from __future__ import annotations

import argparse
import difflib
import shlex
import sys
from collections.abc import Sequence
from typing import NoReturn

from balancer.study._cli import add_study_parser

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """Usage errors print the one useful line first, then where to find the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}{self._did_you_mean(message)}\n(see "
                     f"'{self.prog} --help' for every option)\n")

    def _did_you_mean(self, message: str) -> str:
        """For an unknown option, the closest known one (a typo is the usual cause)."""
        if not message.startswith("unrecognized arguments: "):
            return ""
        parsers, known = [self], []
        while parsers:  # this parser's options and its commands' (the study's flags)
            parser = parsers.pop()
            for action in parser._actions:
                known += [flag for flag in action.option_strings if flag.startswith("--")]
                if isinstance(action, argparse._SubParsersAction):
                    parsers += action.choices.values()
        hints = []
        for given in message.removeprefix("unrecognized arguments: ").split():
            name = given.split("=", 1)[0]
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            if name.startswith("-") and close:
                hints.append(f"{close[0]} (for {name})")
        return f"; did you mean {', '.join(hints)}?" if hints else ""


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
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # the command's error (``balancer study: error``), pointing to its own --help
        getattr(args, "parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    return args.handler(args, args.parser, "balancer " + shlex.join(argv))


if __name__ == "__main__":
    sys.exit(main())
