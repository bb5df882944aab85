"""Paired comparisons: two variants of one run, or one variant across two runs.

Samples are paired by ``(task, sample_id)``. Rows whose generation caps
(``samples.max_new_tokens``) differ are not paired unless ``mixed_caps=True``
(``harness compare --mixed-caps``); either way :attr:`Comparison.caps` says which caps
were compared and :attr:`Comparison.cap_mismatches` how many pairs differed. For every per-sample metric
(:mod:`harness.results.persample`) the result holds the paired mean difference
(treatment − baseline) with a percentile bootstrap interval, plus the exact McNemar test
for booleans, and the prompts whose boolean adherence flipped.

Example:
    >>> import tempfile
    >>> from harness.store import Store
    >>> from harness.results.api import Results
    >>> root = tempfile.mkdtemp()
    >>> rows = [{"run_id": "r", "key": f"{v}{i}", "task": "t", "sample_id": str(i), "variant": v, "model": "m",
    ...          "instruction": "Name a colour.", "output": "Red.", "finish_reason": fr, "num_output_tokens": n}
    ...         for i in range(2) for v, fr, n in (("none", "length", 9), ("rules", "eos", 3))]
    >>> _ = Store(root).write_samples("r", 0, rows)
    >>> cmp = compare_variants(Results(root), "r", "none", "rules", metrics=["eos"])
    >>> (cmp.deltas[0].delta, cmp.deltas[0].b01, len(cmp.flips))
    (1.0, 2, 2)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import pyarrow as pa

from harness.errors import HarnessError
from harness.metrics.stats import mcnemar, paired_bootstrap_delta
from harness.results.api import Results
from harness.results.persample import MetricInfo, per_sample_values


@dataclass(frozen=True, slots=True)
class Side:
    """One side of a comparison: a run and a variant."""

    run: str
    variant: str

    def __str__(self) -> str:
        return f"{self.run}/{self.variant}"


@dataclass(slots=True)
class MetricDelta:
    """One metric's paired comparison (``delta`` = mean(treatment − baseline))."""

    metric: str
    kind: str
    n: int
    baseline: float
    treatment: float
    delta: float
    ci_low: float
    ci_high: float
    b01: int | None = None  # false under baseline, true under treatment
    b10: int | None = None  # true under baseline, false under treatment
    p_value: float | None = None
    higher_is_better: bool | None = None


@dataclass(frozen=True, slots=True)
class Flip:
    """A prompt whose boolean metric changed between baseline and treatment."""

    task: str
    sample_id: str
    metric: str
    before: str
    after: str
    improved: bool | None
    instruction: str | None


@dataclass(slots=True)
class Comparison:
    """The result of :func:`compare`."""

    baseline: Side
    treatment: Side
    n_pairs: int
    unpaired_baseline: int
    unpaired_treatment: int
    iters: int
    seed: int
    deltas: list[MetricDelta] = field(default_factory=list)
    flips: list[Flip] = field(default_factory=list)
    caps: tuple[list, list] = ([], [])  # distinct max_new_tokens of the paired baseline / treatment rows
    cap_mismatches: int = 0  # pairs whose caps differ (left out unless mixed_caps)
    mixed_caps: bool = False

    def delta(self, metric: str) -> MetricDelta:
        """The :class:`MetricDelta` of ``metric`` (KeyError if absent)."""
        for d in self.deltas:
            if d.metric == metric:
                return d
        raise KeyError(metric)

    def to_table(self) -> pa.Table:
        """The deltas as an Arrow table (one row per metric)."""
        rows = [asdict(d) | {"baseline_side": str(self.baseline), "treatment_side": str(self.treatment)}
                for d in self.deltas]
        return pa.Table.from_pylist(rows) if rows else pa.table({"metric": pa.array([], pa.string())})

    def flips_table(self) -> pa.Table:
        """The flips as an Arrow table (one row per prompt and metric)."""
        rows = [asdict(f) for f in self.flips]
        return pa.Table.from_pylist(rows) if rows else pa.table({"metric": pa.array([], pa.string())})

    def to_dict(self) -> dict:
        return {"baseline": asdict(self.baseline), "treatment": asdict(self.treatment), "n_pairs": self.n_pairs,
                "unpaired_baseline": self.unpaired_baseline, "unpaired_treatment": self.unpaired_treatment,
                "iters": self.iters, "seed": self.seed, "caps": {"baseline": self.caps[0], "treatment": self.caps[1]},
                "cap_mismatches": self.cap_mismatches, "mixed_caps": self.mixed_caps,
                "deltas": [_json_safe(asdict(d)) for d in self.deltas], "flips": [asdict(f) for f in self.flips]}


