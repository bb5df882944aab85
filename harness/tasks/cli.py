"""``harness tasks list | show | validate``: inspect and check task definitions.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="harness"); sub = parser.add_subparsers()
    >>> register(sub)
    >>> args = parser.parse_args(["tasks", "show", "instructions-mini"])
    >>> args.name
    'instructions-mini'
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

import yaml

from harness.cli_util import add_verb
from harness.errors import HarnessError
from harness.tasks.data import cheap_count
from harness.tasks.discovery import ENTRY_POINT_GROUP, ENV_VAR, build_index, resolve_dirs, yaml_files
from harness.tasks.honoured import check_native
from harness.tasks.spec import TaskSpec
from harness.tasks.task import Task
from harness.tasks.yaml_loader import load_yaml, where

_SOURCES = f"""\
Tasks come from the built-in tasks/ directory, each --tasks-dir DIR, the directories in
${ENV_VAR} (separated by '{os.pathsep}'), entry points in the group '{ENTRY_POINT_GROUP}',
and @register_task functions. See docs/tasks.md."""


def _tasks_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks-dir", action="append", default=[], type=Path, metavar="DIR",
                        help="extra directory of task YAML (repeatable); its !function code is allowed")


def _parse_data(values: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise HarnessError(f"--data {value}: expected NAME=PATH, e.g. --data alpaca-eval=alpaca_eval.jsonl")
        out[name] = Path(path)
    return out


def register(subparsers) -> None:
    """Add the ``tasks`` verb and its ``list``, ``show`` and ``validate`` sub-commands."""
    tasks = subparsers.add_parser(
        "tasks", help="list, show and validate tasks",
        description="Inspect the tasks the harness can run.\n\n" + _SOURCES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = tasks.add_subparsers(dest="tasks_verb", metavar="{list,show,validate}", required=True)

    p = add_verb(verbs, "list", "list every visible task", _cmd_list,
                 description="List tasks: name, version, number of docs (when cheap to count; "
                             "'--data' when the\ntask ships no data), domain and source.\n\n" + _SOURCES,
                 epilog="examples:\n  harness tasks list\n  harness tasks list --tasks-dir my_tasks/")
    _tasks_dir_arg(p)

    p = add_verb(verbs, "show", "show a task's resolved spec and first prompts", _cmd_show,
                 description="Print the resolved spec (includes merged, paths absolute) and the first "
                             "3 prompts\nas the model gets them, before the prompt format is applied.",
                 epilog="examples:\n  harness tasks show instructions-mini\n"
                        "  harness tasks show alpaca-eval --data alpaca-eval=alpaca_eval.jsonl")
    p.add_argument("name", help="task name")
    p.add_argument("--data", action="append", default=[], metavar="NAME=PATH",
                   help="read task NAME's rows from a local file (repeatable)")
    p.add_argument("-n", "--num", type=int, default=3, help="prompts to show (default 3)")
    _tasks_dir_arg(p)

    p = add_verb(verbs, "validate", "check task YAML files", _cmd_validate,
                 description="Check task YAML: syntax, keys, values, includes and, when the data is "
                             "local, that\nevery row renders. Exit 0 printing 'ok' per file, or "
                             "exit 2 with one line per\nbroken file: 'file:line: field: message'.\n\n"
                             "!function is allowed only in files inside a named tasks directory\n"
                             "(the built-in tasks/, --tasks-dir, $" + ENV_VAR + ").\n\n"
                             "Fields a native `harness run` would parse but not honour (task_alias,\n"
                             "doc_to_target, training_split, fewshot_split, unknown metric_list names)\n"
                             "are errors unless --lm-eval says the file is run through lm-eval.",
                 epilog="examples:\n  harness tasks validate tasks/\n"
                        "  harness tasks validate my_task.yaml --tasks-dir .\n"
                        "  harness tasks validate tasks/instructions_mini.yaml --lm-eval")
    p.add_argument("path", type=Path, help="a task YAML file or a directory of them")
    p.add_argument("--lm-eval", dest="lm_eval", action="store_true",
                   help="the files run through lm-eval (--tasks lm_eval:NAME): skip the native-run field checks")
    _tasks_dir_arg(p)


def _write(text: str) -> None:
    sys.stdout.write(text + "\n")


def _cmd_list(args: argparse.Namespace) -> int:
    index = build_index(args.tasks_dir)
    rows = [("NAME", "VERSION", "DOCS", "DOMAIN", "SOURCE")]
    for name in sorted(index.entries):
        entry = index.entries[name]
        if entry.spec is not None:
            spec = entry.spec
            docs = cheap_count(spec)
            docs_text = str(docs) if docs is not None else ("--data" if spec.data_kind == "none" else "-")
            rows.append((name, spec.version, docs_text, spec.domain or "-", entry.origin))
        else:
            task = entry.load()
            docs_text = str(len(task.rows.rows)) if task.rows is not None else "-"
            rows.append((name, task.version, docs_text, task.domain or "-", entry.origin))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        _write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[4])
    for problem in index.broken:
        sys.stderr.write(f"broken: {problem}\n")
    return 0


def _describe(task: Task) -> dict:
    if task.spec is not None:
        out = task.spec.as_dict()
    else:
        out = {"task": task.name, "version": task.version, "source": str(task.source),
               "doc_to_text": str(task.doc_to_text), "id_field": task.id_field,
               "reference_field": task.reference_field, "domain": task.domain,
               "generation_kwargs": dict(task.generation_kwargs)}
    if task.data_path is not None:
        out["data (--data)"] = str(task.data_path)
    return {k: v for k, v in out.items() if v not in (None, (), [], {})}


def _cmd_show(args: argparse.Namespace) -> int:
    from harness.tasks.discovery import load_tasks

    if args.num < 1:
        raise HarnessError(f"--num: expected a positive integer, got {args.num}")
    tasks = load_tasks([args.name], args.tasks_dir, _parse_data(args.data))
    if len(tasks) != 1:
        raise HarnessError(f"tasks show {args.name}: a tag of {len(tasks)} tasks "
                           f"({', '.join(t.name for t in tasks)}); show one of them")
    task = tasks[0]
    buf = io.StringIO()
    yaml.safe_dump(_describe(task), buf, sort_keys=False, allow_unicode=True, width=100)
    _write(buf.getvalue().rstrip())
    _write("")
    for item in task.items(limit=args.num):
        ref = f"  [reference: {len(item.reference)} chars]" if item.reference else ""
        _write(f"--- sample_id={item.sample_id}{ref}")
        _write(item.instruction)
    return 0


def _validate_file(path: Path, trusted: list[Path], native: bool = True) -> str | None:
    raw = load_yaml(path, trusted)
    if "task" not in raw:
        return f"ok  {where(path)}  (include-only template)"
    spec = TaskSpec.from_dict(raw, source=path)
    if native:
        check_native(Task.from_spec(spec))  # fields a native run would not honour are errors
    if spec.data_kind in ("none", "hub"):
        why = "needs --data" if spec.data_kind == "none" else "hub dataset"
        return f"ok  {where(path)}  {spec.task}  (data not checked: {why})"
    items = Task.from_spec(spec).items()
    return f"ok  {where(path)}  {spec.task}  {len(items)} docs"


def _cmd_validate(args: argparse.Namespace) -> int:
    path: Path = args.path
    if path.is_dir():
        files = yaml_files(path)
        if not files:
            raise HarnessError(f"{path}: no .yaml files")
    elif path.is_file():
        files = [path]
    else:
        raise HarnessError(f"{path}: no such file or directory")
    trusted, _ = resolve_dirs(args.tasks_dir)
    failed = False
    for file in files:
        try:
            _write(_validate_file(file, trusted, native=not args.lm_eval))
        except HarnessError as exc:
            sys.stderr.write(f"{exc}\n")
            failed = True
    return 2 if failed else 0
