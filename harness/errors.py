"""User-facing errors.

Any :class:`HarnessError` reaching the CLI becomes one line on stderr and exit code 2.
Messages name the file, field and value, and suggest the fix where one is obvious.

Example:
    >>> err = HarnessError("tasks/x.yaml: doc_to_text: unknown column 'instr'")
    >>> str(err)
    "tasks/x.yaml: doc_to_text: unknown column 'instr'"
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HarnessError(Exception):
    """Bad input from the user (config, flags, files): exit code 2, one line."""

    exit_code = 2


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""``.

    >>> did_you_mean("rulse", ["none", "rules"])
    " (did you mean 'rules'?)"
    """
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
