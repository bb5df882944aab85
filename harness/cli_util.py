"""Helpers shared by every room's CLI module.

Each room exposes ``register(subparsers)`` that adds its verbs; every sub-parser sets
``func``, a callable ``(args) -> int`` returning the exit code. ``harness.cli`` wires
them together and turns :class:`~harness.errors.HarnessError` into exit code 2.

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser(); sub = p.add_subparsers()
    >>> q = add_verb(sub, "hello", "say hello", lambda a: 0)
    >>> p.parse_args(["hello"]).func(None)
    0
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def add_verb(subparsers, name: str, help_text: str, func: Callable[[argparse.Namespace], int],
             description: str | None = None, epilog: str | None = None) -> argparse.ArgumentParser:
    """Add a sub-command whose ``--help`` shows ``description`` and example ``epilog``."""
    parser = subparsers.add_parser(
        name,
        help=help_text,
        description=description or help_text,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=func)
    return parser
