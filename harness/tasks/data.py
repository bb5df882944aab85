"""Read a task's rows: local JSON lines / JSON / CSV / Parquet with plain Python and pyarrow,
hub datasets through ``datasets.load_dataset`` only when online.

Every row keeps a location (``file:line`` for JSON lines and CSV, ``file: row N``
otherwise) so a bad row can be named in a one-line error.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.jsonl"
    >>> _ = p.write_text('{"id": "a", "instruction": "Hi"}\\n')
    >>> rows = read_local(p)
    >>> rows.rows[0]["instruction"], rows.locs[0].endswith("x.jsonl:1")
    ('Hi', True)
"""

from __future__ import annotations

import glob
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.offline import hub_offline
from harness.tasks.spec import LOCAL_SUFFIXES, TaskSpec
from harness.tasks.yaml_loader import where

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rows:
    """Loaded rows with a location per row and the union of their columns.

    Attributes:
        rows: one dict per document.
        locs: ``file:line`` (or ``file: row N``) for each row, same length as ``rows``.
        columns: every key seen, in first-seen order.
        origin: where the rows came from, for messages (a file or a hub id).
    """

    rows: tuple[dict, ...]
    locs: tuple[str, ...]
    columns: tuple[str, ...]
    origin: str

    @classmethod
    def build(cls, rows: list[dict], locs: list[str], origin: str) -> Rows:
        seen: dict[str, None] = {}
        for row in rows:
            for key in row:
                seen.setdefault(key, None)
        return cls(tuple(rows), tuple(locs), tuple(seen), origin)


def read_jsonl(path: Path) -> Rows:
    """Read one JSON object per line (blank lines skipped); bad lines raise ``file:line``."""
    rows, locs = [], []
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                loc = where(path, lineno)
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise HarnessError(f"{loc}: malformed JSON: {exc.msg} (column {exc.colno})") from None
                if not isinstance(row, dict):
                    raise HarnessError(f"{loc}: expected a JSON object per line, got {type(row).__name__}")
                rows.append(row)
                locs.append(loc)
    except UnicodeDecodeError as exc:
        raise HarnessError(f"{where(path)}: not UTF-8 text: {exc}") from None
    return Rows.build(rows, locs, str(path))


def _read_json(path: Path, field: str | None) -> Rows:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # JSON lines in a .json file, as datasets' json builder allows
            return read_jsonl(path)
        raise HarnessError(f"{where(path, exc.lineno)}: malformed JSON: {exc.msg} (column {exc.colno})") from None
    if field is not None:
        if not isinstance(data, dict) or field not in data:
            raise HarnessError(f"{where(path)}: dataset_kwargs.field: no top-level key '{field}'")
        data = data[field]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise HarnessError(f"{where(path)}: expected a JSON list of objects (or JSON lines)")
    return Rows.build(data, [f"{where(path)}: row {i}" for i in range(len(data))], str(path))


def _read_csv(path: Path, delimiter: str | None) -> Rows:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    parse = pacsv.ParseOptions(delimiter=delimiter) if delimiter else pacsv.ParseOptions()
    try:
        table = pacsv.read_csv(path, parse_options=parse)
    except pa.ArrowInvalid as exc:
        raise HarnessError(f"{where(path)}: malformed CSV: {exc}") from None
    rows = table.to_pylist()
    # Line numbers assume no quoted newlines; good enough to find the row.
    return Rows.build(rows, [where(path, i + 2) for i in range(len(rows))], str(path))


def _read_parquet(path: Path) -> Rows:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except (pa.ArrowInvalid, OSError) as exc:
        raise HarnessError(f"{where(path)}: unreadable Parquet: {exc}") from None
    return Rows.build(rows, [f"{where(path)}: row {i}" for i in range(len(rows))], str(path))


