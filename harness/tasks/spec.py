"""``TaskSpec``: one task's declarative description, lm-eval compatible where the keys overlap.

A spec says where the rows come from (``dataset_path``), how a row becomes an
instruction (``doc_to_text``), how to decode (``generation_kwargs``) and what to score
(``metric_list``), plus harness fields: ``prompt_format``, ``domain``, ``id_field`` and
``reference_field``. Every check raises :class:`~harness.errors.HarnessError` as
``file:line: field: message``.

Note:
    ``doc_to_text`` / ``doc_to_target`` have one rule, not a guess: a string containing
    ``{{`` or ``{%`` is a Jinja2 template, any other string is a column name.

Example:
    >>> spec = TaskSpec.from_dict({"task": "demo", "doc_to_text": "{{instruction}}",
    ...                            "metadata": {"version": 2}})
    >>> spec.version, spec.text_is_template
    ('2', True)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, did_you_mean
from harness.metrics.domains import STYLE_DOMAINS
from harness.prompts import FORMATS
from harness.tasks.yaml_loader import FunctionRef, LineDict, load_yaml, where

PROMPT_FORMATS = FORMATS
LOCAL_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
BUILDERS = ("json", "csv", "parquet")
AGGREGATIONS = ("mean", "median", "nanmean", "bypass", "perplexity", "weighted_perplexity",
                "bits_per_byte", "f1", "matthews_corrcoef", "bleu", "chrf", "chrf++", "ter",
                "brier_score")
GENERATION_KEYS = ("max_gen_toks", "until", "do_sample", "temperature", "top_p")
LOCAL_DATASET_KWARGS = ("data_files", "field", "delimiter")

# lm-eval keys that parse but that this generation-only, zero-shot harness cannot honour.
UNSUPPORTED_LM_EVAL_KEYS = (
    "description", "doc_to_choice", "filter_list", "fewshot_config", "use_prompt",
    "target_delimiter", "fewshot_delimiter", "gen_prefix", "doc_to_image", "doc_to_audio",
    "unsafe_code", "custom_dataset", "doc_to_decontamination_query", "should_decontaminate",
)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def is_template(value: Any) -> bool:
    """``True`` when ``value`` is a Jinja2 template rather than a column name.

    >>> is_template("{{prompt}}"), is_template("prompt")
    (True, False)
    """
    return isinstance(value, str) and ("{{" in value or "{%" in value)


@dataclass(frozen=True)
class TaskSpec:
    """A validated task description (build with :meth:`from_yaml` or :meth:`from_dict`).

    Attributes:
        task: the task name, ``[A-Za-z0-9][A-Za-z0-9_.-]*``.
        doc_to_text: a column name, a ``{{col}}`` template, or a ``!function``.
        source: the YAML file (``None`` for specs built in Python).
        dataset_path: ``json``/``csv``/``parquet`` (with ``dataset_kwargs.data_files``), a
            local ``.jsonl/.json/.csv/.parquet`` file (relative to the YAML), a hub id, or
            ``None`` when the data must come from ``--data NAME=PATH``.
        version: ``metadata.version`` as a string (``"0"`` when absent).
        generation_kwargs: any of ``max_gen_toks``, ``until``, ``do_sample``,
            ``temperature``, ``top_p``.
        id_field: column used as ``sample_id``; ``None`` means ``id`` when rows have it,
            else the 0-based row index.
        reference_field: column holding a reference answer, or ``None``.
        origins: ``key -> (file, line)`` for messages; not part of equality.
    """

    task: str
    doc_to_text: str | FunctionRef
    source: Path | None = None
    task_alias: str | None = None
    dataset_path: str | None = None
    dataset_name: str | None = None
    dataset_kwargs: Mapping[str, Any] = field(default_factory=dict)
    test_split: str | None = None
    validation_split: str | None = None
    training_split: str | None = None
    fewshot_split: str | None = None
    doc_to_target: str | int | FunctionRef | None = None
    process_docs: FunctionRef | None = None
    process_results: FunctionRef | None = None
    output_type: str = "generate_until"
    num_fewshot: int = 0
    repeats: int = 1
    generation_kwargs: Mapping[str, Any] = field(default_factory=dict)
    metric_list: tuple[Mapping[str, Any], ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    version: str = "0"
    tag: tuple[str, ...] = ()
    group: tuple[str, ...] = ()
    prompt_format: str | None = None
    domain: str | None = None
    id_field: str | None = None
    reference_field: str | None = None
    origins: Mapping[str, tuple[Path | None, int | None]] = field(
        default_factory=dict, compare=False, repr=False)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path: Path, trusted_dirs: tuple[Path, ...] = ()) -> TaskSpec:
        """Load, merge includes, and validate one task YAML (``!function`` only if trusted)."""
        return cls.from_dict(load_yaml(Path(path), trusted_dirs), source=Path(path))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: Path | None = None) -> TaskSpec:
        """Validate a mapping of YAML keys (unknown keys are errors with a did-you-mean)."""
        origins = dict(raw.origins) if isinstance(raw, LineDict) else {}

        def loc(key: str) -> str:
            path, line = origins.get(key, (source, None))
            return where(path, line)

        known = {f.name for f in fields(cls)} - {"source", "origins", "version"}
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            if key in UNSUPPORTED_LM_EVAL_KEYS:
                raise HarnessError(f"{loc(key)}: {key}: lm-eval key not supported here "
                                   "(harness tasks are zero-shot generation)")
            if key not in known:
                raise HarnessError(f"{loc(key)}: {key}: unknown key{did_you_mean(str(key), sorted(known))}")
            kwargs[key] = value
        if "task" not in kwargs:
            raise HarnessError(f"{where(source, 1)}: task: required (the task's name)")
        if "doc_to_text" not in kwargs:
            raise HarnessError(f"{where(source, 1)}: doc_to_text: required (a column such as "
                               "'instruction' or a template such as '{{instruction}}')")
        metadata = kwargs.get("metadata") or {}
        if not isinstance(metadata, Mapping):
            raise HarnessError(f"{loc('metadata')}: metadata: expected a mapping, got {metadata!r}")
        if "version" in metadata:
            nested = metadata.origins.get("version") if isinstance(metadata, LineDict) else None
            origins["version"] = nested or origins.get("metadata", (source, None))
            kwargs["version"] = metadata["version"]
        for key in ("tag", "group"):
            if isinstance(kwargs.get(key), str):
                kwargs[key] = (kwargs[key],)
            elif isinstance(kwargs.get(key), list):
                kwargs[key] = tuple(kwargs[key])
        if isinstance(kwargs.get("metric_list"), list):
            kwargs["metric_list"] = tuple(kwargs["metric_list"])
        if source is not None:  # relative paths are relative to the YAML that wrote them
            kwargs = _resolve_paths(kwargs, {k: Path(origins.get(k, (source,))[0] or source).parent
                                             for k in ("dataset_path", "dataset_kwargs")})
        return cls(**kwargs, source=source, origins=origins)

    def __post_init__(self) -> None:
        _validate(self)

    # -- helpers ------------------------------------------------------------------------
    def where(self, key: str) -> str:
        """``file:line`` of ``key`` (just the file when unknown)."""
        path, line = self.origins.get(key, (self.source, None))
        return where(path, line)

    def error(self, key: str, message: str) -> HarnessError:
        """A ``HarnessError`` reading ``file:line: key: message``."""
        return HarnessError(f"{self.where(key)}: {key}: {message}")

    @property
    def text_is_template(self) -> bool:
        return is_template(self.doc_to_text)

    @property
    def data_kind(self) -> str:
        """``"none"`` (needs ``--data``), ``"builder"``, ``"file"`` or ``"hub"``."""
        if self.dataset_path is None:
            return "none"
        if self.dataset_path in BUILDERS:
            return "builder"
        if self.dataset_path.lower().endswith(LOCAL_SUFFIXES) or Path(self.dataset_path).is_absolute():
            return "file"
        return "hub"

    def as_dict(self) -> dict[str, Any]:
        """Plain data for display (``tasks show``): paths and ``!function`` as strings."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "origins":
                continue
            out[f.name] = _plain(getattr(self, f.name))
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, FunctionRef):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _resolve_paths(kwargs: dict[str, Any], bases: Mapping[str, Path]) -> dict[str, Any]:
    path = kwargs.get("dataset_path")
    if isinstance(path, str) and path.lower().endswith(LOCAL_SUFFIXES):
        full = Path(path).expanduser()
        kwargs["dataset_path"] = str(full if full.is_absolute() else (bases["dataset_path"] / full).resolve())
    base = bases["dataset_kwargs"]
    dkw = kwargs.get("dataset_kwargs")
    if isinstance(dkw, Mapping) and "data_files" in dkw:
        def fix(p: Any) -> Any:
            if not isinstance(p, str) or "://" in p:
                return p
            full = Path(p).expanduser()
            return str(full if full.is_absolute() else (base / full).resolve())
        files = dkw["data_files"]
        if isinstance(files, Mapping):
            files = {k: [fix(p) for p in v] if isinstance(v, list) else fix(v) for k, v in files.items()}
        elif isinstance(files, list):
            files = [fix(p) for p in files]
        else:
            files = fix(files)
        new = LineDict(dkw)
        new.origins = dict(getattr(dkw, "origins", {}))
        new.file = getattr(dkw, "file", None)
        new["data_files"] = files
        kwargs["dataset_kwargs"] = new
    return kwargs


