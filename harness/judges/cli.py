"""``harness judge`` (pairwise win rates) and ``harness similarity`` (domain adherence).

Both read a run from the store and append metric rows to that run's metrics table.

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser(); sub = p.add_subparsers()
    >>> register(sub)
    >>> p.parse_args(["judge", "r1", "--treatment", "rules", "--baseline", "none"]).judge
    'length'
"""

from __future__ import annotations

import json

from harness.cli_util import add_verb
from harness.errors import HarnessError


JUDGE_EPILOG = """examples:
  # the length baseline: is `rules` longer than `none` on the same prompts?
  harness judge RUN --judge length --treatment rules --baseline none

  # a local HF judge (default smollm2-135m-instruct), against the task's reference answers
  harness judge RUN --judge hf --treatment rules --against-references --limit 50

  # an OpenAI-compatible endpoint; the key is read from the variable you name
  harness judge RUN --judge http --base-url https://api.openai.com/v1 --judge-model gpt-4-turbo \\
      --api-key-env OPENAI_API_KEY --treatment rules --reference-run IT-RUN --baseline none

Each pair is judged in both orders; annotations are cached in $HARNESS_HOME/judge_cache/.
Writes the raw win rate (judge_win_rate) and, next to it, AlpacaEval's length-controlled win rate
(judge_lc_win_rate, computed by the alpaca_eval package's GLM; docs/judges.md)."""

SIM_EPILOG = """examples:
  harness similarity RUN --domain poetry --domain-data poetry_train.jsonl
  harness similarity RUN --domain gsm --domain-data gsm.jsonl --general lima.jsonl --encoder ./nomic-embed

--domain-data rows: {"instruction": ..., "response": ...} (or output/answer/completion, or chat "messages").
--general rows: responses of general instruction data (default: the samples' reference_output)."""


def register(subparsers) -> None:
    """Add the ``judge`` and ``similarity`` verbs."""
    p = add_verb(subparsers, "judge", "pairwise win rate of a variant against a baseline (LLM/length judge)",
                 cmd_judge, description="Judge each prompt's treatment output against a baseline in both orders "
                 "and write judge_win_rate (per task, and per prompt with sample_id set) and judge_lc_win_rate metric rows.", epilog=JUDGE_EPILOG)
    p.add_argument("run", help="run id in the store")
    p.add_argument("--judge", default="length", help="length | hf[:MODEL] | http (default length)")
    p.add_argument("--treatment", required=True, help="variant whose outputs are judged (output A)")
    p.add_argument("--baseline", help="variant of the same run (or of --reference-run) to compare against")
    p.add_argument("--reference-run", dest="reference_run", help="compare against another run's outputs")
    p.add_argument("--against-references", dest="against_references", action="store_true",
                   help="compare against the task's reference answers (doc reference_output/reference)")
    p.add_argument("--limit", type=int, help="judge the first N prompts per task")
    p.add_argument("--base-url", dest="base_url", help="http judge: OpenAI-compatible base URL (…/v1)")
    p.add_argument("--judge-model", dest="judge_model", help="http judge: model name")
    p.add_argument("--api-key-env", dest="api_key_env", help="http judge: NAME of the env var holding the API key")
    p.add_argument("--timeout", type=float, default=60.0, help="http judge: seconds per request (default 60)")
    p.add_argument("--no-logprobs", dest="no_logprobs", action="store_true", help="http judge: do not request logprobs")
    p.add_argument("--no-cache", dest="no_cache", action="store_true", help="do not read or write the annotation cache")
    p.add_argument("--lc-iters", dest="lc_iters", type=int, default=100,
                   help="bootstrap refits for the LC win rate's 95%% CI (default 100; 0 = LC without a CI)")
    p.add_argument("--no-lc", dest="no_lc", action="store_true",
                   help="skip the length-controlled win rate (alpaca_eval's GLM)")
    p.add_argument("--store", default="results", help="results directory (default ./results)")

    s = add_verb(subparsers, "similarity", "domain adherence: embedding similarity x/y and Spearman (paper §5.2)",
                 cmd_similarity, description="Per sample: x = mean similarity of the instruction to the domain's "
                 "instructions, y = mean similarity of the response to domain responses minus to general responses; "
                 "writes similarity_xy and similarity_spearman metric rows (reference domain:<domain>).", epilog=SIM_EPILOG)
    s.add_argument("run", help="run id in the store")
    s.add_argument("--domain", required=True, help="domain name (gsm, mbpp, poetry, recipe, chess, ...)")
    s.add_argument("--domain-data", dest="domain_data", required=True, help="JSONL of the domain's training rows")
    s.add_argument("--general", help="JSONL of general responses (default: the samples' reference_output)")
    s.add_argument("--encoder", help="local HF encoder dir (default all-MiniLM-L6-v2 from PyPI)")
    s.add_argument("--variant", action="append", help="variants to score (repeatable; default all)")
    s.add_argument("--task", action="append", help="tasks to score (repeatable; default all)")
    s.add_argument("--limit", type=int, help="at most N samples per (task, variant)")
    s.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    s.add_argument("--store", default="results", help="results directory (default ./results)")