def read_local(path: Path, fmt: str | None = None, *, field: str | None = None,
               delimiter: str | None = None) -> Rows:
    """Read a local data file; ``fmt`` (``json``/``csv``/``parquet``) defaults from the suffix.

    Raises:
        HarnessError: for a missing file, an unsupported suffix, or a malformed row.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise HarnessError(f"{where(path)}: no such data file")
    suffix = path.suffix.lower()
    if fmt is None:
        if suffix not in LOCAL_SUFFIXES:
            raise HarnessError(f"{where(path)}: unsupported data file type '{suffix}' "
                               f"(use {', '.join(LOCAL_SUFFIXES)})")
        fmt = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}[suffix]
    if fmt == "json":
        rows = read_jsonl(path) if suffix == ".jsonl" else _read_json(path, field)
    elif fmt == "csv":
        rows = _read_csv(path, delimiter)
    else:
        rows = _read_parquet(path)
    log.debug("read %d rows (%s) from %s", len(rows.rows), fmt, path)
    return rows


def _concat(parts: list[Rows], origin: str) -> Rows:
    rows = [r for p in parts for r in p.rows]
    locs = [loc for p in parts for loc in p.locs]
    return Rows.build(rows, locs, origin)


def _split(spec: TaskSpec) -> str | None:
    return spec.test_split or spec.validation_split


def _builder_files(spec: TaskSpec) -> list[Path]:
    files = spec.dataset_kwargs["data_files"]
    if isinstance(files, Mapping):
        split = _split(spec)
        if split is None and len(files) == 1:
            split = next(iter(files))
        if split is None:
            raise spec.error("test_split", f"required to choose among data_files splits {sorted(files)}")
        if split not in files:
            key = "test_split" if spec.test_split else "validation_split"
            raise spec.error(key, f"split '{split}' is not in dataset_kwargs.data_files "
                                  f"(has: {', '.join(map(str, files))})")
        files = files[split]
    names = files if isinstance(files, list) else [files]
    out: list[Path] = []
    for name in names:
        if not isinstance(name, str):
            raise spec.error("dataset_kwargs", f"data_files: expected paths, got {name!r}")
        matches = sorted(glob.glob(os.path.expanduser(name))) if any(c in name for c in "*?[") else [name]
        if not matches or not Path(matches[0]).is_file():
            raise spec.error("dataset_kwargs", f"data_files: no such file '{name}'")
        out.extend(Path(m) for m in matches)
    return out


def _load_hub(spec: TaskSpec, task_name: str) -> Rows:
    hint = f"pass --data {task_name}=PATH with a local .jsonl/.json/.csv/.parquet copy"
    if hub_offline("datasets"):
        raise spec.error("dataset_path", f"'{spec.dataset_path}' is a Hugging Face hub dataset and the hub "
                                         f"is offline (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE); {hint}")
    split = _split(spec)
    if split is None:
        raise spec.error("test_split", "required for a hub dataset (e.g. test_split: test)")
    import datasets  # lazy: only hub tasks pay for the import

    try:
        ds = datasets.load_dataset(spec.dataset_path, spec.dataset_name, split=split,
                                   **dict(spec.dataset_kwargs))
    except Exception as exc:  # network, auth, missing config: all user-fixable, name them
        raise spec.error("dataset_path", f"cannot load '{spec.dataset_path}' from the hub "
                                         f"({type(exc).__name__}: {exc}); {hint}") from exc
    rows = ds.to_list()
    origin = f"{spec.dataset_path}[{split}]"
    return Rows.build(rows, [f"{origin} row {i}" for i in range(len(rows))], origin)


def load_rows(spec: TaskSpec, data_path: Path | None = None, task_name: str | None = None) -> Rows:
    """Read the rows ``spec`` describes, or the file ``data_path`` given with ``--data``.

    Args:
        spec: a validated spec.
        data_path: a local file replacing the spec's dataset (``--data NAME=PATH``).
        task_name: the name to suggest in ``--data NAME=PATH`` hints (default: ``spec.task``).

    Raises:
        HarnessError: when the data is missing (with the ``--data`` hint), offline, or malformed.
    """
    name = task_name or spec.task
    if data_path is not None:
        path = Path(data_path).expanduser()
        if not path.is_file():
            raise HarnessError(f"--data {name}={data_path}: no such file")
        return read_local(path)
    kind = spec.data_kind
    if kind == "none":
        raise spec.error("dataset_path", f"task '{name}' ships no data; pass --data {name}=PATH "
                                         "(a local .jsonl/.json/.csv/.parquet file)")
    if kind == "hub":
        return _load_hub(spec, name)
    field = spec.dataset_kwargs.get("field")
    delimiter = spec.dataset_kwargs.get("delimiter")
    if kind == "file":
        path = Path(spec.dataset_path).expanduser()
        if not path.is_file():
            raise spec.error("dataset_path", f"no such file '{path}'; pass --data {name}=PATH")
        return read_local(path, field=field, delimiter=delimiter)
    files = _builder_files(spec)
    parts = [read_local(p, spec.dataset_path, field=field, delimiter=delimiter) for p in files]
    return parts[0] if len(parts) == 1 else _concat(parts, ", ".join(map(str, files)))


def cheap_count(spec: TaskSpec) -> int | None:
    """Count a local JSON lines file's non-blank lines without parsing; ``None`` if not cheap."""
    path: Path | None = None
    if spec.data_kind == "file":
        path = Path(spec.dataset_path)
    elif spec.data_kind == "builder":
        files = spec.dataset_kwargs.get("data_files")
        if isinstance(files, Mapping):
            split = _split(spec) or (next(iter(files)) if len(files) == 1 else None)
            files = files.get(split) if split else None
        if isinstance(files, str):
            path = Path(files)
    if path is None or path.suffix.lower() != ".jsonl" or not path.is_file():
        return None
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def to_json(row: Mapping[str, Any], loc: str) -> str:
    """Serialise a row for ``PromptItem.doc_json``; dates become ISO strings, nothing else is guessed."""
    def default(obj: Any) -> Any:
        import datetime
        import decimal

        if isinstance(obj, datetime.date | datetime.time):
            return obj.isoformat()
        if isinstance(obj, decimal.Decimal):
            return str(obj)
        raise TypeError(type(obj).__name__)

    try:
        return json.dumps(row, ensure_ascii=False, default=default)
    except TypeError as exc:
        raise HarnessError(f"{loc}: row holds a value JSON cannot store ({exc})") from None
