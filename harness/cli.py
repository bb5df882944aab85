"""The ``harness`` command line.

Every verb lives with its room (``harness/run/cli.py`` for ``run`` and ``resume``,
``harness/results/cli.py`` for ``query``, ``runs``, ``compare``, ``export``, ``report``, …)
and registers itself here. Bad input — a missing file, an unknown name, malformed YAML
or JSONL — prints one line on stderr and exits with code 2.

Example:
    >>> main(["query", "--store", "/nonexistent", "select 1"])  # doctest: +SKIP
    harness: --store /nonexistent: no results store there ...
    2
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from harness import __version__
from harness.errors import HarnessError


ROOMS = ("harness.run.cli", "harness.models.cli", "harness.tasks.cli", "harness.distributed.cli", "harness.results.cli",
         "harness.ranking.cli", "harness.judges.cli", "harness.finetune.cli")

class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), like every other bad input."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="harness",
        description="Evaluate implicit instruction tuning: causal LMs with and without the paper's rule expert,\n"
                    "on Ray, into Parquet tables you query with SQL.",
        epilog="start here:  harness run --tasks instructions-mini --limit 8     then: harness query \"select * from metrics\"",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for module in ROOMS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue  # that room is not built yet
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except HarnessError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("harness: interrupted; `harness resume` continues the run", file=sys.stderr)
        return 130


if __name__ == "__main__":
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    sys.exit(main())
