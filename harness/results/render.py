"""Text rendering of comparisons and run listings for the CLI.

Example:
    >>> fmt_delta(0.25, 0.0, 0.5)
    '+0.250 [+0.000, +0.500]'
    >>> fmt_p(0.000012)
    '1.2e-05'
"""

from __future__ import annotations

import math

import pyarrow as pa

from harness.results.compare import Comparison

SIGN = {True: "+", False: "-", None: "~"}


def fmt_num(x: float | None, digits: int = 3) -> str:
    """A number with ``digits`` decimals, or ``-`` for None/NaN."""
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def fmt_delta(delta: float, low: float, high: float, digits: int = 3) -> str:
    """``+0.250 [+0.000, +0.500]``."""
    if any(math.isnan(v) for v in (delta, low, high)):
        return "-"
    return f"{delta:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def fmt_p(p: float | None) -> str:
    """A p-value: 3 significant digits, scientific below 1e-3."""
    if p is None:
        return "-"
    return f"{p:.2g}" if p < 1e-3 else f"{p:.3g}"


def aligned(header: list[str], rows: list[list[str]], indent: str = "") -> str:
    """Left-aligned text columns separated by two spaces."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(indent + line for line in lines)


def _short(text: str | None, width: int = 70) -> str:
    s = " ".join((text or "").split())
    return s if len(s) <= width else s[: width - 1] + "…"


def format_comparison(cmp: Comparison, max_flips: int | None = 20) -> str:
    """The ``harness compare`` report: deltas table, then the prompts whose adherence flipped."""
    b, t = cmp.baseline, cmp.treatment
    head = [f"compare  baseline {b}  ->  treatment {t}",
            f"paired by (task, sample_id): {cmp.n_pairs} pairs"
            + (f" ({cmp.unpaired_baseline} baseline and {cmp.unpaired_treatment} treatment rows without a partner)"
               if cmp.unpaired_baseline or cmp.unpaired_treatment else ""),
            format_caps(cmp),
            f"delta = mean(treatment - baseline) with a 95% paired bootstrap CI ({cmp.iters} resamples, seed {cmp.seed});",
            "booleans: exact McNemar test, b01 = false->true, b10 = true->false", "", ""]
    rows = [[d.metric, d.kind, str(d.n), fmt_num(d.baseline), fmt_num(d.treatment),
             fmt_delta(d.delta, d.ci_low, d.ci_high),
             "-" if d.b01 is None else str(d.b01), "-" if d.b10 is None else str(d.b10), fmt_p(d.p_value),
             {True: "higher", False: "lower", None: "-"}[d.higher_is_better]]
            for d in cmp.deltas]
    out = "\n".join(head) + aligned(["metric", "kind", "n", b.variant if b.run == t.run else str(b),
                                     t.variant if b.run == t.run else str(t), "delta [95% CI]", "b01", "b10",
                                     "p", "better"], rows)
    out += "\n\n" + format_flips(cmp, max_flips)
    return out


def format_caps(cmp: Comparison) -> str:
    """One line on the generation caps the pairs ran with (and whether mixed caps were paired)."""
    a, b = (", ".join(str(c) for c in caps) or "?" for caps in cmp.caps)
    line = f"caps (max_new_tokens): baseline {a}, treatment {b}"
    if cmp.mixed_caps and cmp.cap_mismatches:
        return line + f"; {cmp.cap_mismatches} pairs ran with DIFFERENT caps and are compared anyway (mixed caps)"
    if cmp.cap_mismatches:
        return line + f"; {cmp.cap_mismatches} pairs with different caps left out (--mixed-caps pairs them)"
    return line


def format_flips(cmp: Comparison, max_flips: int | None = 20) -> str:
    """Prompts whose boolean metrics flipped, one line per prompt (``+`` better, ``-`` worse)."""
    by_prompt: dict[tuple, list] = {}
    for f in cmp.flips:
        by_prompt.setdefault((f.task, f.sample_id), []).append(f)
    if not by_prompt:
        return "adherence flips: none (no boolean metric changed on any paired prompt)"
    improved = sum(1 for f in cmp.flips if f.improved is True)
    regressed = sum(1 for f in cmp.flips if f.improved is False)
    lines = [f"adherence flips: {len(by_prompt)} prompts, {improved} changes for the better (+), "
             f"{regressed} for the worse (-), {len(cmp.flips) - improved - regressed} neutral (~)"]
    shown = list(by_prompt.items()) if max_flips is None else list(by_prompt.items())[:max_flips]
    for (task, sid), flips in shown:
        changes = "; ".join(f"{SIGN[f.improved]}{f.metric}: {f.before} -> {f.after}" for f in flips)
        lines.append(f"  {task}/{sid}  {changes}  | {_short(flips[0].instruction)}")
    if len(shown) < len(by_prompt):
        lines.append(f"  ... {len(by_prompt) - len(shown)} more prompts (--max-flips 0 shows all)")
    return "\n".join(lines)


def format_runs(runs: pa.Table) -> str:
    """The ``harness runs list`` table."""
    rows = []
    for r in runs.to_pylist():
        rows.append([r["run_id"], (r["created_at"] or "-")[:19].replace("T", " "), r["status"] or "-",
                     r["model"] or "-", ",".join(r["tasks"] or []) or "-", ",".join(r["variants"] or []) or "-",
                     str(r["n_samples"])])
    if not rows:
        return "no runs in this store yet (harness run --store DIR ...)"
    return aligned(["run_id", "created", "status", "model", "tasks", "variants", "samples"], rows) + \
        f"\n({len(rows)} runs)"