def _json_safe(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def sample_sort_key(key: tuple[str, str]) -> tuple:
    """Sort ``(task, sample_id)`` with numeric ids in numeric order."""
    task, sid = key
    sid = sid or ""
    return (task or "", 0, int(sid), "") if sid.isdigit() else (task or "", 1, 0, sid)


def _side_values(results: Results, side: Side, names: list[str] | None) -> tuple[dict, dict[str, MetricInfo], dict]:
    samples = results.samples(run=side.run, variant=side.variant)
    metrics = results.metrics(run=side.run, variant=side.variant)
    table, infos = per_sample_values(samples, metrics, names)
    rows = table.to_pylist()
    by_key: dict[tuple, dict] = {}
    for r in rows:
        k = (r["task"], r["sample_id"])
        if k in by_key:
            raise HarnessError(f"run {side.run!r}: variant {side.variant!r} has two rows for task {k[0]!r} "
                               f"sample_id {k[1]!r}; cannot pair")
        by_key[k] = r
    caps = {}
    if "max_new_tokens" in samples.column_names:
        caps = {(t, s): c for t, s, c in zip(*(samples.column(n).to_pylist()
                                             for n in ("task", "sample_id", "max_new_tokens")))}
    return by_key, infos, caps


def compare(results: Results, baseline: Side, treatment: Side, metrics: list[str] | None = None,
            iters: int = 2000, seed: int = 0, mixed_caps: bool = False) -> Comparison:
    """Compare ``treatment`` against ``baseline``, paired by ``(task, sample_id)``.

    Args:
        results: an opened store.
        baseline, treatment: the two (run, variant) sides.
        metrics: per-sample metric names (default: every available one).
        iters, seed: bootstrap resamples and seed (same seed for every metric).
        mixed_caps: also pair rows generated with different ``max_new_tokens``.

    Raises:
        HarnessError: unknown run or variant, unknown metric, or no pairs at all.
    """
    if baseline == treatment:
        raise HarnessError(f"compare: baseline and treatment are both {baseline}; pick two variants or two runs")
    left, infos_a, caps_a = _side_values(results, baseline, metrics)
    right, infos_b, caps_b = _side_values(results, treatment, metrics)
    shared = set(left) & set(right)
    mismatched = {k for k in shared if caps_a.get(k) != caps_b.get(k)}
    keys = sorted(shared if mixed_caps else shared - mismatched, key=sample_sort_key)
    if not keys and mismatched:
        pair = sorted(mismatched, key=sample_sort_key)[0]
        raise HarnessError(f"compare: every pair of {baseline} and {treatment} ran with different caps "
                           f"(max_new_tokens {caps_a.get(pair)} vs {caps_b.get(pair)}); "
                           "pass --mixed-caps to pair them anyway")
    if not keys:
        raise HarnessError(f"compare: {baseline} and {treatment} share no (task, sample_id) pairs")
    out = Comparison(baseline, treatment, len(keys), len(set(left) - set(right)), len(set(right) - set(left)),
                     iters, seed, caps=(sorted({caps_a.get(k) for k in keys}, key=str),
                                        sorted({caps_b.get(k) for k in keys}, key=str)),
                     cap_mismatches=len(mismatched), mixed_caps=mixed_caps)
    names = [n for n in infos_a if n in infos_b]
    for name in names:
        info = infos_a[name]
        pairs = [(left[k][name], right[k][name], k) for k in keys]
        pairs = [p for p in pairs if p[0] is not None and p[1] is not None]
        if not pairs:
            continue
        a = [float(p[0]) for p in pairs]
        b = [float(p[1]) for p in pairs]
        delta, lo, hi = paired_bootstrap_delta(a, b, iters=iters, seed=seed)
        d = MetricDelta(name, info.kind, len(pairs), sum(a) / len(a), sum(b) / len(b), delta, lo, hi,
                        higher_is_better=info.higher_is_better)
        if info.kind == "bool":
            d.b01, d.b10, d.p_value = mcnemar([p[0] for p in pairs], [p[1] for p in pairs])
            for va, vb, k in pairs:
                if va != vb:
                    improved = None if info.higher_is_better is None else (vb == info.higher_is_better)
                    out.flips.append(Flip(k[0], k[1], name, info.labels[int(va)], info.labels[int(vb)], improved,
                                          left[k]["instruction"]))
        out.deltas.append(d)
    out.flips.sort(key=lambda f: (sample_sort_key((f.task, f.sample_id)), names.index(f.metric)))
    return out


def compare_variants(results: Results, run: str, baseline: str, treatment: str, **kwargs) -> Comparison:
    """Two variants of one run (``rules`` vs ``none``), paired by prompt."""
    return compare(results, Side(run, baseline), Side(run, treatment), **kwargs)


def compare_runs(results: Results, run_a: str, run_b: str, variant: str, variant_b: str | None = None,
                 **kwargs) -> Comparison:
    """The same variant (or ``variant`` vs ``variant_b``) across two runs, paired by prompt."""
    return compare(results, Side(run_a, variant), Side(run_b, variant_b or variant), **kwargs)