def _where_in(container: Any, key: Any, fallback: str) -> str:
    if isinstance(container, LineDict) and key in container.origins:
        return container.where(key)
    return fallback


def _validate(spec: TaskSpec) -> None:
    err = spec.error
    if not isinstance(spec.task, str) or not _NAME_RE.match(spec.task):
        raise err("task", f"invalid name {spec.task!r}: use letters, digits, '-', '_' or '.'")
    for key in ("task_alias", "dataset_name", "test_split", "validation_split", "training_split",
                "fewshot_split", "id_field", "reference_field"):
        value = getattr(spec, key)
        if value is not None and (not isinstance(value, str) or not value):
            raise err(key, f"expected a non-empty string, got {value!r}")
    object.__setattr__(spec, "version", _version(spec))
    _check_text_field(spec, "doc_to_text", spec.doc_to_text, allow_int=False)
    if spec.doc_to_target is not None:
        _check_text_field(spec, "doc_to_target", spec.doc_to_target, allow_int=True)
    for key in ("process_docs", "process_results"):
        value = getattr(spec, key)
        if value is not None and not isinstance(value, FunctionRef):
            raise err(key, f"expected '!function module.name', got {value!r}")
    if spec.dataset_path is not None and (not isinstance(spec.dataset_path, str) or not spec.dataset_path):
        raise err("dataset_path", f"expected a builder (json, csv, parquet), a file or a hub id, got {spec.dataset_path!r}")
    if not isinstance(spec.dataset_kwargs, Mapping):
        raise err("dataset_kwargs", f"expected a mapping, got {spec.dataset_kwargs!r}")
    if spec.data_kind == "builder" and "data_files" not in spec.dataset_kwargs:
        raise err("dataset_path", f"'{spec.dataset_path}' needs dataset_kwargs.data_files")
    if spec.data_kind in ("builder", "file"):
        for key in spec.dataset_kwargs:
            if key not in LOCAL_DATASET_KWARGS:
                raise HarnessError(f"{_where_in(spec.dataset_kwargs, key, spec.where('dataset_kwargs'))}: "
                                   f"dataset_kwargs.{key}: not supported for local files "
                                   f"(supported: {', '.join(LOCAL_DATASET_KWARGS)})")
    if spec.output_type != "generate_until":
        raise err("output_type", f"only 'generate_until' is supported, got {spec.output_type!r}")
    if spec.num_fewshot not in (0, None):
        raise err("num_fewshot", f"only 0 is supported (base models are prompted zero-shot), got {spec.num_fewshot!r}")
    if spec.repeats != 1:
        raise err("repeats", f"only 1 is supported, got {spec.repeats!r}")
    if spec.prompt_format is not None and spec.prompt_format not in PROMPT_FORMATS:
        raise err("prompt_format", f"unknown {spec.prompt_format!r}{did_you_mean(str(spec.prompt_format), PROMPT_FORMATS)}; "
                  f"use one of {', '.join(PROMPT_FORMATS)} or null")
    if spec.domain is not None and spec.domain not in STYLE_DOMAINS:
        raise err("domain", f"unknown {spec.domain!r}{did_you_mean(str(spec.domain), STYLE_DOMAINS)}; "
                  f"use one of {', '.join(STYLE_DOMAINS)} or null")
    for key in ("tag", "group"):
        value = getattr(spec, key)
        if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
            raise err(key, f"expected a name or a list of names, got {value!r}")
    _check_generation_kwargs(spec)
    _check_metric_list(spec)


