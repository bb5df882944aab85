"""Built-in tasks that need Python rather than YAML.

``implicit-ins-val`` is the paper's 56-instruction validation set: a JSON lines file of
``{"instruction": ...}`` rows plus a separate JSON list of gpt-3.5-turbo references
(``<stem>_refs.json`` next to it), joined here by instruction text. It ships no data:
pass ``--data implicit-ins-val=/path/to/implicit_ins_val.jsonl``.

This module is imported by :func:`harness.tasks.discovery.build_index`, never at
``import harness``.

Example:
    >>> task = implicit_ins_val()
    >>> task.name, task.reference_field
    ('implicit-ins-val', 'reference_output')
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from harness.errors import HarnessError
from harness.tasks.data import Rows, read_jsonl
from harness.tasks.registry import register_task
from harness.tasks.task import Task
from harness.tasks.yaml_loader import where

log = logging.getLogger(__name__)


def _read_refs(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{where(path, exc.lineno)}: malformed JSON: {exc.msg}") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) and "instruction" in r for r in data):
        raise HarnessError(f"{where(path)}: expected a JSON list of objects with 'instruction' and 'output'")
    return {r["instruction"]: r.get("output") for r in data}


def _load_implicit_ins_val(data_path: Path | None) -> Rows:
    if data_path is None:
        raise HarnessError("implicit-ins-val: dataset_path: task ships no data; pass "
                           "--data implicit-ins-val=PATH (implicit_ins_val.jsonl; references are read "
                           "from implicit_ins_val_refs.json next to it)")
    path = Path(data_path).expanduser()
    if not path.is_file():
        raise HarnessError(f"--data implicit-ins-val={data_path}: no such file")
    rows = read_jsonl(path)
    refs_path = path.with_name(f"{path.stem}_refs.json")
    refs = _read_refs(refs_path) if refs_path.is_file() else {}
    if not refs:
        log.info("implicit-ins-val: no %s; items carry no reference answers", refs_path.name)
    joined = [{**row, "reference_output": refs.get(row.get("instruction"))} for row in rows.rows]
    return Rows.build(joined, list(rows.locs), rows.origin)


@register_task("implicit-ins-val")
def implicit_ins_val(data_path: Path | None = None) -> Task:
    """The paper's 56-instruction validation set, references joined from ``<stem>_refs.json``."""
    return Task(name="implicit-ins-val", version="1", source=Path(__file__),
                generation_kwargs={"do_sample": False, "max_gen_toks": 512},
                data_path=Path(data_path) if data_path is not None else None,
                doc_to_text="instruction", reference_field="reference_output",
                loader=lambda: _load_implicit_ins_val(data_path))
