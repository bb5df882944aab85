"""``Task``: a loaded task that turns its rows into :class:`~harness.records.PromptItem` s.

A task is built from a :class:`~harness.tasks.spec.TaskSpec` (YAML), from in-memory rows
(:meth:`Task.from_rows`, Python-registered tasks) or from a ``--prompts FILE.jsonl``
(:func:`load_prompt_file`). Rows are read only when :meth:`Task.items` is called.

Example:
    >>> task = Task.from_rows("demo", [{"id": 7, "instruction": "Name a colour."}])
    >>> [(i.sample_id, i.instruction) for i in task.items()]
    [('7', 'Name a colour.')]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, did_you_mean
from harness.records import PromptItem
from harness.tasks.data import Rows, load_rows, read_jsonl, to_json
from harness.tasks.spec import TaskSpec, is_template
from harness.tasks.yaml_loader import FunctionRef, where


@dataclass(frozen=True)
class Task:
    """A task ready to produce prompts.

    Attributes:
        name: task name (``prompts`` for ``--prompts``).
        version: ``metadata.version`` as a string.
        source: the YAML or prompt file (``None`` for in-memory rows).
        domain: one of the paper's domains for style-leak metrics, or ``None``.
        prompt_format: ``tulu``, ``hf`` or ``None`` (the run's default).
        generation_kwargs: ``max_gen_toks``, ``until``, ``do_sample``, ``temperature``, ``top_p``.
        metric_list: lm-eval style ``{metric, aggregation, higher_is_better}`` entries.
        spec: the spec it came from, or ``None``.
        data_path: the ``--data`` file replacing the spec's dataset, if any.
        doc_to_text: column, ``{{col}}`` template or ``!function`` giving the instruction.
        id_field: column used as ``sample_id`` (``None``: ``id`` if present, else row index).
        reference_field: column with a reference answer, or ``None``.
        rows: in-memory rows (:meth:`from_rows`); ``loader``: a callable reading them lazily.
    """

    name: str
    version: str = "0"
    source: Path | None = None
    domain: str | None = None
    prompt_format: str | None = None
    generation_kwargs: Mapping[str, Any] = field(default_factory=dict)
    metric_list: tuple[Mapping[str, Any], ...] = ()
    spec: TaskSpec | None = None
    data_path: Path | None = None
    doc_to_text: str | FunctionRef = "instruction"
    id_field: str | None = None
    reference_field: str | None = None
    rows: Rows | None = field(default=None, repr=False, compare=False)
    loader: Callable[[], Rows] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_spec(cls, spec: TaskSpec, data_path: Path | None = None) -> Task:
        """A task reading the rows ``spec`` describes (or the ``--data`` file ``data_path``)."""
        return cls(name=spec.task, version=spec.version, source=spec.source, domain=spec.domain,
                   prompt_format=spec.prompt_format, generation_kwargs=dict(spec.generation_kwargs),
                   metric_list=spec.metric_list, spec=spec,
                   data_path=Path(data_path) if data_path is not None else None,
                   doc_to_text=spec.doc_to_text, id_field=spec.id_field,
                   reference_field=spec.reference_field)

    @classmethod
    def from_rows(cls, name: str, rows: Sequence[Mapping[str, Any]], *, version: str = "1",
                  locs: Sequence[str] | None = None, source: Path | None = None,
                  **kwargs: Any) -> Task:
        """A task over in-memory rows (for Python-registered tasks).

        Args:
            name: task name.
            rows: one mapping per document.
            version: task version string.
            locs: per-row locations for messages (default ``<name> row N``).
            source: the file the rows came from, if any.
            **kwargs: any other :class:`Task` field (``doc_to_text``, ``id_field``, ...).
        """
        rows = [dict(r) for r in rows]
        locs = list(locs) if locs is not None else [f"{name} row {i}" for i in range(len(rows))]
        origin = str(source) if source is not None else f"<{name} rows>"
        return cls(name=name, version=str(version), source=source,
                   rows=Rows.build(rows, locs, origin), **kwargs)

    def with_data(self, path: Path) -> Task:
        """This task reading ``path`` (``--data NAME=PATH``) instead of its own data."""
        if self.spec is None:
            raise HarnessError(f"--data {self.name}={path}: task '{self.name}' is built in Python "
                               "and does not take --data")
        return dataclasses.replace(self, data_path=Path(path), rows=None)

    # -- rows -----------------------------------------------------------------------------
    def docs(self) -> Rows:
        """The task's rows (after ``process_docs``), read now."""
        if self.rows is not None:
            return self.rows
        if self.loader is not None:
            return self.loader()
        if self.spec is None:
            raise HarnessError(f"task '{self.name}' has neither rows nor a spec")
        rows = load_rows(self.spec, self.data_path, self.name)
        if self.spec.process_docs is not None:
            new = self.spec.process_docs.resolve()(list(rows.rows))
            if not isinstance(new, list) or not all(isinstance(r, dict) for r in new):
                raise self.spec.error("process_docs", "must return a list of dicts")
            locs = list(rows.locs) if len(new) == len(rows.rows) else \
                [f"{rows.origin} (after process_docs) row {i}" for i in range(len(new))]
            rows = Rows.build(new, locs, rows.origin)
        return rows

    def _field_error(self, key: str, message: str) -> HarnessError:
        if self.spec is not None and key in self.spec.origins:
            return self.spec.error(key, message)
        return HarnessError(f"{where(self.source) if self.source else self.name}: {key}: {message}")

    def _check_column(self, key: str, column: str, rows: Rows) -> None:
        if column not in rows.columns:
            cols = ", ".join(rows.columns) or "none"
            raise self._field_error(key, f"unknown column '{column}' in {where(rows.origin)} "
                                         f"(columns: {cols}){did_you_mean(column, rows.columns)}")

    def items(self, limit: int | None = None) -> list[PromptItem]:
        """The task's prompts, first ``limit`` rows when given.

        Args:
            limit: a positive number of rows, or ``None`` for all.

        Returns:
            One :class:`PromptItem` per row: ``sample_id`` from ``id_field`` (as ``str``),
            the rendered instruction, the row as JSON, and the reference if configured.

        Raises:
            HarnessError: ``limit`` <= 0, unknown columns, bad rows, duplicate sample ids.
        """
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
            raise HarnessError(f"limit: expected a positive integer or None, got {limit!r}")
        rows = self.docs()
        if not rows.rows:
            raise HarnessError(f"{where(rows.origin)}: task '{self.name}' has no rows")
        render = self._renderer(rows)
        id_field = self.id_field
        if id_field is not None:
            self._check_column("id_field", id_field, rows)
        elif "id" in rows.columns:
            id_field = "id"
        if self.reference_field is not None:
            self._check_column("reference_field", self.reference_field, rows)
        target = self.spec.doc_to_target if self.spec is not None else None
        if isinstance(target, str):
            for column in _template_columns(target) if is_template(target) else [target]:
                self._check_column("doc_to_target", column, rows)
        items: list[PromptItem] = []
        seen: dict[str, str] = {}
        count = len(rows.rows) if limit is None else min(limit, len(rows.rows))
        for index in range(count):
            row, loc = rows.rows[index], rows.locs[index]
            sample_id = str(index) if id_field is None else _sample_id(row, id_field, loc)
            if sample_id in seen:
                raise HarnessError(f"{loc}: {id_field}: duplicate sample id '{sample_id}' "
                                   f"(first at {seen[sample_id]})")
            seen[sample_id] = loc
            reference = None
            if self.reference_field is not None:
                reference = row.get(self.reference_field)
                if reference is not None and not isinstance(reference, str):
                    raise HarnessError(f"{loc}: {self.reference_field}: expected text, "
                                       f"got {type(reference).__name__}")
            items.append(PromptItem(task=self.name, task_version=self.version, sample_id=sample_id,
                                    instruction=render(row, loc), doc_json=to_json(row, loc),
                                    reference=reference, domain=self.domain))
        return items

    def _renderer(self, rows: Rows):
        text = self.doc_to_text
        if isinstance(text, FunctionRef):
            fn = text.resolve()

            def render_fn(row: dict, loc: str) -> str:
                return _as_text(fn(row), loc, str(text))
            return render_fn
        if is_template(text):
            import jinja2

            env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
            for column in _template_columns(text):
                self._check_column("doc_to_text", column, rows)
            template = env.from_string(text)

            def render_template(row: dict, loc: str) -> str:
                try:
                    return _as_text(template.render(**row), loc, "doc_to_text")
                except jinja2.UndefinedError as exc:
                    raise HarnessError(f"{loc}: doc_to_text: {exc.message}") from None
            return render_template
        self._check_column("doc_to_text", text, rows)

        def render_column(row: dict, loc: str) -> str:
            if text not in row:
                raise HarnessError(f"{loc}: doc_to_text: row has no column '{text}'")
            return _as_text(row[text], loc, f"doc_to_text: column '{text}'")
        return render_column


def _template_columns(template: str) -> list[str]:
    """Top-level names a Jinja2 template reads (``"{{a}} {{b.c}}"`` -> ``['a', 'b']``)."""
    import jinja2
    import jinja2.meta

    return sorted(jinja2.meta.find_undeclared_variables(jinja2.Environment().parse(template)))


def _as_text(value: Any, loc: str, what: str) -> str:
    if not isinstance(value, str):
        raise HarnessError(f"{loc}: {what}: expected text, got {type(value).__name__}")
    if not value.strip():
        raise HarnessError(f"{loc}: {what}: empty instruction")
    return value


def _sample_id(row: Mapping[str, Any], id_field: str, loc: str) -> str:
    if id_field not in row or row[id_field] is None:
        raise HarnessError(f"{loc}: {id_field}: row has no id")
    value = row[id_field]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise HarnessError(f"{loc}: {id_field}: expected a string or number id, got {type(value).__name__}")
    return str(value)


def load_prompt_file(path: Path) -> Task:
    """Load ``--prompts FILE.jsonl``: one object per line with ``instruction`` and optional ``id``.

    The task is named ``prompts`` with version ``"1"``; ``sample_id`` is the row's ``id`` when
    given, else its 0-based row index.

    Raises:
        HarnessError: ``FILE:LINE: ...`` for malformed JSON or a missing ``instruction``.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "p.jsonl"
        >>> _ = p.write_text('{"instruction": "Say hi."}\\n{"id": "q2", "instruction": "Count to 3."}\\n')
        >>> [i.sample_id for i in load_prompt_file(p).items()]
        ['0', 'q2']
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise HarnessError(f"--prompts {path}: no such file")
    rows = read_jsonl(path)
    for row, loc in zip(rows.rows, rows.locs, strict=True):
        if "instruction" not in row:
            raise HarnessError(f"{loc}: instruction: missing (each line needs an 'instruction' field)")
        if not isinstance(row["instruction"], str) or not row["instruction"].strip():
            raise HarnessError(f"{loc}: instruction: expected non-empty text, got {row['instruction']!r}")
    if not rows.rows:
        raise HarnessError(f"{where(path)}: no prompts in file")
    with_id = sum("id" in r for r in rows.rows)
    fixed = list(rows.rows)
    if 0 < with_id < len(fixed):  # mixed: rows without an id get their row index
        fixed = [r if "id" in r else {**r, "id": str(i)} for i, r in enumerate(fixed)]
    return Task.from_rows("prompts", fixed, version="1", locs=rows.locs, source=path)
