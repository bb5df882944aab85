"""Doc tables generated from code: run-config fields and metric names.

Two reference tables in ``docs/`` are written by this module, never by hand, so they
cannot drift from the code:

* ``docs/run-config.md`` (section ``run-config-fields``): one row per field of
  :class:`harness.run.config.RunConfig` — its YAML key, type, default, the ``harness run``
  flag that sets it and the flag's help text as its meaning (fields without a flag take
  their meaning from :data:`MEANINGS_WITHOUT_HELP`).
* ``docs/results-tables.md`` (section ``metric-names``): every name of the registry
  :data:`harness.metrics.names.METRIC_NAMES`, once.

Each section sits between ``<!-- generated:NAME -->`` and ``<!-- end generated:NAME -->``.
After changing ``RunConfig``, a ``harness run`` flag or the metric registry, regenerate
with ``python -m harness.doc_tables``; ``python -m harness.doc_tables --check`` (and
``tests/unit/test_doc_tables.py``) fail while a section is stale.

Example:
    >>> "| `max_new_tokens` |" in run_config_table()
    True
    >>> replace_section("a\\n<!-- generated:x -->\\nold\\n<!-- end generated:x -->\\nb", "x", "new")
    'a\\n<!-- generated:x -->\\nnew\\n<!-- end generated:x -->\\nb'
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import MISSING, fields
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Meanings of RunConfig fields whose `harness run` flag has no help text, or that no flag sets (YAML only).
MEANINGS_WITHOUT_HELP = {
    "do_sample": "sample instead of greedy decoding (the paper decodes greedily)",
    "temperature": "softmax temperature when `do_sample` is true",
    "top_p": "nucleus-sampling mass when `do_sample` is true",
    "seed": "sampling seed (also lm-eval's seeds for `lm_eval:` tasks)",
    "dtype": "weights and compute dtype: float32, bfloat16 or float16",
    "device": "auto, cpu or cuda",
}
INTERNAL_FIELDS = ("source",)  # set by the loader, not a setting


def _run_flags() -> dict[str, argparse.Action]:
    """``dest`` -> the ``harness run`` argparse action that sets it."""
    from harness.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices["run"]._actions if a.option_strings}


def _type_text(annotation: str) -> str:
    text = str(annotation).replace("typing.", "")
    if text.startswith("tuple[str"):
        return "list of strings (or one comma-separated string)"
    return text.replace(" | None", " or null")


def _default_text(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, tuple):
        return "[" + ", ".join(value) + "]" if value else "[]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def run_config_table() -> str:
    """The markdown table of every RunConfig field (key, type, default, flag, meaning).

    Raises:
        ValueError: a field has neither a ``harness run`` flag with help text nor an
            entry in :data:`MEANINGS_WITHOUT_HELP`.
    """
    from harness.run.config import RunConfig

    flags = _run_flags()
    rows = ["| key | type | default | flag | meaning |", "|---|---|---|---|---|"]
    for f in fields(RunConfig):
        if f.name in INTERNAL_FIELDS:
            continue
        default = f.default if f.default is not MISSING else (f.default_factory() if f.default_factory is not MISSING
                                                               else None)
        action = flags.get(f.name)
        flag = f"`{max(action.option_strings, key=len)}`" if action else "(YAML only)"
        meaning = MEANINGS_WITHOUT_HELP.get(f.name) or (action.help if action is not None else None)
        if not meaning:
            raise ValueError(f"RunConfig.{f.name}: no `harness run` flag with help text and no MEANINGS_WITHOUT_HELP entry; "
                             f"add one to harness/doc_tables.py")
        if action is not None and action.choices and not all(str(c) in meaning for c in action.choices):
            meaning = f"{meaning} (one of {', '.join(map(str, action.choices))})"
        rows.append(f"| `{f.name}` | {_cell(_type_text(f.type))} | `{_default_text(default)}` | {flag} | "
                    f"{_cell(meaning)} |")
    return "\n".join(rows)


def metric_names_table() -> str:
    """The markdown table of every registered metric name, each once."""
    from harness.metrics.names import METRIC_NAMES

    rows = ["| metric | written by | `n` counts | per-sample rows | meaning |", "|---|---|---|---|---|"]
    for e in METRIC_NAMES.values():
        rows.append(f"| `{e.name}` | {e.producer} | {e.unit} | {'yes' if e.per_sample else 'no'} | {_cell(e.meaning)} |")
    return "\n".join(rows)


SECTIONS: dict[str, dict[str, Callable[[], str]]] = {
    "docs/run-config.md": {"run-config-fields": run_config_table},
    "docs/results-tables.md": {"metric-names": metric_names_table},
}


def replace_section(text: str, name: str, body: str) -> str:
    """``text`` with the body between the markers of section ``name`` replaced by ``body``."""
    pattern = re.compile(rf"(<!-- generated:{re.escape(name)} -->\n)(?:.*?\n)?(<!-- end generated:{re.escape(name)} -->)",
                         re.S)
    if not pattern.search(text):
        raise ValueError(f"no <!-- generated:{name} --> ... <!-- end generated:{name} --> markers")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text, count=1)


def stale_sections(root: Path = REPO) -> list[str]:
    """``path#section`` of every generated section whose text differs from the code's."""
    stale = []
    for rel, sections in SECTIONS.items():
        text = (root / rel).read_text()
        for name, make in sections.items():
            if replace_section(text, name, make()) != text:
                stale.append(f"{rel}#{name}")
    return stale


def write_sections(root: Path = REPO) -> list[str]:
    """Regenerate every section in place; returns the files changed."""
    changed = []
    for rel, sections in SECTIONS.items():
        path = root / rel
        text = new = path.read_text()
        for name, make in sections.items():
            new = replace_section(new, name, make())
        if new != text:
            path.write_text(new)
            changed.append(rel)
    return changed


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.doc_tables [--check]``."""
    p = argparse.ArgumentParser(prog="python -m harness.doc_tables", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="exit 1 listing stale sections instead of writing")
    args = p.parse_args(argv)
    if args.check:
        stale = stale_sections()
        for s in stale:
            print(f"stale: {s} (run python -m harness.doc_tables)", file=sys.stderr)
        return 1 if stale else 0
    for rel in write_sections():
        print(f"updated {rel}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