def _version(spec: TaskSpec) -> str:
    value = spec.version
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise spec.error("version", f"metadata.version: expected a number or string, got {value!r}")
    return str(value)


def _check_text_field(spec: TaskSpec, key: str, value: Any, *, allow_int: bool) -> None:
    if isinstance(value, FunctionRef):
        return
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        return
    if not isinstance(value, str) or not value.strip():
        raise spec.error(key, f"expected a column name, a '{{{{col}}}}' template or a !function, got {value!r}")
    if is_template(value):
        import jinja2  # lazy: only specs with templates pay for it

        try:
            jinja2.Environment().parse(value)
        except jinja2.TemplateSyntaxError as exc:
            raise spec.error(key, f"invalid template: {exc.message}") from None


def _check_generation_kwargs(spec: TaskSpec) -> None:
    gk = spec.generation_kwargs
    if not isinstance(gk, Mapping):
        raise spec.error("generation_kwargs", f"expected a mapping, got {gk!r}")
    fixed = dict(gk)
    for key, value in gk.items():
        loc = _where_in(gk, key, spec.where("generation_kwargs"))
        bad = f"{loc}: generation_kwargs.{key}: "
        if key not in GENERATION_KEYS:
            raise HarnessError(bad + f"unknown key{did_you_mean(str(key), GENERATION_KEYS)}; "
                               f"known: {', '.join(GENERATION_KEYS)}")
        if key == "max_gen_toks" and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise HarnessError(bad + f"expected a positive integer, got {value!r}")
        if key == "until":
            value = [value] if isinstance(value, str) else value
            if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
                raise HarnessError(bad + f"expected a string or a list of non-empty strings, got {gk[key]!r}")
            fixed[key] = list(value)
        if key == "do_sample" and not isinstance(value, bool):
            raise HarnessError(bad + f"expected true or false, got {value!r}")
        if key in ("temperature", "top_p"):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise HarnessError(bad + f"expected a number >= 0, got {value!r}")
            if key == "top_p" and not 0 < value <= 1:
                raise HarnessError(bad + f"expected 0 < top_p <= 1, got {value!r}")
    object.__setattr__(spec, "generation_kwargs", fixed)


