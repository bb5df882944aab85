"""What a report shows, computed from a run's tables (no plotting here).

Example:
    >>> sorted(rules_of("rules:eos-uniform")), rules_of("none"), rules_of("my-expert")
    (['eos', 'uniform'], frozenset(), None)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from harness.metrics.stats import bootstrap_mean_ci, wilson_ci
from harness.results.persample import MetricInfo, per_sample_values

PAPER_RULES = ("eos", "uniform", "diversity")

# The paper's Table 4 (Llama-2-7B rule product vs LIMA-IT Llama-2-7B, AlpacaEval LC win rate, %).
TABLE4 = (
    ("None (base)", frozenset(), 2.4),
    ("All rules", frozenset(PAPER_RULES), 24.4),
    ("− EOS rule", frozenset({"uniform", "diversity"}), 10.4),
    ("− Diversity rule", frozenset({"eos", "uniform"}), 14.3),
    ("− Uniform rule", frozenset({"eos", "diversity"}), 16.3),
)


def rules_of(variant: str) -> frozenset[str] | None:
    """The paper rules a variant turns on (option strings match by substring, as the paper's code).

    ``None`` for variants that are not paper-rule variants (user experts).
    """
    if variant == "none":
        return frozenset()
    if variant == "rules":
        return frozenset(PAPER_RULES)
    if variant.startswith("rules:"):
        options = variant.split(":", 1)[1]
        return frozenset(r for r in PAPER_RULES if r in options)
    return None


@dataclass(frozen=True, slots=True)
class Estimate:
    """A metric of one variant: value with a 95% interval over ``n`` samples."""

    variant: str
    metric: str
    value: float
    low: float
    high: float
    n: int


def variant_order(variants: list[str], declared: list[str] | None = None) -> list[str]:
    """``declared`` order (the run's), then ``none`` first, then the rest by name."""
    declared = [v for v in (declared or []) if v in variants]
    rest = sorted(set(variants) - set(declared), key=lambda v: (v != "none", v != "rules", v))
    return declared + rest


def estimate(variant: str, info: MetricInfo, values: list) -> Estimate:
    """Wilson interval for booleans, bootstrap interval of the mean for numbers."""
    vals = [v for v in values if v is not None]
    n = len(vals)
    if n == 0:
        return Estimate(variant, info.name, math.nan, math.nan, math.nan, 0)
    if info.kind == "bool":
        k = sum(bool(v) for v in vals)
        lo, hi = wilson_ci(k, n)
        return Estimate(variant, info.name, k / n, lo, hi, n)
    lo, hi = bootstrap_mean_ci([float(v) for v in vals])
    return Estimate(variant, info.name, float(np.mean(vals)), lo, hi, n)


def by_variant(samples: pa.Table, variants: list[str]) -> tuple[dict[str, dict[str, Estimate]], dict[str, MetricInfo]]:
    """Every per-sample metric per variant: ``{variant: {metric: Estimate}}`` and the infos."""
    out: dict[str, dict[str, Estimate]] = {}
    infos: dict[str, MetricInfo] = {}
    for v in variants:
        part = samples.filter(pc.equal(samples.column("variant"), v))
        values, infos_v = per_sample_values(part)
        infos.update(infos_v)
        out[v] = {name: estimate(v, info, values.column(name).to_pylist()) for name, info in infos_v.items()}
    return out, infos


def ablation_rows(estimates: dict[str, dict[str, Estimate]]) -> list[tuple[str, str | None, float]]:
    """Table 4 rows as ``(configuration, variant or None, paper win rate)``, or ``[]``.

    Shown when the run has at least one single-rule ablation variant.
    """
    found: dict[frozenset, str] = {}
    for v in estimates:
        r = rules_of(v)
        if r is not None and r not in found:
            found[r] = v
    ablations = {row[1] for row in TABLE4[2:]}
    if not ablations & set(found):
        return []
    return [(label, found.get(rules), win) for label, rules, win in TABLE4]


def aggregate_metrics(metrics: pa.Table) -> pa.Table:
    """Aggregate rows only (``sample_id`` NULL), sorted by metric, task, variant."""
    agg = metrics.filter(pc.is_null(metrics.column("sample_id")))
    return agg.sort_by([("metric", "ascending"), ("task", "ascending"), ("variant", "ascending")])


def style_leak(metrics: pa.Table) -> list[dict]:
    """``style_leak_<domain>`` aggregate rows as dicts with ``domain`` added."""
    agg = aggregate_metrics(metrics)
    rows = [r for r in agg.to_pylist() if r["metric"].startswith("style_leak_") and r["value"] is not None]
    return [r | {"domain": r["metric"][len("style_leak_"):]} for r in rows]


def details(text: str | None) -> dict:
    """A metrics row's ``details`` JSON as a dict ({} when absent or not an object)."""
    try:
        d = json.loads(text) if text else {}
    except ValueError:
        return {}
    return d if isinstance(d, dict) else {}


def similarity_points(metrics: pa.Table) -> dict[tuple[str, str], tuple[list[float], list[float]]]:
    """Scatter points from metrics rows whose ``details`` JSON has ``x`` and ``y``.

    A row may hold one point (numbers) or many (equal-length lists). Keyed by
    ``(metric, variant)``.
    """
    out: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for r in metrics.to_pylist():
        d = details(r["details"])
        if "x" not in d or "y" not in d:
            continue
        xs, ys = d["x"], d["y"]
        xs, ys = (xs, ys) if isinstance(xs, list) else ([xs], [ys])
        if len(xs) != len(ys):
            continue
        px, py = out.setdefault((r["metric"], r["variant"] or "-"), ([], []))
        for x, y in zip(xs, ys):
            if isinstance(x, int | float) and isinstance(y, int | float):
                px.append(float(x))
                py.append(float(y))
    return {k: v for k, v in out.items() if v[0]}


def flip_positions(samples: pa.Table) -> dict[str, list[int]]:
    """Token positions where the expert changed the argmax, per variant (``--trace`` runs)."""
    out: dict[str, list[int]] = {}
    col = samples.column("flip_positions")
    if col.null_count == samples.num_rows:
        return out
    for v, pos in zip(samples.column("variant").to_pylist(), col.to_pylist()):
        if pos is not None:
            out.setdefault(v, []).extend(pos)
    return out


def flip_rule_counts(samples: pa.Table) -> dict[str, dict[str, int]]:
    """How many flips each rule caused, per variant (from ``flip_rules``)."""
    out: dict[str, dict[str, int]] = {}
    for v, rules in zip(samples.column("variant").to_pylist(), samples.column("flip_rules").to_pylist()):
        for r in rules or []:
            out.setdefault(v, {}).setdefault(r or "?", 0)
            out[v][r or "?"] += 1
    return out
