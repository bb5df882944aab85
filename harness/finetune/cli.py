"""``harness finetune CONFIG.yaml``: train, then print where the checkpoints are.

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser(); sub = p.add_subparsers()
    >>> register(sub)
    >>> p.parse_args(["finetune", "c.yaml", "--max-steps", "3"]).max_steps
    3
"""

from __future__ import annotations

import argparse

from harness.cli_util import add_verb

EPILOG = """examples:
  # response tuning (paper Eq. 2) of the tiny test model, 2 Ray Train workers on CPU
  harness finetune configs/finetune/tiny-response.yaml

  # single-task tuning on poetry, bounded to 20 optimizer updates
  harness finetune configs/finetune/gemma-poetry.yaml --max-steps 20

  # check the data and the loss masking without training
  harness finetune configs/finetune/gemma-response.yaml --dry-run

then evaluate a checkpoint:  harness run --model deepspeed:OUTPUT_DIR@epoch2 --tasks instructions-mini"""


def _show_example(prep) -> str:
    """The first encoded example with the trained tokens in [[...]] (for --dry-run)."""
    tok, enc = prep.tokenizer, prep.encoded[0]
    parts, current, trained = [], [], None
    for tid, lab in zip(enc.input_ids, enc.labels):
        flag = lab != -100
        if flag != trained and current:
            text = tok.decode(current)
            parts.append(f"[[{text}]]" if trained else text)
            current = []
        current.append(tid)
        trained = flag
    if current:
        text = tok.decode(current)
        parts.append(f"[[{text}]]" if trained else text)
    return "".join(parts)


def cmd_finetune(args: argparse.Namespace) -> int:
    from harness.finetune.config import FinetuneConfig
    from harness.finetune.trainer import prepare, run_finetune
    from harness.finetune.train_loop import updates_per_epoch

    overrides = {"output_dir": args.output_dir, "max_steps": args.max_steps, "epochs": args.epochs,
                 "num_workers": args.num_workers, "address": args.address, "seed": args.seed,
                 "overwrite": True if args.overwrite else None}
    cfg = FinetuneConfig.load(args.config, overrides)
    prep = prepare(cfg)
    per_epoch = updates_per_epoch(len(prep.encoded), cfg.num_workers, cfg.micro_batch_size, cfg.grad_accum_steps)
    print(f"{len(prep.encoded)} examples ({prep.encode_stats['dropped_all_masked']} dropped with no "
          f"trained token, {prep.encode_stats['truncated']} truncated); {per_epoch} updates/epoch x {cfg.epochs} epochs"
          f"{f', stopping at {cfg.max_steps}' if cfg.max_steps else ''}; grad accumulation {cfg.grad_accum_steps}")
    for d in prep.data_stats:
        print("data: " + ", ".join(f"{k}={v}" for k, v in d.items()))
    if args.dry_run:
        print("first example, trained tokens in [[...]]:\n" + _show_example(prep))
        return 0
    res = run_finetune(cfg, prep)
    first, last = (res.losses[0], res.losses[-1]) if res.losses else (float("nan"), float("nan"))
    print(f"trained {res.steps} updates in {res.wall_seconds:.1f} s; loss {first:.4f} -> {last:.4f}")
    print(f"checkpoints in {res.output_dir}: {', '.join(res.tags)}")
    if res.tags:
        print(f"evaluate: harness run --model deepspeed:{res.output_dir}@{res.tags[-1]} --tasks instructions-mini")
    return 0


def register(subparsers) -> None:
    """Add the ``finetune`` verb."""
    p = add_verb(subparsers, "finetune", "instruction-, response- or single-task-tune a model with DeepSpeed ZeRO on Ray",
                 cmd_finetune, description="Finetune a causal LM (DeepSpeed ZeRO on Ray Train workers) from a YAML config; "
                 "see docs/finetune.md for every key.", epilog=EPILOG)
    p.add_argument("config", help="a finetuning YAML config")
    p.add_argument("--output-dir", dest="output_dir", help="override output_dir")
    p.add_argument("--max-steps", dest="max_steps", type=int, help="stop after N optimizer updates")
    p.add_argument("--epochs", type=int, help="override epochs")
    p.add_argument("--num-workers", dest="num_workers", type=int, help="override num_workers")
    p.add_argument("--seed", type=int, help="override seed")
    p.add_argument("--address", help="join a Ray cluster (default: a private local one)")
    p.add_argument("--overwrite", action="store_true", help="replace a previous run in output_dir")
    p.add_argument("--dry-run", dest="dry_run", action="store_true", help="build and encode the data, show one example, no training")
