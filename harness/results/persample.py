"""Per-sample metrics that ``compare`` and ``report`` pair by ``(task, sample_id)``.

Two ways a metric plugs in:

1. A **provider**: a function ``samples table -> table`` returning one row per sample row
   (same order), one column per metric, registered with :func:`register_provider` or
   listed lazily as ``"module:function"`` in :data:`PROVIDERS`. The shape flags of
   :func:`harness.metrics.shape.shape_table` come in this way (on by default), and so
   do per-domain style-leak flags ``style_leak_<domain>`` of
   :func:`harness.metrics.style_leak.detect` (only when named, e.g. ``--metric style_leak_gsm``);
   both read the per-row columns stored at commit when present (:mod:`harness.metrics.stored`).
2. **Per-sample metric rows** in the ``metrics`` table: rows with ``sample_id`` set
   (schema v2), e.g. IFEval booleans written by the metrics room. They are picked up by
   name; a metric whose values are all 0/1 counts as boolean. ``details`` JSON may say
   ``{"kind": "bool", "higher_is_better": true}``.

Example:
    >>> import pyarrow as pa
    >>> t = pa.table({"task": ["t"], "sample_id": ["0"], "variant": ["none"], "instruction": ["Write a haiku."],
    ...               "output": ["Write a haiku. Write"], "finish_reason": ["length"], "num_output_tokens": [6]})
    >>> values, infos = per_sample_values(t)
    >>> values.column("echo").to_pylist(), infos["eos"].kind
    ([True], 'bool')
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from harness.errors import HarnessError, did_you_mean
from harness.metrics.domains import STYLE_DOMAINS

KEY_COLUMNS = ("task", "sample_id")


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """What a per-sample metric is and how to read a change in it.

    Attributes:
        name: column / metric name (``eos``).
        kind: ``"bool"`` (rates, McNemar, flips) or ``"number"`` (means).
        higher_is_better: True/False, or None where neither direction is "adherence".
        labels: how a flip prints the (False, True) values, e.g. ``("length", "eos")``.
        description: one line for reports.
    """

    name: str
    kind: str
    higher_is_better: bool | None = None
    labels: tuple[str, str] = ("no", "yes")
    description: str = ""


Provider = Callable[[pa.Table], pa.Table]

SHAPE_METRICS = (
    MetricInfo("eos", "bool", True, ("length", "eos"), "generation ended with the EOS token"),
    MetricInfo("output_tokens", "number", None, description="output length in tokens"),
    MetricInfo("echo", "bool", False, ("no echo", "echo"), "output repeats the instruction or leaks a role tag"),
    MetricInfo("role_tag", "bool", False, ("no tag", "role tag"), "output contains <|user|> or <|assistant|>"),
    MetricInfo("distinct_2", "number", True, description="unique / total whitespace bigrams of the output"),
    MetricInfo("refusal", "bool", None, ("no refusal", "refusal"), "output opens with a refusal phrase"),
)

STYLE_METRICS = tuple(MetricInfo(f"style_leak_{d}", "bool", None, (f"not {d}", f"{d} style"),
                                 f"output shows the {d} finetuning domain's style") for d in STYLE_DOMAINS)


# name -> ("module:function" or callable, metric infos, used when no metric is named);
# imported on first use.
PROVIDERS: dict[str, tuple[str | Provider, tuple[MetricInfo, ...], bool]] = {
    "shape": ("harness.metrics.stored:shape_flags", SHAPE_METRICS, True),
    "style_leak": ("harness.metrics.stored:style_leak_flags", STYLE_METRICS, False),
}


def register_provider(name: str, fn: str | Provider, metrics: tuple[MetricInfo, ...], default: bool = True) -> None:
    """Add a per-sample metric provider (``fn(samples) -> table``, one row per sample row).

    ``default=False`` computes its metrics only when they are asked for by name.

    Example:
        >>> import pyarrow.compute as pc
        >>> register_provider("has_digit", lambda s: pa.table({"has_digit": pc.match_substring_regex(
        ...     pc.fill_null(s.column("output"), ""), "[0-9]")}), (MetricInfo("has_digit", "bool"),))
        >>> "has_digit" in known_metrics()
        True
        >>> _ = PROVIDERS.pop("has_digit")
    """
    PROVIDERS[name] = (fn, tuple(metrics), default)


def _resolve(target: str | Provider) -> Provider | None:
    if callable(target):
        return target
    module, _, attr = target.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return None  # that metrics room is not installed/built
        raise
    return getattr(mod, attr)


def known_metrics() -> dict[str, MetricInfo]:
    """Metric infos of every registered provider, by name (providers not imported)."""
    return {m.name: m for _, infos, _ in PROVIDERS.values() for m in infos}


def default_metrics() -> list[str]:
    """Names computed when no metric is named: those of providers with ``default=True``."""
    return [m.name for _, infos, default in PROVIDERS.values() if default for m in infos]


def _stored_info(name: str, values: list, details: str | None) -> MetricInfo:
    meta = {}
    if details:
        try:
            meta = json.loads(details)
        except ValueError:
            meta = {}
    meta = meta if isinstance(meta, dict) else {}
    kind = meta.get("kind") or ("bool" if all(v in (0, 1) for v in values if v is not None) else "number")
    hib = meta.get("higher_is_better", True if kind == "bool" else None)
    labels = ("fail", "pass") if kind == "bool" else ("no", "yes")
    return MetricInfo(name, "bool" if kind == "bool" else "number", hib, labels, "per-sample rows in metrics")


def stored_label(metric: str, filt: str | None) -> str:
    """How ``compare`` names a stored per-sample metric: the name, plus ``[filter]`` for lm-eval
    filters other than ``none`` (two filters of one measure are two columns).

    >>> stored_label("exact_match", "strict-match"), stored_label("prompt_level_strict_acc", "none")
    ('exact_match[strict-match]', 'prompt_level_strict_acc')
    """
    return metric if filt in (None, "none") else f"{metric}[{filt}]"


def stored_per_sample(metrics: pa.Table | None) -> tuple[dict[str, dict[tuple, float]], dict[str, MetricInfo]]:
    """Per-sample rows of a ``metrics`` table: ``{metric: {(task, sample_id): value}}`` and infos."""
    if metrics is None or metrics.num_rows == 0:
        return {}, {}
    rows = metrics.filter(pc.is_valid(metrics.column("sample_id"))).to_pylist()
    values: dict[str, dict[tuple, float]] = {}
    details: dict[str, str | None] = {}
    for r in rows:
        name = stored_label(r["metric"], r.get("filter"))
        values.setdefault(name, {})[(r["task"], r["sample_id"])] = r["value"]
        details.setdefault(name, r["details"])
    return values, {m: _stored_info(m, list(v.values()), details[m]) for m, v in values.items()}


def per_sample_values(samples: pa.Table, metrics: pa.Table | None = None,
                      names: list[str] | None = None) -> tuple[pa.Table, dict[str, MetricInfo]]:
    """Per-sample metric values of ``samples`` (one variant of one run).

    Rows with ``status == "error"`` are dropped. Returns a table with ``task``,
    ``sample_id``, ``instruction``, ``finish_reason`` and one column per metric (bool
    metrics as bool, numbers as float64; null where undefined), and the metrics' infos.

    Raises:
        HarnessError: a name in ``names`` that no provider or stored row supplies.
    """
    if "status" in samples.column_names:
        samples = samples.filter(pc.fill_null(pc.not_equal(samples.column("status"), "error"), True))
    keys = {c: samples.column(c) if c in samples.column_names else pa.nulls(samples.num_rows, pa.string())
            for c in (*KEY_COLUMNS, "instruction", "finish_reason")}
    stored, stored_infos = stored_per_sample(metrics)
    known = known_metrics()
    available = {**known, **{k: v for k, v in stored_infos.items() if k not in known}}
    wanted = [*default_metrics(), *(k for k in stored_infos if k not in known)] if names is None else names
    for n in wanted:
        if n not in available:
            raise HarnessError(f"--metric: unknown per-sample metric {n!r}{did_you_mean(n, available)}; "
                               f"known: {', '.join(sorted(available))}")
    columns: dict[str, pa.Array] = dict(keys)
    infos: dict[str, MetricInfo] = {}
    for target, provided, _ in PROVIDERS.values():
        need = [m for m in provided if m.name in wanted]
        if not need:
            continue
        fn = _resolve(target)
        if fn is None:
            continue
        out = fn(samples)
        for m in need:
            columns[m.name] = out.column(m.name).cast(pa.bool_() if m.kind == "bool" else pa.float64())
            infos[m.name] = m
    pairs = list(zip(keys["task"].to_pylist(), keys["sample_id"].to_pylist()))
    for name in wanted:
        if name in infos or name not in stored:
            continue
        info = stored_infos[name]
        vals = [stored[name].get(k) for k in pairs]
        if info.kind == "bool":
            vals = [None if v is None else bool(v) for v in vals]
        columns[name] = pa.array(vals, pa.bool_() if info.kind == "bool" else pa.float64())
        infos[name] = info
    ordered = [n for n in wanted if n in infos]
    table = pa.table({**keys, **{n: columns[n] for n in ordered}})
    return table, {n: infos[n] for n in ordered}
