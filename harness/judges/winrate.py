"""Win rates of a treatment against a baseline, paired by prompt, and their metric rows.

The win rate is the mean over prompts of P(treatment better) (ties count 1/2), as in
AlpacaEval's raw win rate but as a fraction; its standard error is
``std(p, ddof=1) / sqrt(n)`` and the interval is ``mean ± 1.96 SE`` clipped to [0, 1].

Baselines (:func:`pair_outputs`): another variant of the same run, a reference run's
outputs (same task and sample id), or the task's reference answers (the
``reference_output``/``reference`` field of each sample's ``doc_json``).

Example:
    >>> wr = win_rate([1.0, 0.0, 0.5, 1.0])
    >>> wr["value"], wr["n"], round(wr["se"], 4)
    (0.625, 4, 0.2394)
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.errors import HarnessError
from harness.judges.base import Judge
from harness.results.api import Results
from harness.results.compare import sample_sort_key

REFERENCE_FIELDS = ("reference_output", "reference")
JUDGE_METRICS = ("judge_win_rate", "judge_lc_win_rate")  # harness/metrics/names.py


def win_rate(prefs: Sequence[float], z: float = 1.96) -> dict:
    """Mean preference, its standard error and a normal interval clipped to [0, 1].

    Example:
        >>> win_rate([1.0])["se"]
        nan
    """
    p = np.asarray(prefs, dtype=float)
    p = p[~np.isnan(p)]
    n = int(p.size)
    if n == 0:
        return {"value": math.nan, "n": 0, "se": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    mean = float(p.mean())
    se = float(p.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    lo, hi = (max(0.0, mean - z * se), min(1.0, mean + z * se)) if n > 1 else (math.nan, math.nan)
    return {"value": mean, "n": n, "se": se, "ci_low": lo, "ci_high": hi}


@dataclass
class Pair:
    """One prompt's treatment and baseline outputs."""

    task: str
    sample_id: str
    instruction: str
    treatment: str
    baseline: str


@dataclass
class PairSet:
    """The pairs of one comparison plus what it compared to and what was dropped."""

    pairs: list[Pair]
    reference: str  # e.g. "variant:none", "run:r2/none", "references"
    model: str | None
    variant: str
    dropped: dict = field(default_factory=dict)


def _reference_of(doc_json: str | None, fields: Sequence[str]) -> str | None:
    try:
        doc = json.loads(doc_json or "{}")
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    for f in fields:
        if isinstance(doc.get(f), str):
            return doc[f]
    return None


def _index(rows: list[dict]) -> dict[tuple[str, str], dict]:
    return {(r["task"], r["sample_id"]): r for r in rows}


