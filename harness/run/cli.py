"""``harness run`` and ``harness resume``: flags, examples and the printed result.

The flags are public (:func:`add_run_flags`): ``harness submit`` ships the same ones to a
cluster. The work itself is :func:`harness.run.runner.execute`.

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser()
    >>> add_run_flags(p)
    >>> p.parse_args(["--model", "gemma-3-270m", "--variants", "none,rules"]).variants
    'none,rules'
"""

from __future__ import annotations

import argparse

from harness.cli_util import add_verb
from harness.engines import ENGINES
from harness.prompts import FORMATS

RUN_EPILOG = """examples:
  # the paper's comparison on the embedded base model (pulls Gemma-3-270M once)
  harness run --model gemma-3-270m --tasks instructions-mini --variants none,rules

  # the rule ablations of the paper's Table 4, 8 prompts, short outputs
  harness run --model gemma-3-270m --tasks instructions-mini --variants ablations --limit 8 --max-new-tokens 64

  # your own prompts (one JSON per line: {"id": ..., "instruction": ...})
  harness run --prompts my_prompts.jsonl --model ./my-hf-model --variants none,rules:eos-uniform

  # a YAML config; flags override its settings
  harness run configs/mini.yaml --limit 4

  # the paper's Table 4 protocol (per-variant caps 8192/512) on AlpacaEval; print the plan only
  # (the 8192 caps need a model whose context holds them, e.g. gemma-3-270m's 32k)
  harness run configs/paper.yaml --model gemma-3-270m --dry-run

variants: none | rules (= rules:eos-uniform-diversity) | rules:<options> | ablations | NAME of an --expert YAML,
  each optionally followed by its own decoding settings: rules@max_new_tokens=8192, none@max_new_tokens=512
  options: eos, uniform, diversity, start, and modifiers table8 ("What" = -3), fallback (+100 EOS past
  1024 tokens), prose (diversity over the response only), fixed (anchor the EOS ramp and the diversity
  window on the prompt's tags instead of re-finding the last generated tag, docs/expert.md)."""


def add_run_flags(p: argparse.ArgumentParser, *, for_resume: bool = False) -> None:
    """The run flags, shared by ``run``, ``resume`` and ``harness submit``; ``for_resume``: only where and how to run."""
    if not for_resume:
        p.add_argument("config", nargs="?", help="a YAML run config (flags override its settings)")
        p.add_argument("--model", help="built-in name (see `harness models list`), HF dir, .gguf file or hub id (default gemma-3-270m)")
        p.add_argument("--tasks", help="comma-separated task names (see `harness tasks list`)")
        p.add_argument("--prompts", help="a JSONL file of prompts: {\"instruction\": ..., \"id\": ...} per line")
        p.add_argument("--variants", help="comma-separated variants (default none,rules); NAME@max_new_tokens=N@... sets a variant's own decoding")
        p.add_argument("--limit", type=int, help="at most N prompts per task")
        p.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, help="generation cap per response (default: each task's max_gen_toks, else 256; a variant's own @max_new_tokens wins)")
        p.add_argument("--tasks-dir", dest="tasks_dirs", action="append", help="extra directory of task YAMLs (repeatable)")
        p.add_argument("--data", action="append", help="TASK=PATH: local data file for a task (repeatable)")
        p.add_argument("--expert", dest="experts", action="append", help="an expert YAML to use as a variant by its name")
        p.add_argument("--prompt-format", dest="prompt_format", choices=list(FORMATS), help="default: the model's (tulu for base models); tulu-ab: Appendix B's <|A|>/<|B|> tags")
        p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"])
        p.add_argument("--combine", choices=["logit-add", "logsoftmax-sum"], help="how the expert joins the model (same greedy tokens)")
        p.add_argument("--trace", action="store_true", default=None,
                       help="record where the expert flipped the base model's argmax (flip_* columns of samples)")
        p.add_argument("--truncate-prompts", dest="truncate_prompts", action="store_true", default=None,
                       help="cut prompts longer than the model's context less --max-new-tokens from the left "
                            "(recorded per row in samples.prompt_truncated_tokens); default: refuse them")
        p.add_argument("--sentinel", type=float, metavar="SHARE",
                       help="share of (prompt, variant) pairs re-generated alone to prove batching changed no token "
                            "(default 0.02, at least one pair; 0 disables)")
        p.add_argument("--engine", choices=ENGINES,
                       help="generation engine: vllm (continuous batching, the expert inside vLLM), hf (the reference), "
                            "or auto = vllm when installed and it supports the model, else hf (default auto)")
        p.add_argument("--run-id", dest="run_id", help="name the run (default: model + hash of the config)")
        p.add_argument("--store", help="results directory (default ./results)")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="prompts per batch (default 8)")
    p.add_argument("--address", help="join a Ray cluster (ray://… or HOST:PORT); default: a private local cluster")
    p.add_argument("--replicas", help="data-parallel model replicas, a number or 'auto' (default 1)")
    p.add_argument("--threads", type=int, help="torch threads per replica (default: CPUs / replicas)")
    p.add_argument("--tp", type=int, help="tensor-parallel ranks per replica, DeepSpeed AutoTP on a gang of Ray actors (default 1)")
    p.add_argument("--num-cpus", dest="num_cpus", type=int, help="CPUs of the private local Ray cluster (default: all)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-ray", dest="no_ray", action="store_true", default=None, help="generate in this process (debugging)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _print_result(result) -> None:
    print(result.summary)
    print(f"\nrun {result.run_id}: {result.num_rows} sample rows in {result.store} "
          f"({result.generated} generated now, {result.timings.get('wall_seconds', 0):.1f} s, engine {result.engine})")
    ids = ", ".join(f"'{r}'" for r in result.run_id.split(","))
    print(f"query: harness query --store {result.store} \"select run_id, variant, avg(num_output_tokens) from samples "
          f"where run_id in ({ids}) group by all\"")


def cmd_run(args: argparse.Namespace) -> int:
    from harness.run.config import RunConfig
    from harness.run.runner import execute

    flags = {k: v for k, v in vars(args).items() if k not in ("func", "config", "quiet", "verbose", "dry_run")}
    cfg = RunConfig.from_sources(args.config, flags)
    if args.dry_run:
        from harness.run.plan import describe_plan, prepare

        print(describe_plan(prepare(cfg)))
        return 0
    _print_result(execute(cfg, progress=not args.quiet))
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from harness.run.runner import resume

    overrides = {k: getattr(args, k) for k in ("batch_size", "address", "replicas", "threads", "num_cpus", "tp", "device", "no_ray")}
    _print_result(resume(args.run_id, args.store, progress=not args.quiet, **overrides))
    return 0


def register(subparsers) -> None:
    """Add ``run`` and ``resume`` to the ``harness`` command."""
    run = add_verb(subparsers, "run", "generate (prompt x variant) pairs and compute metrics", cmd_run,
                   description="Generate every (prompt x variant) pair on Ray replicas and write samples, metrics and runs tables.",
                   epilog=RUN_EPILOG)
    add_run_flags(run)
    run.add_argument("--dry-run", dest="dry_run", action="store_true",
                     help="validate everything and print the plan (pairs, each variant's decoding, run id); generate nothing")
    res = add_verb(subparsers, "resume", "continue an interrupted run (only missing rows are generated)", cmd_resume,
                   epilog="example:\n  harness resume gemma-3-270m-1a2b3c4d5e --store results")
    res.add_argument("run_id")
    res.add_argument("--store", default="results")
    add_run_flags(res, for_resume=True)
