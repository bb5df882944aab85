"""CLI verbs over a results store: ``query``, ``runs list``, ``compare``, ``export``, ``report``.

Each verb opens the store with :func:`harness.results.open`; an unknown store, run,
variant or metric raises :class:`~harness.errors.HarnessError` (one line, exit code 2).

Example:
    >>> from harness.cli import main
    >>> main(["runs", "list", "--store", "/nonexistent"])  # doctest: +SKIP
    harness: --store /nonexistent: no results store there ...
    2
"""

from __future__ import annotations

import argparse
import json
import sys

from harness.cli_util import add_verb
from harness.errors import HarnessError

STORE_HELP = "results directory (default ./results)"

RUNS_EPILOG = """examples:
  harness runs list
  harness runs list --store results --format csv"""

COMPARE_EPILOG = """examples:
  # rules vs the base model within one run, every per-sample metric
  harness compare gemma-3-270m-1a2b3c4d5e --baseline none --treatment rules

  # one ablation, two metrics, all flipped prompts
  harness compare RUN --baseline rules --treatment rules:uniform-diversity --metric eos echo --max-flips 0

  # the same variant across two runs (e.g. two checkpoints), paired by (task, sample_id)
  harness compare RUN_STEP100 RUN_STEP200 --variant rules

metrics (per sample): eos, output_tokens, echo, role_tag, distinct_2, refusal, and any per-sample
rows in the metrics table (e.g. IFEval booleans); style_leak_<poetry|gsm|code|chess|recipe> when
named with --metric. Booleans also get McNemar tests and flip listings."""

EXPORT_EPILOG = """examples:
  # AlpacaEval model outputs of one variant
  harness export RUN --format alpaca-eval --variant rules --out outputs/rules.json
  alpaca_eval --model_outputs outputs/rules.json

  harness export RUN --format jsonl > samples.jsonl
  harness export RUN --format csv --variant none --out none.csv"""

REPORT_EPILOG = """examples:
  harness report RUN --out reports/RUN
  harness report RUN --store results --out /tmp/report && open /tmp/report/report.md

The report holds shape/adherence metrics by variant with CIs, paired deltas vs none, the
ablation table in the shape of the paper's Table 4, judged win rates (raw and length-controlled),
style leak by domain, the §5.2 similarity scatter and a histogram of where the expert flipped
tokens, when the run has them."""


def _open(args: argparse.Namespace):
    from harness.results import open as open_results

    return open_results(args.store)


def cmd_runs_list(args: argparse.Namespace) -> int:
    from harness.results.render import format_runs
    from harness.store import format_table

    runs = _open(args).runs()
    if args.format == "table":
        print(format_runs(runs))
    else:
        print(format_table(runs.select(["run_id", "created_at", "status", "model", "tasks", "variants", "n_samples"]),
                           args.format))
    return 0


def _sides(args: argparse.Namespace, results) -> tuple:
    from harness.results import Side

    run_a = results.check_run(args.run)
    if args.run2 is None:
        if args.variant:
            raise HarnessError("compare: --variant is for two runs; with one run give --baseline and --treatment")
        return Side(run_a, args.baseline or "none"), Side(run_a, args.treatment or "rules")
    run_b = results.check_run(args.run2)
    if args.variant and (args.baseline or args.treatment):
        raise HarnessError("compare: give --variant, or --baseline/--treatment, not both")
    if args.variant:
        return Side(run_a, args.variant), Side(run_b, args.variant)
    if args.baseline or args.treatment:
        return Side(run_a, args.baseline or args.treatment), Side(run_b, args.treatment or args.baseline)
    common = sorted(set(results.samples(run=run_a).column("variant").to_pylist())
                    & set(results.samples(run=run_b).column("variant").to_pylist()))
    if len(common) != 1:
        raise HarnessError(f"compare: runs {run_a!r} and {run_b!r} share variants {', '.join(common) or 'none'}; "
                           f"pick one with --variant")
    return Side(run_a, common[0]), Side(run_b, common[0])


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.results import compare
    from harness.results.render import format_comparison

    if args.iters < 1:
        raise HarnessError(f"--iters: must be at least 1, got {args.iters}")
    results = _open(args)
    baseline, treatment = _sides(args, results)
    cmp = compare(results, baseline, treatment, metrics=args.metric, iters=args.iters, seed=args.seed,
                  mixed_caps=args.mixed_caps)
    if args.format == "json":
        print(json.dumps(cmp.to_dict(), indent=2))
    else:
        print(format_comparison(cmp, None if args.max_flips == 0 else args.max_flips))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from harness.results.export import count_errors, export_text, write_export

    results = _open(args)
    run = results.check_run(args.run)
    text = export_text(results, run, args.format, variant=args.variant, generator=args.generator)
    errors = count_errors(results.samples(run=run, variant=args.variant))
    if errors and args.format == "alpaca-eval":
        print(f"harness: left out {errors} rows whose generation failed (status error)", file=sys.stderr)
    path = write_export(text, args.out)
    if path is None:
        sys.stdout.write(text)
    else:
        print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report import build_report

    results = _open(args)
    run = results.check_run(args.run)
    path = build_report(results, run, args.out or f"report-{run}", iters=args.iters, seed=args.seed)
    print(f"wrote {path} and {len(list(path.parent.glob('*.png')))} plots in {path.parent}")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from harness.store import format_table, run_query

    print(format_table(run_query(args.store, args.sql, allow_writes=args.allow_writes), args.format))
    return 0