def pair_outputs(results: Results, run: str, treatment: str, *, baseline: str | None = None,
                 reference_run: str | None = None, against_references: bool = False,
                 reference_fields: Sequence[str] = REFERENCE_FIELDS, limit: int | None = None) -> PairSet:
    """Pair the treatment variant's outputs with exactly one kind of baseline.

    Rows whose generation failed (``status == 'error'``) and prompts without a partner
    are dropped (counted in ``dropped``). ``limit`` keeps the first N pairs per task in
    sample-id order.

    Raises:
        HarnessError: not exactly one baseline kind, unknown run/variant, or no pairs.
    """
    kinds = int(reference_run is not None or baseline is not None) + int(against_references)
    if kinds != 1:
        raise HarnessError("judge: give exactly one of --baseline VARIANT, --reference-run RUN [--baseline VARIANT], "
                           "--against-references")
    treat_rows = results.samples(run=run, variant=treatment).to_pylist()
    dropped = {"error": 0, "unpaired": 0}
    ok = [r for r in treat_rows if r.get("status") != "error"]
    dropped["error"] += len(treat_rows) - len(ok)
    model = ok[0]["model"] if ok else None
    if against_references:
        reference = "references"
        base = {}
        for r in ok:
            ref = _reference_of(r.get("doc_json"), reference_fields)
            if ref is not None:
                base[(r["task"], r["sample_id"])] = {"output": ref}
    else:
        if reference_run is not None:
            ref_samples = results.samples(run=reference_run)
            variants = sorted(set(ref_samples.column("variant").to_pylist()))
            ref_variant = baseline or (treatment if treatment in variants else variants[0] if len(variants) == 1 else None)
            if ref_variant is None:
                raise HarnessError(f"--reference-run {reference_run}: has variants {', '.join(variants)}; "
                                   f"pick one with --baseline VARIANT")
            base_rows = results.samples(run=reference_run, variant=ref_variant).to_pylist()
            reference = f"run:{reference_run}/{ref_variant}"
        else:
            base_rows = results.samples(run=run, variant=baseline).to_pylist()
            reference = f"variant:{baseline}"
        good = [r for r in base_rows if r.get("status") != "error"]
        dropped["error"] += len(base_rows) - len(good)
        base = _index(good)
    pairs = []
    for r in sorted(ok, key=lambda r: sample_sort_key((r["task"], r["sample_id"]))):
        b = base.get((r["task"], r["sample_id"]))
        if b is None:
            dropped["unpaired"] += 1
            continue
        pairs.append(Pair(r["task"], r["sample_id"], r.get("instruction") or "", r.get("output") or "",
                          b.get("output") or ""))
    if limit is not None:
        kept, per_task = [], {}
        for p in pairs:
            per_task[p.task] = per_task.get(p.task, 0) + 1
            if per_task[p.task] <= limit:
                kept.append(p)
        pairs = kept
    if not pairs:
        raise HarnessError(f"judge: run {run!r} variant {treatment!r} has no prompts paired with {reference} "
                           f"({dropped['error']} failed rows, {dropped['unpaired']} without a partner)")
    return PairSet(pairs, reference, model, treatment, dropped)


def judge_pairs(judge: Judge, pairs: Sequence[Pair], progress=None) -> list[float]:
    """P(treatment better) for each pair (both orders when ``judge`` is a BaseJudge)."""
    prefs = []
    for i, p in enumerate(pairs):
        prefs.append(float(judge.judge(p.instruction, p.treatment, p.baseline)))
        if progress is not None:
            progress(i + 1, len(pairs))
    return prefs


def lc_row(run: str, pairset: PairSet, prefs: Sequence[float], judge_id: str, task: str, idx: list[int],
           iters: int = 100, seed: int = 0) -> dict:
    """The ``judge_lc_win_rate`` row of one task: alpaca_eval's length-controlled win rate (harness/judges/lc.py)."""
    from harness.judges.lc import alpaca_annotations, lc_win_rate

    ps = [pairset.pairs[i] for i in idx]
    ann = alpaca_annotations([p.instruction for p in ps], [p.treatment for p in ps], [p.baseline for p in ps],
                             [prefs[i] for i in idx], pairset.variant, pairset.reference, judge_id)
    lc = lc_win_rate(ann, iters=iters, seed=seed)
    details = {"judge": judge_id} | {k: lc[k] for k in lc if k not in ("value", "ci_low", "ci_high", "n")}
    return {"run_id": run, "task": task, "model": pairset.model, "variant": pairset.variant,
            "metric": "judge_lc_win_rate", "value": lc["value"], "n": lc["n"], "ci_low": lc["ci_low"],
            "ci_high": lc["ci_high"], "reference": pairset.reference, "details": json.dumps(details, allow_nan=True)}


