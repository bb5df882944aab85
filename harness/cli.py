"""The ``harness`` command line.

Every verb lives with its room (``harness/models/cli.py``, ``harness/tasks/cli.py``, …)
and registers itself here. Bad input — a missing file, an unknown name, malformed YAML
or JSONL — prints one line on stderr and exits with code 2.

Example:
    >>> main(["query", "--store", "/nonexistent", "select 1"])  # doctest: +SKIP
    harness: --store /nonexistent: no results store there ...
    2
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from harness import __version__
from harness.cli_util import add_verb
from harness.engines import ENGINES
from harness.errors import HarnessError
from harness.prompts import FORMATS

ROOMS = ("harness.models.cli", "harness.tasks.cli", "harness.distributed.cli", "harness.results_cli",
         "harness.ranking.cli", "harness.judges.cli", "harness.finetune.cli")

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
    from harness.config import RunConfig
    from harness.runner import execute

    flags = {k: v for k, v in vars(args).items() if k not in ("func", "config", "quiet", "verbose", "dry_run")}
    cfg = RunConfig.from_sources(args.config, flags)
    if args.dry_run:
        from harness.plan import describe_plan, prepare

        print(describe_plan(prepare(cfg)))
        return 0
    _print_result(execute(cfg, progress=not args.quiet))
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from harness.runner import resume

    overrides = {k: getattr(args, k) for k in ("batch_size", "address", "replicas", "threads", "num_cpus", "tp", "device", "no_ray")}
    _print_result(resume(args.run_id, args.store, progress=not args.quiet, **overrides))
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from harness.store import format_table, run_query

    print(format_table(run_query(args.store, args.sql, allow_writes=args.allow_writes), args.format))
    return 0


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), like every other bad input."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="harness",
        description="Evaluate implicit instruction tuning: causal LMs with and without the paper's rule expert,\n"
                    "on Ray, into Parquet tables you query with SQL.",
        epilog="start here:  harness run --tasks instructions-mini --limit 8     then: harness query \"select * from metrics\"",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    run = add_verb(sub, "run", "generate (prompt x variant) pairs and compute metrics", cmd_run,
                   description="Generate every (prompt x variant) pair on Ray replicas and write samples, metrics and runs tables.",
                   epilog=RUN_EPILOG)
    add_run_flags(run)
    run.add_argument("--dry-run", dest="dry_run", action="store_true",
                     help="validate everything and print the plan (pairs, each variant's decoding, run id); generate nothing")
    res = add_verb(sub, "resume", "continue an interrupted run (only missing rows are generated)", cmd_resume,
                   epilog="example:\n  harness resume gemma-3-270m-1a2b3c4d5e --store results")
    res.add_argument("run_id")
    res.add_argument("--store", default="results")
    add_run_flags(res, for_resume=True)
    q = add_verb(sub, "query", "run DuckDB SQL over the tables samples, metrics, runs", cmd_query,
                 epilog="examples:\n  harness query \"select variant, avg(num_output_tokens) from samples group by variant\"\n"
                        "  harness query --format csv \"select * from metrics where metric = 'eos_rate'\"")
    q.add_argument("sql")
    q.add_argument("--store", default="results", help="results directory (default ./results)")
    q.add_argument("--format", default="table", choices=["table", "csv", "json"])
    q.add_argument("--allow-writes", dest="allow_writes", action="store_true",
                   help="run any SQL (COPY, ATTACH, SET, several statements); default: one read-only SELECT-like "
                        "statement over the views, no file access")
    for module in ROOMS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue  # that room is not built yet
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except HarnessError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("harness: interrupted; `harness resume` continues the run", file=sys.stderr)
        return 130


if __name__ == "__main__":
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    sys.exit(main())
