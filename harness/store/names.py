"""Names that become paths in a results store: run ids are names, never paths.

A run id names the directories ``STORE/<table>/run_id=<id>/`` and the file
``STORE/manifests/<id>.json``, so it must be one safe path component: letters, digits,
``.``, ``_`` and ``-``, starting with a letter or digit, at most 128 characters. Anything
else (``/``, ``..``, ``=``, spaces, a leading ``.``) is refused with one line before any
write, so no run id can make the harness write outside ``--store``.

Example:
    >>> check_name("gemma-3-270m-1a2b3c4d5e", "--run-id")
    'gemma-3-270m-1a2b3c4d5e'
    >>> check_name("../../escaped", "--run-id")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    harness.errors.HarnessError: --run-id '../../escaped': ...
"""

from __future__ import annotations

import re

from harness.errors import HarnessError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
NAME_RULE = "use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128 characters"


def is_name(value: object) -> bool:
    """True when ``value`` is a safe store name (see the module docstring).

    >>> is_name("r1"), is_name("a/b"), is_name(".hidden"), is_name("x=y")
    (True, False, False, False)
    """
    return isinstance(value, str) and NAME_RE.fullmatch(value) is not None


def check_name(value: object, what: str) -> str:
    """Return ``value`` if it is a safe store name, else raise a one-line :class:`HarnessError`."""
    if not is_name(value):
        raise HarnessError(f"{what} {value!r}: not a valid name ({NAME_RULE})")
    return value  # type: ignore[return-value]