def metric_rows(run: str, pairset: PairSet, prefs: Sequence[float], judge_id: str, lc_iters: int | None = 100,
                seed: int = 0) -> list[dict]:
    """Per task: an aggregate ``judge_win_rate`` row, one per prompt (``sample_id`` set, value = p_i),
    and a ``judge_lc_win_rate`` row (``lc_iters`` bootstrap refits for its interval; None skips LC)."""
    rows = []
    tasks = sorted({p.task for p in pairset.pairs})
    for task in tasks:
        idx = [i for i, p in enumerate(pairset.pairs) if p.task == task]
        wr = win_rate([prefs[i] for i in idx])
        details = {"judge": judge_id, "se": wr["se"], "both_orders": True, "dropped": pairset.dropped,
                   "ties": int(sum(1 for i in idx if prefs[i] == 0.5))}
        rows.append({"run_id": run, "task": task, "model": pairset.model, "variant": pairset.variant,
                     "metric": "judge_win_rate", "value": wr["value"], "n": wr["n"], "ci_low": wr["ci_low"],
                     "ci_high": wr["ci_high"], "reference": pairset.reference,
                     "details": json.dumps(details, allow_nan=True)})
        if lc_iters is not None:
            rows.append(lc_row(run, pairset, prefs, judge_id, task, idx, iters=lc_iters, seed=seed))
        for i in idx:
            rows.append({"run_id": run, "task": task, "model": pairset.model, "variant": pairset.variant,
                         "metric": "judge_win_rate", "value": prefs[i], "n": 1, "reference": pairset.reference,
                         "details": json.dumps({"judge": judge_id}), "sample_id": pairset.pairs[i].sample_id})
    return rows


def _judge_of(details: str | None) -> str | None:
    try:
        return json.loads(details or "{}").get("judge")
    except (ValueError, AttributeError):
        return None


def append_metrics(store: str | Path, run: str, rows: list[dict], replace_metrics: Sequence[str] = JUDGE_METRICS,
                   key_fields: Sequence[str] = ("variant", "reference")) -> Path:
    """Add ``rows`` to the run's metrics table (the run lifecycle's merge, under its metrics lock).

    Stored rows of a metric in ``replace_metrics`` with the same ``key_fields`` and
    ``details.judge`` as a new row are replaced as a group (re-judging does not duplicate,
    and a smaller re-run leaves no stale rows); every other row merges by its metric key.
    """
    from harness.run.lifecycle import extend_run
    from harness.store.writer import metric_key

    def identity(r: dict) -> tuple:
        if r["metric"] in replace_metrics:
            return ("group", r["metric"], *(r.get(k) for k in key_fields), _judge_of(r.get("details")))
        return metric_key(r)

    return extend_run(store, run).merge_metrics(rows, identity=identity)


def _pct_ci(r: dict) -> str:
    if r.get("ci_low") is None or r.get("ci_high") is None or any(math.isnan(r[k]) for k in ("ci_low", "ci_high")):
        return "95% CI n/a"
    return f"95% CI [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]"


def summary_line(rows: list[dict]) -> str:
    """Human-readable lines: the raw win rate of each task, and its length-controlled win rate next to it."""
    lines = []
    lc = {(r["task"], r["variant"], r["reference"]): r for r in rows if r["metric"] == "judge_lc_win_rate"}
    for r in rows:
        if r["metric"] != "judge_win_rate" or r.get("sample_id") is not None:
            continue
        se = json.loads(r["details"]).get("se")
        se_txt = "n/a" if se is None or (isinstance(se, float) and math.isnan(se)) else f"{100 * se:.1f}"
        line = (f"{r['run_id']} {r['task']} {r['variant']} vs {r['reference']}: win rate "
                f"{100 * r['value']:.1f}% ± {se_txt} (SE, n={r['n']})")
        c = lc.get((r["task"], r["variant"], r["reference"]))
        if c is not None:
            d = json.loads(c["details"])
            line += ("; LC win rate " + (f"{100 * c['value']:.1f}% ({_pct_ci(c)}, alpaca_eval {d.get('glm')})"
                                         if c["value"] is not None else f"n/a ({d.get('reason')})"))
        lines.append(line)
    return "\n".join(lines)


__all__ = ["Pair", "PairSet", "append_metrics", "judge_pairs", "metric_rows", "pair_outputs", "summary_line",
           "win_rate"]
