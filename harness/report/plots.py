"""PNG plots of a report (matplotlib's object API on the Agg canvas; no pyplot state).

Every plot has a title, axis labels and 95% intervals as error bars where the data has them.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "h.png"
    >>> flip_histogram({"rules": [0, 0, 1, 5]}, p).name
    'h.png'
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.report.data import Estimate

STYLE = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "xtick.labelsize": 10,
         "ytick.labelsize": 10, "legend.fontsize": 9, "figure.titlesize": 14, "axes.grid": True, "axes.grid.axis": "y",
         "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False}
COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]
DPI = 130


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _yerr(items: list[Estimate]) -> list[list[float]]:
    lo = [0.0 if math.isnan(e.low) else max(0.0, e.value - e.low) for e in items]
    hi = [0.0 if math.isnan(e.high) else max(0.0, e.high - e.value) for e in items]
    return [lo, hi]


def _bars(ax, labels: list[str], items: list[Estimate], ylabel: str, title: str, rate: bool) -> None:
    values = [0.0 if math.isnan(e.value) else e.value for e in items]
    ax.bar(range(len(items)), values, yerr=_yerr(items), capsize=4, color=COLORS[: len(items)] * 4,
           edgecolor="black", linewidth=0.5)
    ax.set_xticks(range(len(items)), labels, rotation=25 if max(map(len, labels)) > 8 else 0, ha="right"
                  if max(map(len, labels)) > 8 else "center")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if rate:
        ax.set_ylim(0, 1.15)
    else:
        ax.set_ylim(0, max([e.high if not math.isnan(e.high) else e.value for e in items
                            if not math.isnan(e.value)] + [1.0]) * 1.15)
    for i, e in enumerate(items):
        if not math.isnan(e.value):
            top = e.high if not math.isnan(e.high) else e.value
            label = f"{e.value:.2f}" if rate else f"{e.value:.1f}" if e.value < 100 else f"{e.value:.0f}"
            ax.annotate(label, (i, top), xytext=(0, 3),
                        textcoords="offset points", ha="center", fontsize=9)


def metrics_by_variant(estimates: dict[str, dict[str, Estimate]], panels: list[tuple[str, str, str]],
                       path: Path, suptitle: str) -> Path:
    """One bar panel per metric, bars per variant, 95% intervals as error bars.

    ``panels`` are ``(metric, title, y label)``; a metric whose y label is ``rate`` is
    drawn on [0, 1].
    """
    variants = list(estimates)
    panels = [p for p in panels if any(p[0] in estimates[v] for v in variants)]
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    with matplotlib.rc_context(STYLE):
        fig = _figure(4.4 * cols + 0.4 * len(variants), 3.8 * rows)
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax, (metric, title, ylabel) in zip(axes, panels):
            items = [estimates[v].get(metric, Estimate(v, metric, math.nan, math.nan, math.nan, 0)) for v in variants]
            _bars(ax, variants, items, ylabel, title, ylabel == "rate")
            ax.set_xlabel("variant")
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        fig.suptitle(suptitle)
        return _save(fig, path)


def ablation(rows: list[tuple[str, str | None, float]], estimates: dict[str, dict[str, Estimate]], path: Path) -> Path:
    """The Table 4 configurations: EOS-terminated rate, echo rate, mean length, with 95% CIs."""
    present = [(label, v) for label, v, _ in rows if v is not None]
    labels = [label for label, _ in present]
    panels = (("eos", "EOS-terminated rate", "rate"), ("echo", "echo rate", "rate"),
              ("output_tokens", "mean output length", "tokens"))
    with matplotlib.rc_context(STYLE):
        fig = _figure(13.5, 4.4)
        axes = fig.subplots(1, 3)
        for ax, (metric, title, ylabel) in zip(axes, panels):
            items = [estimates[v].get(metric, Estimate(v, metric, math.nan, math.nan, math.nan, 0)) for _, v in present]
            _bars(ax, labels, items, ylabel, title, ylabel == "rate")
            ax.set_xlabel("configuration (paper Table 4 rows)")
        fig.suptitle("Rule ablations (shape of the paper's Table 4), 95% CIs")
        return _save(fig, path)


def deltas(items: list[tuple[str, str, float, float, float]], path: Path, baseline: str) -> Path:
    """Forest plot of paired deltas: ``(variant, metric, delta, low, high)`` rows.

    One row per metric, one coloured point per variant; output length gets its own
    panel (a different scale).
    """
    variants = list(dict.fromkeys(i[0] for i in items))
    rate_metrics = list(dict.fromkeys(i[1] for i in items if i[1] != "output_tokens"))
    has_tokens = any(i[1] == "output_tokens" for i in items)
    k = len(variants)
    with matplotlib.rc_context(STYLE | {"axes.grid.axis": "x"}):
        fig = _figure(11.0 if has_tokens else 7.5, max(3.2, 0.28 * k * max(1, len(rate_metrics)) + 1.8))
        axes = fig.subplots(1, 2, width_ratios=[2, 1]) if has_tokens and rate_metrics else [fig.subplots()]
        panels = ([(axes[0], rate_metrics, "rates: difference in proportion / mean")] if rate_metrics else []) + \
                 ([(axes[-1], ["output_tokens"], "output length (tokens)")] if has_tokens else [])
        for ax, metrics, title in panels:
            for vi, v in enumerate(variants):
                rows = [i for i in items if i[0] == v and i[1] in metrics]
                ys = [len(metrics) - 1 - metrics.index(m) + ((k - 1) / 2 - vi) * 0.7 / max(1, k) for _, m, *_ in rows]
                ds = [d for *_, d, _, _ in rows]
                err = [[max(0.0, d - lo) for *_, d, lo, _ in rows], [max(0.0, hi - d) for *_, d, _, hi in rows]]
                ax.errorbar(ds, ys, xerr=err, fmt="o", color=COLORS[vi % len(COLORS)], capsize=3, markersize=5,
                            label=v)
            ax.set_yticks(range(len(metrics)), metrics[::-1])
            ax.set_ylim(-0.6, len(metrics) - 0.4)
            for y in range(len(metrics) - 1):
                ax.axhline(y + 0.5, color="grey", linewidth=0.4, alpha=0.5)
            ax.axvline(0, color="black", linewidth=0.8)
            ax.set_xlabel(f"treatment − {baseline}")
            ax.set_title(title)
        fig.legend(*panels[0][0].get_legend_handles_labels(), title="treatment variant", loc="outside lower center",
                   ncols=min(k, 5))
        fig.suptitle(f"Paired deltas vs {baseline} (per prompt), 95% bootstrap CIs")
        return _save(fig, path)


def grouped(rows: list[dict], group_key: str, path: Path, title: str, xlabel: str, ylabel: str) -> Path:
    """Grouped bars of metrics rows: x = ``group_key`` value, one bar per variant, CIs if stored."""
    groups = list(dict.fromkeys(r[group_key] for r in rows))
    variants = list(dict.fromkeys(r["variant"] or "-" for r in rows))
    width = 0.8 / max(1, len(variants))
    with matplotlib.rc_context(STYLE):
        fig = _figure(max(6.0, 1.3 * len(groups) * max(1, len(variants)) * 0.6 + 3), 4.4)
        ax = fig.subplots()
        for j, v in enumerate(variants):
            xs, vals, err = [], [], [[], []]
            for i, g in enumerate(groups):
                hit = [r for r in rows if r[group_key] == g and (r["variant"] or "-") == v]
                if not hit:
                    continue
                r = hit[0]
                xs.append(i + (j - (len(variants) - 1) / 2) * width)
                vals.append(r["value"])
                err[0].append(0.0 if r["ci_low"] is None else max(0.0, r["value"] - r["ci_low"]))
                err[1].append(0.0 if r["ci_high"] is None else max(0.0, r["ci_high"] - r["value"]))
            ax.bar(xs, vals, width=width, yerr=err, capsize=3, label=v, color=COLORS[j % len(COLORS)],
                   edgecolor="black", linewidth=0.5)
        ax.set_xticks(range(len(groups)), groups, rotation=20 if max(map(len, groups)) > 10 else 0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(title="variant", loc="best")
        return _save(fig, path)


def similarity(points: dict[tuple[str, str], tuple[list[float], list[float]]], path: Path) -> Path:
    """The §5.2 scatter: instruction similarity to the finetuning data (x) vs response style (y)."""
    with matplotlib.rc_context(STYLE):
        fig = _figure(7.0, 5.0)
        ax = fig.subplots()
        for i, ((metric, variant), (xs, ys)) in enumerate(points.items()):
            ax.scatter(xs, ys, s=14, alpha=0.7, color=COLORS[i % len(COLORS)], label=f"{metric} ({variant}), n={len(xs)}")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xlabel("x: mean cosine similarity of the instruction to the finetuning instructions")
        ax.set_ylabel("y: response sim. to domain − to LIMA")
        ax.set_title("Adherence to the finetuning domain (paper §5.2 / Fig. 5)")
        ax.legend(loc="best")
        return _save(fig, path)


def flip_histogram(positions: dict[str, list[int]], path: Path) -> Path:
    """Where in the output the expert changed the model's argmax, per variant."""
    top = max((max(p) for p in positions.values() if p), default=1)
    bins = min(50, top + 1)
    with matplotlib.rc_context(STYLE):
        fig = _figure(7.5, 4.2)
        ax = fig.subplots()
        for i, (variant, pos) in enumerate(positions.items()):
            ax.hist(pos, bins=bins, range=(0, top + 1), histtype="step", linewidth=1.8,
                    color=COLORS[i % len(COLORS)], label=f"{variant} ({len(pos)} flips)")
        ax.set_xlabel("generated token position (0 = first output token)")
        ax.set_ylabel("tokens where the expert flipped the argmax")
        ax.set_title("Where the rule expert changed the model's choice")
        ax.legend(loc="best")
        return _save(fig, path)
