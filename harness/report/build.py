"""``harness report RUN --out DIR``: ``report.md`` with embedded PNG plots.

Example:
    >>> import tempfile
    >>> from harness.store import Store
    >>> from harness.results import open as open_results
    >>> root, out = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> _ = Store(root).write_samples("r", 0, [{"run_id": "r", "key": "k", "task": "t", "sample_id": "0",
    ...     "variant": "none", "model": "m", "instruction": "Name a colour.", "output": "Red.", "finish_reason": "eos"}])
    >>> build_report(open_results(root), "r", out).name
    'report.md'
"""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow.compute as pc

from harness.errors import HarnessError
from harness.metrics.names import IFEVAL_NAMES
from harness.metrics.domains import STYLE_DOMAINS
from harness.report import data, plots
from harness.results.api import Results
from harness.results.compare import compare_variants
from harness.results.persample import stored_label
from harness.results.render import fmt_delta, fmt_num, fmt_p, format_caps

SHAPE_PANELS = [("eos", "EOS-terminated", "rate"), ("echo", "echo (repeats instruction)", "rate"),
                ("role_tag", "role-tag leak", "rate"), ("refusal", "refusal", "rate"),
                ("distinct_2", "distinct-2 (mean)", "rate"), ("output_tokens", "mean output length", "tokens")]


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured markdown table (``|`` in cells escaped)."""
    def cell(s: str) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines)


def _est(e: data.Estimate | None, digits: int = 3) -> str:
    if e is None or math.isnan(e.value):
        return "-"
    if math.isnan(e.low):
        return fmt_num(e.value, digits)
    return f"{e.value:.{digits}f} [{e.low:.{digits}f}, {e.high:.{digits}f}]"


def _ci(r: dict) -> str:
    if r["ci_low"] is None or r["ci_high"] is None:
        return "-"
    return f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]"


def _header(results: Results, run: str, n: int) -> list[str]:
    row = next((r for r in results.runs().to_pylist() if r["run_id"] == run), {})
    lines = [f"# Report: run `{run}`", ""]
    facts = [("model", row.get("model")), ("status", row.get("status")), ("created", row.get("created_at")),
             ("finished", row.get("finished_at")), ("tasks", ", ".join(row.get("tasks") or [])),
             ("variants", ", ".join(row.get("variants") or [])), ("sample rows", n),
             ("config hash", row.get("config_hash")), ("store", results.root)]
    lines += [f"- **{k}**: {v}" for k, v in facts if v not in (None, "")]
    return lines + [""]


def _shape_section(est, variants, out: Path) -> list[str]:
    png = plots.metrics_by_variant(est, SHAPE_PANELS, out / "shape_by_variant.png",
                                   "Response shape by variant (95% CIs)")
    header = ["variant", "n", *[t for _, t, _ in SHAPE_PANELS]]
    rows = [[v, str(max((e.n for e in est[v].values()), default=0)),
             *[_est(est[v].get(m), 1 if m == "output_tokens" else 3) for m, _, _ in SHAPE_PANELS]] for v in variants]
    return ["## Adherence and response shape by variant", "",
            "Rates with Wilson 95% intervals, means with bootstrap 95% intervals, over the run's ok rows "
            "(all tasks pooled). Definitions: `docs/results-tables.md` and `harness/metrics/shape.py`.", "",
            md_table(header, rows), "", f"![shape by variant]({png.name})", ""]


def _delta_section(results: Results, run: str, variants: list[str], out: Path, iters: int, seed: int) -> list[str]:
    if "none" not in variants or len(variants) < 2:
        return ["## Paired deltas", "", "_Needs the `none` variant and at least one other in the run._", ""]
    lines = ["## Paired deltas vs `none`", "",
             "Treatment − none per prompt, paired by (task, sample_id); 95% paired bootstrap CI "
             f"({iters} resamples, seed {seed}); exact McNemar test on booleans (b01 = false→true).", ""]
    forest = []
    for v in variants:
        if v == "none":
            continue
        cmp = compare_variants(results, run, "none", v, iters=iters, seed=seed, mixed_caps=True)
        rows = [[d.metric, str(d.n), fmt_num(d.baseline), fmt_num(d.treatment), fmt_delta(d.delta, d.ci_low, d.ci_high),
                 "-" if d.b01 is None else f"{d.b01}/{d.b10}", fmt_p(d.p_value)] for d in cmp.deltas]
        better = sum(f.improved is True for f in cmp.flips)
        worse = sum(f.improved is False for f in cmp.flips)
        lines += [f"### `{v}` vs `none` ({cmp.n_pairs} pairs)", "", format_caps(cmp) + ".", "",
                  md_table(["metric", "n", "none", v, "delta [95% CI]", "b01/b10", "p"], rows), "",
                  f"Adherence flips: {better} for the better, {worse} for the worse "
                  f"(`harness compare {run} --baseline none --treatment {v}` lists them).", ""]
        forest += [(v, d.metric, d.delta, d.ci_low, d.ci_high) for d in cmp.deltas if not math.isnan(d.delta)]
    if forest:
        png = plots.deltas(forest, out / "deltas.png", "none")
        lines += [f"![paired deltas]({png.name})", ""]
    return lines


def _ablation_section(est, out: Path) -> list[str]:
    rows = data.ablation_rows(est)
    head = ["## Rule ablations (shape of the paper's Table 4)", ""]
    if not rows:
        return head + ["_Not in this run: `harness run --variants ablations` adds none, all rules and each "
                       "single-rule removal._", ""]
    table = [[label, f"`{v}`" if v else "not run", _est(est[v].get("eos")) if v else "-",
              _est(est[v].get("echo")) if v else "-", _est(est[v].get("output_tokens"), 1) if v else "-",
              f"{win:.1f}%"] for label, v, win in rows]
    png = plots.ablation(rows, est, out / "ablation.png")
    return head + [md_table(["configuration", "variant", "EOS-terminated", "echo rate", "mean length (tokens)",
                             "paper win rate*"], table), "",
                   "\\* The paper's AlpacaEval win rates against LIMA-IT Llama-2-7B with **Llama-2-7B** as the base "
                   "model (Table 4). Shown for context only: a different model, metric and prompt set, so they are "
                   "**not comparable** with the columns measured here.", "", f"![ablation]({png.name})", ""]


def _labelled(rows: list[dict], key: str) -> list[dict]:
    """Add ``group`` = ``rows[key]``, with the task appended when rows span several tasks."""
    several = len({r["task"] for r in rows}) > 1
    return [r | {"group": f"{r[key]} [{r['task']}]" if several else r[key]} for r in rows]


def _stored_section(metrics, out: Path) -> list[str]:
    agg = data.aggregate_metrics(metrics).to_pylist()
    lines = ["## Stored metrics", ""]
    if not agg:
        return lines + ["_No aggregate rows in `metrics` for this run._", ""]
    rows = [[r["task"] or "-", r["variant"] or "-", stored_label(r["metric"], r.get("filter")), fmt_num(r["value"]),
             _ci(r),
             "-" if r["n"] is None else str(r["n"])] for r in agg]
    lines += ["All aggregate `metrics` rows of the run (as written by the metrics room).", "",
              md_table(["task", "variant", "metric", "value", "95% CI", "n"], rows), ""]
    ifeval = _labelled([r for r in agg if r["metric"] in IFEVAL_NAMES and r.get("filter") in (None, "none")], "metric")
    if ifeval:
        png = plots.grouped(ifeval, "group", out / "ifeval.png", "IFEval by variant (95% CIs where stored)",
                            "metric", "accuracy")
        lines += [f"![ifeval]({png.name})", ""]
    return lines


def _judge_section(metrics) -> list[str]:
    """Raw and length-controlled win rates side by side, one line per (task, variant, reference, judge)."""
    agg = [r for r in data.aggregate_metrics(metrics).to_pylist() if r["metric"] in ("judge_win_rate", "judge_lc_win_rate")]
    if not agg:
        return []
    table: dict[tuple, dict] = {}
    for r in agg:
        judge = data.details(r["details"]).get("judge")
        table.setdefault((r["task"], r["variant"], r["reference"], judge), {})[r["metric"]] = r
    rows = []
    for (task, variant, ref, judge), m in sorted(table.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        raw, lc = m.get("judge_win_rate"), m.get("judge_lc_win_rate")
        rows.append([task or "-", variant or "-", ref or "-", judge or "-",
                     f"{fmt_num(raw['value'])} {_ci(raw)}" if raw else "-",
                     f"{fmt_num(lc['value'])} {_ci(lc)}" if lc and lc["value"] is not None
                     else f"n/a: {data.details(lc['details']).get('reason', 'not computed')}" if lc else "-",
                     str(raw["n"]) if raw else "-"])
    return ["## Judged win rates", "",
            "`harness judge` rows: the raw win rate (mean P(treatment better), ties 1/2) and AlpacaEval's "
            "length-controlled win rate from the same judgements (alpaca_eval's GLM, docs/judges.md).", "",
            md_table(["task", "variant", "against", "judge", "win rate [95% CI]", "LC win rate [95% CI]", "n"], rows), ""]


def _style_section(metrics, out: Path) -> list[str]:
    order = {d: i for i, d in enumerate(STYLE_DOMAINS)}
    rows = sorted(data.style_leak(metrics), key=lambda r: (order.get(r["domain"], len(order)), r["domain"]))
    rows = _labelled(rows, "domain")
    head = ["## Style leak by domain", ""]
    if not rows:
        return head + ["_No `style_leak_*` rows in `metrics` for this run._", ""]
    png = plots.grouped(rows, "group", out / "style_leak.png", "Style-leak rate by finetuning domain (95% CIs)",
                        "domain", "share of outputs in the domain's style")
    domains = list(dict.fromkeys(r["domain"] for r in rows))
    cells = {(r["variant"] or "-", r["task"] or "-", r["domain"]): r for r in rows}
    table = [[v, t, str(next(r["n"] for (v2, t2, _), r in cells.items() if (v2, t2) == (v, t))),
              *[_rate(cells.get((v, t, d))) for d in domains]]
             for v, t in dict.fromkeys((r["variant"] or "-", r["task"] or "-") for r in rows)]
    return head + ["Share of ok outputs showing each single-task finetuning domain's surface style "
                   "(`harness/metrics/style_leak.py`; written by every run), Wilson 95% intervals.", "",
                   md_table(["variant", "task", "n", *domains], table), "", f"![style leak]({png.name})", ""]


def _rate(r: dict | None) -> str:
    return "-" if r is None else f"{fmt_num(r['value'])} {_ci(r)}"


def _similarity_section(metrics, out: Path) -> list[str]:
    points = data.similarity_points(metrics)
    head = ["## Domain adherence: similarity scatter (paper §5.2)", ""]
    if not points:
        return head + ["_Placeholder: renders when `metrics` has rows whose `details` JSON holds `x` (mean similarity "
                       "of the instruction to the finetuning instructions) and `y` (response similarity to the domain "
                       "minus to LIMA), one point per row or lists of points._", ""]
    png = plots.similarity(points, out / "similarity.png")
    return head + [f"{sum(len(x) for x, _ in points.values())} points from {len(points)} metric/variant groups.", "",
                   f"![similarity]({png.name})", ""]


def _flip_section(samples, out: Path) -> list[str]:
    positions = data.flip_positions(samples)
    head = ["## Where the expert flipped tokens", ""]
    if not any(positions.values()):
        return head + ["_No attribution traces: `flip_positions` is empty for this run (traced runs fill it)._", ""]
    png = plots.flip_histogram(positions, out / "flip_positions.png")
    counts = data.flip_rule_counts(samples)
    rows = [[v, r, str(n)] for v, c in counts.items() for r, n in sorted(c.items(), key=lambda x: -x[1])]
    lines = head + [f"![flip positions]({png.name})", ""]
    if rows:
        lines += [md_table(["variant", "rule", "flips"], rows), ""]
    return lines


def _sentinel_section(metrics) -> list[str]:
    """The invariance sentinel: a loud flag when re-generating a pair alone changed its tokens."""
    from harness.run.sentinel import SENTINEL_METRIC, divergences

    rows = [r for r in metrics.to_pylist() if r["metric"] == SENTINEL_METRIC]
    head = ["## Invariance sentinel (batching must not change tokens)", ""]
    if not rows:
        return head + ["_No sentinel rows: the run was made with `--sentinel 0` or before the sentinel existed._", ""]
    bad = divergences(metrics)
    n = sum(r["n"] or 0 for r in rows)
    if bad:
        lines = head + [f"**WARNING: {sum(1 for _ in bad)} variant/task group(s) changed tokens when a pair was "
                        "re-generated alone (batch 1, no padding).** Batched outputs of this run are not "
                        "batch-invariant; first divergence positions below.", ""]
        table = [[b["variant"], b["task"], fmt_num(b["value"]), ", ".join(str(p) for p in b["positions"])] for b in bad]
        return lines + [md_table(["variant", "task", "identical rate", "first divergence at token"], table), ""]
    return head + [f"{n} (prompt, variant) pairs re-generated alone (batch 1, no padding): all identical to the "
                   "batched rows.", ""]


def build_report(results: Results, run: str, out_dir: str | Path, iters: int = 2000, seed: int = 0) -> Path:
    """Write ``report.md`` and its PNGs for ``run`` into ``out_dir``; return the markdown path.

    Raises:
        HarnessError: unknown run, or a run without sample rows.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise HarnessError(f"--out {out}: exists and is not a directory")
    samples = results.samples(run=run)
    if samples.num_rows == 0:
        raise HarnessError(f"report: run {run!r} has no sample rows yet")
    metrics = results.metrics(run=run)
    out.mkdir(parents=True, exist_ok=True)
    declared = next((r["variants"] for r in results.runs().to_pylist() if r["run_id"] == run), None)
    variants = data.variant_order(pc.unique(samples.column("variant")).to_pylist(), declared)
    est, _ = data.by_variant(samples, variants)
    lines = _header(results, run, samples.num_rows)
    lines += _sentinel_section(metrics)
    lines += _shape_section(est, variants, out)
    lines += _delta_section(results, run, variants, out, iters, seed)
    lines += _ablation_section(est, out)
    lines += _stored_section(metrics, out)
    lines += _judge_section(metrics)
    lines += _style_section(metrics, out)
    lines += _similarity_section(metrics, out)
    lines += _flip_section(samples, out)
    path = out / "report.md"
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path