def register(subparsers) -> None:
    """Add ``query``, ``runs``, ``compare``, ``export`` and ``report`` to the ``harness`` command."""
    q = add_verb(subparsers, "query", "run DuckDB SQL over the tables samples, metrics, runs", cmd_query,
                 epilog="examples:\n  harness query \"select variant, avg(num_output_tokens) from samples group by variant\"\n"
                        "  harness query --format csv \"select * from metrics where metric = 'eos_rate'\"")
    q.add_argument("sql")
    q.add_argument("--store", default="results", help="results directory (default ./results)")
    q.add_argument("--format", default="table", choices=["table", "csv", "json"])
    q.add_argument("--allow-writes", dest="allow_writes", action="store_true",
                   help="run any SQL (COPY, ATTACH, SET, several statements); default: one read-only SELECT-like "
                        "statement over the views, no file access")
    runs = add_verb(subparsers, "runs", "list the runs in a results store", cmd_runs_list,
                    description="List the runs in a results store: id, created, status, model, tasks, variants, "
                                "committed sample rows.", epilog=RUNS_EPILOG)
    runs_sub = runs.add_subparsers(dest="runs_verb", metavar="{list}")
    lst = add_verb(runs_sub, "list", "one line per run (the default)", cmd_runs_list,
                   description="List the runs in a results store, oldest first.", epilog=RUNS_EPILOG)
    # the sub-verb's defaults are SUPPRESS so `harness runs --store X list` keeps X
    for p, store_default, fmt_default in ((runs, "results", "table"), (lst, argparse.SUPPRESS, argparse.SUPPRESS)):
        p.add_argument("--store", default=store_default, help=STORE_HELP)
        p.add_argument("--format", default=fmt_default, choices=["table", "csv", "json"])

    cmp = add_verb(subparsers, "compare", "paired deltas with CIs between two variants or two runs", cmd_compare,
                   description="Paired comparison by (task, sample_id): per-metric deltas (treatment - baseline) "
                               "with bootstrap 95% CIs, McNemar tests for booleans, and the prompts whose "
                               "adherence flipped.", epilog=COMPARE_EPILOG)
    cmp.add_argument("run", help="run id (see `harness runs list`)")
    cmp.add_argument("run2", nargs="?", help="a second run: compare the same variant across the two runs")
    cmp.add_argument("--baseline", help="baseline variant (one run: default none)")
    cmp.add_argument("--treatment", help="treatment variant (one run: default rules)")
    cmp.add_argument("--variant", help="with two runs: the variant to compare (default: the one they share)")
    cmp.add_argument("--metric", nargs="+", action="extend", metavar="M", help="per-sample metrics (default: all)")
    cmp.add_argument("--iters", type=int, default=2000, help="bootstrap resamples (default 2000)")
    cmp.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    cmp.add_argument("--max-flips", dest="max_flips", type=int, default=20,
                     help="flipped prompts to list (default 20; 0 = all)")
    cmp.add_argument("--mixed-caps", dest="mixed_caps", action="store_true",
                     help="also pair rows generated with different max_new_tokens (e.g. rules at 8192 vs none at 512)")
    cmp.add_argument("--format", default="table", choices=["table", "json"])
    cmp.add_argument("--store", default="results", help=STORE_HELP)

    exp = add_verb(subparsers, "export", "write a run's outputs as AlpacaEval JSON, JSONL or CSV", cmd_export,
                   description="Export a run's sample rows. alpaca-eval: a JSON list of {instruction, output, "
                               "generator, dataset} for one variant; jsonl: every column; csv: scalar columns.",
                   epilog=EXPORT_EPILOG)
    exp.add_argument("run", help="run id (see `harness runs list`)")
    exp.add_argument("--format", default="jsonl", choices=["alpaca-eval", "jsonl", "csv"])
    exp.add_argument("--variant", help="only this variant (required for alpaca-eval when the run has several)")
    exp.add_argument("--generator", help="alpaca-eval generator name (default MODEL+VARIANT)")
    exp.add_argument("--out", help="output file (default: stdout)")
    exp.add_argument("--store", default="results", help=STORE_HELP)

    rep = add_verb(subparsers, "report", "write report.md with PNG plots for a run", cmd_report,
                   description="Write a markdown report with PNG plots (metrics by variant with CIs, paired deltas, "
                               "ablations, style leak, similarity, expert flips) for one run.", epilog=REPORT_EPILOG)
    rep.add_argument("run", help="run id (see `harness runs list`)")
    rep.add_argument("--out", help="output directory (default ./report-RUN)")
    rep.add_argument("--iters", type=int, default=2000, help="bootstrap resamples (default 2000)")
    rep.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    rep.add_argument("--store", default="results", help=STORE_HELP)