def make_judge(args):
    """Build the judge the flags name (``length``, ``hf[:MODEL]``, ``http``)."""
    from harness.judges.base import JudgeCache, LengthJudge

    kind, _, arg = args.judge.partition(":")
    cache = False if getattr(args, "no_cache", False) else JudgeCache()
    if kind == "length":
        return LengthJudge()
    if kind == "hf":
        from harness.judges.hf import DEFAULT_MODEL, HFJudge

        return HFJudge(arg or DEFAULT_MODEL, cache=cache)
    if kind == "http":
        from harness.judges.http import HttpJudge

        if not args.base_url:
            raise HarnessError("--judge http: needs --base-url URL and --judge-model NAME")
        return HttpJudge(args.base_url, args.judge_model, api_key_env=args.api_key_env, timeout=args.timeout,
                         logprobs=not args.no_logprobs, cache=cache)
    raise HarnessError(f"--judge {args.judge!r}: expected length, hf[:MODEL] or http")


def cmd_judge(args) -> int:
    from harness.judges.winrate import append_metrics, judge_pairs, metric_rows, pair_outputs, summary_line
    from harness.results.api import Results
    from harness.run.lifecycle import extend_run

    extend_run(args.store, args.run)  # the run exists: one line naming the store's runs otherwise
    results = Results(args.store)
    if args.limit is not None and args.limit < 1:
        raise HarnessError(f"--limit {args.limit}: must be at least 1")
    if args.lc_iters < 0:
        raise HarnessError(f"--lc-iters {args.lc_iters}: must be 0 or more")
    pairset = pair_outputs(results, args.run, args.treatment, baseline=args.baseline,
                           reference_run=args.reference_run, against_references=args.against_references,
                           limit=args.limit)
    judge = make_judge(args)
    prefs = judge_pairs(judge, pairset.pairs)
    rows = metric_rows(args.run, pairset, prefs, judge.judge_id, lc_iters=None if args.no_lc else args.lc_iters)
    path = append_metrics(args.store, args.run, rows)
    print(summary_line(rows))
    print(f"judge {judge.judge_id}: {len(prefs)} prompts, both orders; metrics in {path}")
    return 0


def _general_from(path: str | None, samples: list[dict]) -> list[str]:
    from harness.metrics.similarity import RESPONSE_FIELDS, pick_field

    if path is not None:
        import pathlib

        p = pathlib.Path(path)
        if not p.is_file():
            raise HarnessError(f"--general {path}: no such file")
        out = []
        for n, line in enumerate(p.read_text("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise HarnessError(f"{p}:{n}: bad JSON ({exc.msg})") from None
            text = row if isinstance(row, str) else next((row.get(f) for f in RESPONSE_FIELDS
                                                          if isinstance(row, dict) and isinstance(row.get(f), str)), None)
            if text is None and isinstance(row, dict) and "messages" in row:
                text = pick_field(row, RESPONSE_FIELDS, f"{p}:{n}")
            if text is None:
                raise HarnessError(f"{p}:{n}: no response field (tried {', '.join(RESPONSE_FIELDS)})")
            out.append(text)
        return out
    from harness.judges.winrate import _reference_of

    refs = {r["sample_id"]: _reference_of(r.get("doc_json"), ("reference_output", "reference")) for r in samples}
    out = [t for t in refs.values() if t]
    if not out:
        raise HarnessError("similarity: the samples carry no reference_output; give --general FILE.jsonl")
    return out


def cmd_similarity(args) -> int:
    from harness.judges.winrate import append_metrics
    from harness.metrics.similarity import HFEncoder, load_domain_rows, similarity_metric_rows, similarity_points
    from harness.results.api import Results
    from harness.run.lifecycle import extend_run

    extend_run(args.store, args.run)  # the run exists: one line naming the store's runs otherwise
    results = Results(args.store)
    samples = [r for r in results.samples(run=args.run, task=args.task, variant=args.variant).to_pylist()
               if r.get("status") != "error"]
    if not samples:
        raise HarnessError(f"similarity: run {args.run!r} has no successful samples to score")
    domain_rows = load_domain_rows(args.domain_data)
    general = _general_from(args.general, samples)
    encoder = HFEncoder(args.encoder)
    groups: dict[tuple, list[dict]] = {}
    for r in samples:
        groups.setdefault((r["task"], r["variant"]), []).append(r)
    rows = []
    for (task, variant), group in sorted(groups.items()):
        if args.limit is not None:
            group = group[: args.limit]
        points, rho, ci = similarity_points(group, domain_rows, general, encoder, seed=args.seed)
        rows += similarity_metric_rows(args.run, points, rho, ci, args.domain, model=group[0].get("model"),
                                       encoder_name=encoder.name,
                                       extra={"n_domain": len(domain_rows), "n_general": len(general)})
        print(f"{args.run} {task} {variant}: Spearman(x, y) = {rho:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] "
              f"(n={points.num_rows}, domain {args.domain}, encoder {encoder.name})")
    path = append_metrics(args.store, args.run, rows,
                          replace_metrics=("similarity_xy", "similarity_spearman"))
    print(f"metrics in {path}")
    return 0