def _check_metric_list(spec: TaskSpec) -> None:
    if not isinstance(spec.metric_list, tuple):
        raise spec.error("metric_list", f"expected a list of {{metric: ...}} entries, got {spec.metric_list!r}")
    for i, entry in enumerate(spec.metric_list):
        name = f"metric_list[{i}]"
        if not isinstance(entry, Mapping):
            raise spec.error("metric_list", f"{name}: expected a mapping with 'metric', got {entry!r}")
        if "metric" not in entry:
            raise HarnessError(f"{spec.where('metric_list')}: {name}.metric: required")
        metric = entry["metric"]
        if not (isinstance(metric, FunctionRef) or (isinstance(metric, str) and metric)):
            raise HarnessError(f"{_where_in(entry, 'metric', spec.where('metric_list'))}: {name}.metric: "
                               f"expected a name or !function, got {metric!r}")
        agg = entry.get("aggregation")
        if agg is not None and not isinstance(agg, FunctionRef) and agg not in AGGREGATIONS:
            raise HarnessError(f"{_where_in(entry, 'aggregation', spec.where('metric_list'))}: "
                               f"{name}.aggregation: unknown {agg!r}{did_you_mean(str(agg), AGGREGATIONS)}")
        hib = entry.get("higher_is_better")
        if hib is not None and not isinstance(hib, bool):
            raise HarnessError(f"{_where_in(entry, 'higher_is_better', spec.where('metric_list'))}: "
                               f"{name}.higher_is_better: expected true or false, got {hib!r}")
