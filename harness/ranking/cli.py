"""``harness rank``: response-ranking capability (paper Table 2) into the metrics table.

Writes, per variant, the metric rows ``ranking_total`` (Eq. 3, total log-probability)
and ``ranking_mean`` (the paper's code, per-token mean) with ``value`` = capability
rate, ``n`` = number of (real, random) comparisons and a Wilson 95 % interval, under a
run id with its ``runs`` row; then prints a small table.

Example:
    harness rank --model gemma-3-270m --data alpaca_eval.jsonl --field-response reference_output \\
        --limit 50 --variants none,rules --no-ray
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from harness.cli_util import add_verb
from harness.errors import HarnessError

TASK = "response-ranking"
EPILOG = """examples:
  # the paper's Table 2 statistic on AlpacaEval's reference outputs, 50 instructions
  harness rank --model gemma-3-270m --data alpaca_eval.jsonl --field-response reference_output --limit 50 --no-ray

  # your own pairs, without self-draws, 10 negatives each
  harness rank --model ./my-hf-model --data pairs.jsonl --field-response output --k 10 --exclude-self

then: harness query "select variant, metric, value, ci_low, ci_high from metrics where task = 'response-ranking'"
"""


def register(subparsers) -> None:
    """Add the ``rank`` verb."""
    p = add_verb(subparsers, "rank", "response ranking: does the model prefer an instruction's own response?",
                 cmd_rank, description="Score log p(real response | instruction) against k random other responses "
                 "(paper §4.2, Table 2) per variant; write ranking_total / ranking_mean metric rows.", epilog=EPILOG)
    p.add_argument("--model", default="gemma-3-270m", help="built-in name, HF dir, .gguf file or hub id (default gemma-3-270m)")
    p.add_argument("--data", required=True, help="JSONL of (instruction, response) rows")
    p.add_argument("--field-instruction", dest="field_instruction", default="instruction", help="default: instruction")
    p.add_argument("--field-response", dest="field_response",
                   help="default: the first of reference_output, response, output present")
    p.add_argument("--limit", type=int, help="use the first N rows")
    p.add_argument("--k", type=int, default=5, help="random responses per instruction (default 5, as in the paper)")
    p.add_argument("--seed", type=int, default=0, help="seed of the numpy Generator drawing them (default 0)")
    p.add_argument("--exclude-self", dest="exclude_self", action="store_true",
                   help="never draw an instruction's own response (the paper does not exclude it)")
    p.add_argument("--max-response-tokens", dest="max_response_tokens", type=int,
                   help="cut responses to their first N tokens (speed; the EOS still follows)")
    p.add_argument("--variants", default="none,rules", help="comma-separated variants (default none,rules)")
    p.add_argument("--prompt-format", dest="prompt_format", choices=["tulu", "hf"], help="default: the model's (tulu for base models)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--store", default="results", help="results directory (default ./results)")
    p.add_argument("--run-id", dest="run_id", help="name the run (default: rank-<model>-<hash of the inputs>)")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=8, help="pairs per forward pass (default 8)")
    p.add_argument("--address", help="join a Ray cluster; default: a private local cluster")
    p.add_argument("--replicas", default="1", help="data-parallel model replicas, a number or 'auto' (default 1)")
    p.add_argument("--threads", type=int, help="torch threads per replica")
    p.add_argument("--num-cpus", dest="num_cpus", type=int, help="CPUs of the private local Ray cluster")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-ray", dest="no_ray", action="store_true", help="score in this process")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _run_id(args, model, data_sha: str, field_response: str) -> str:
    from harness.provenance import slug

    payload = [model.fingerprint, data_sha, args.field_instruction, field_response, args.limit, args.k, args.seed,
               args.exclude_self, args.max_response_tokens, args.variants, args.prompt_format, args.dtype]
    return f"rank-{slug(model.name)}-{hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:10]}"


def _metric_rows(result: dict, model_name: str, details: dict) -> list[dict]:
    rows = []
    for stat in ("total", "mean"):
        s = result[stat]
        info = details | {"statistic": stat, "successes": s["successes"], "ties": s["ties"],
                          "self_draws": result["self_draws"], "n_items": result["n_items"],
                          "definition": "Eq. 3: total log p(response + EOS | instruction)" if stat == "total"
                          else "paper code: mean log p per token (response + EOS), i.e. exp(-mean loss)"}
        rows.append({"task": TASK, "model": model_name, "variant": result["variant"], "metric": f"ranking_{stat}",
                     "value": s["rate"], "n": s["n"], "ci_low": s["ci_low"], "ci_high": s["ci_high"],
                     "details": json.dumps(info, sort_keys=True)})
    return rows


def format_results(results: list[dict]) -> str:
    """A small text table of capability rates per variant.

    >>> r = {"variant": "none", "total": {"rate": .8, "ci_low": .7, "ci_high": .9, "n": 250},
    ...      "mean": {"rate": .6, "ci_low": .5, "ci_high": .7, "n": 250}}
    >>> print(format_results([r]))
    variant  pairs  ranking_total          ranking_mean
    none       250  0.800 [0.700, 0.900]   0.600 [0.500, 0.700]
    """
    width = max([7] + [len(r["variant"]) for r in results])
    lines = [f"{'variant':<{width}}  pairs  {'ranking_total':<21}  ranking_mean"]
    for r in results:
        t, m = r["total"], r["mean"]
        lines.append(f"{r['variant']:<{width}}  {t['n']:>5}  {t['rate']:.3f} [{t['ci_low']:.3f}, {t['ci_high']:.3f}]   "
                     f"{m['rate']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]")
    return "\n".join(lines)


def cmd_rank(args: argparse.Namespace) -> int:
    from harness.distributed.spec import BackendSpec
    from harness.experts.variants import parse_variants
    from harness.models import resolve
    from harness.ranking.core import rank
    from harness.ranking.data import load_pairs, truncate_responses
    from harness.run.lifecycle import RunIdentity, RunLifecycle

    if args.k < 1:
        raise HarnessError(f"--k: must be at least 1, got {args.k}")
    if args.batch_size <= 0:
        raise HarnessError(f"--batch-size: must be positive, got {args.batch_size}")
    pairs, field_response = load_pairs(args.data, args.field_instruction, args.field_response, args.limit)
    if args.exclude_self and len(pairs) < 2:
        raise HarnessError("--exclude-self: needs at least 2 rows in --data")
    variants = parse_variants([v.strip() for v in args.variants.split(",") if v.strip()])
    model = resolve(args.model)
    cut = 0
    if args.max_response_tokens:
        from transformers import AutoTokenizer

        pairs, cut = truncate_responses(pairs, AutoTokenizer.from_pretrained(str(model.path)), args.max_response_tokens)
    data_sha = hashlib.sha256(Path(args.data).read_bytes()).hexdigest()
    run_id = args.run_id or _run_id(args, model, data_sha, field_response)
    prompt_format = args.prompt_format or model.default_prompt_format
    spec = BackendSpec(model_path=str(model.path), model_name=model.name, prompt_format=prompt_format,
                       variants=tuple(variants), batch_size=args.batch_size, dtype=args.dtype, device=args.device,
                       no_ray=args.no_ray, address=args.address, num_cpus=args.num_cpus, replicas=str(args.replicas),
                       threads=args.threads)
    config = {"verb": "rank", "data": str(Path(args.data).resolve()), "data_sha256": data_sha,
              "field_instruction": args.field_instruction, "field_response": field_response, "limit": args.limit,
              "k": args.k, "seed": args.seed, "exclude_self": args.exclude_self,
              "max_response_tokens": args.max_response_tokens, "responses_truncated": cut,
              "variants": [v.name for v in variants], "prompt_format": prompt_format, "dtype": args.dtype,
              "batch_size": args.batch_size, "model": args.model, "model_path": str(model.path)}
    identity = RunIdentity(model=model.name, model_fingerprint=model.fingerprint, tasks=[TASK],
                           variants=[v.name for v in variants], config_hash=run_id.rsplit("-", 1)[-1], config=config)
    results, rows = [], []
    with RunLifecycle(args.store, run_id, identity) as life:
        backend = life.start(spec, progress=not args.quiet)
        for v in variants:
            result = rank(backend, pairs, v, k=args.k, seed=args.seed, exclude_self=args.exclude_self)
            results.append(result)
            rows += _metric_rows(result, model.name, {k: config[k] for k in
                                 ("data", "field_response", "k", "seed", "exclude_self", "max_response_tokens")})
        life.merge_metrics([r | {"run_id": run_id} for r in rows])
        life.finish(len(pairs))
        wall = life.elapsed()
    print(f"response ranking: {len(pairs)} instructions x k={args.k} ({'no' if args.exclude_self else 'with'} "
          f"self-draws, seed {args.seed}) on {model.name}"
          + (f"; {cut} response{'s' if cut != 1 else ''} cut to {args.max_response_tokens} tokens" if cut else ""))
    print(format_results(results))
    print(f"\nrun {run_id}: metrics in {args.store} ({wall:.1f} s)")
    return 0
