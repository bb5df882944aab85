"""The per-worker training loop: DeepSpeed ZeRO inside a Ray Train worker.

Ray Train has already joined the workers in a ``torch.distributed`` process group (gloo on
CPU, nccl on GPU) and set ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``; DeepSpeed reuses it.
Every rank walks the same seeded permutation of the encoded examples, takes every
``world``-th one (wrapping around so all ranks do the same number of micro-batches, like
``DistributedSampler``), accumulates ``grad_accum_steps`` micro-batches per optimizer
update (the last update of an epoch may take fewer), and saves a ZeRO checkpoint
``epoch{e}`` after each epoch (all ranks call ``save_checkpoint``). Rank 0 appends one
line per update to ``train_log.jsonl``.

Example:
    >>> plan = epoch_plan(n=10, world=2, micro=1, accum=2, seed=0, epoch=1, rank=0)
    >>> len(plan), [len(u) for u in plan]
    (3, [2, 2, 1])
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)


def epoch_plan(*, n: int, world: int, micro: int, accum: int, seed: int, epoch: int, rank: int) -> list[list[list[int]]]:
    """Example indices for one rank and epoch, as updates -> micro-batches -> indices.

    The order comes from ``numpy.random.default_rng([seed, epoch])`` only, so a seed fixes
    the data order on every rank and every run.
    """
    import numpy as np

    perm = np.random.default_rng([seed, epoch]).permutation(n).tolist()
    total = math.ceil(n / world) * world
    perm += [perm[i % n] for i in range(total - n)]  # wrap around (DistributedSampler-style)
    shard = perm[rank::world]
    micros = [shard[i:i + micro] for i in range(0, len(shard), micro)]
    return [micros[i:i + accum] for i in range(0, len(micros), accum)]


def updates_per_epoch(n: int, world: int, micro: int, accum: int) -> int:
    """Optimizer updates in one epoch (the last one may be partial), e.g. LIMA 1030 -> 17.

    >>> updates_per_epoch(1030, 2, 1, 32), updates_per_epoch(571, 2, 1, 32), updates_per_epoch(374, 2, 1, 32)
    (17, 9, 6)
    """
    per_rank = math.ceil(n / world)
    return math.ceil(math.ceil(per_rank / micro) / accum)


def deepspeed_config(cfg, *, on_gpu: bool) -> dict:
    """The DeepSpeed config dict (the paper's stage-3 settings, minus what CPU lacks)."""
    zero: dict = {"stage": cfg.zero_stage, "contiguous_gradients": True, "overlap_comm": bool(on_gpu)}
    if cfg.zero_stage == 3:
        zero.update({"sub_group_size": 1e9, "stage3_max_live_parameters": 1e9, "stage3_max_reuse_distance": 1e9,
                     "stage3_gather_16bit_weights_on_model_save": True})
    return {
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": cfg.grad_accum_steps,
        "gradient_clipping": cfg.gradient_clipping,
        "zero_optimization": zero,
        "zero_force_ds_cpu_optimizer": False,
        "bf16": {"enabled": cfg.dtype == "bfloat16"},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def train_loop_per_worker(config: dict) -> None:
    """Ray Train entry point; ``config`` holds ``cfg`` (FinetuneConfig), ``model_path``, ``data`` (ObjectRef)."""
    import ray
    import ray.train
    import ray.train.torch
    import torch

    cfg = config["cfg"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    if not cfg.use_gpu:
        torch.set_num_threads(max(1, int(cfg.cpus_per_worker)))
    from harness.deepspeed_compat import disable_shm_op

    disable_shm_op()
    import deepspeed
    from transformers import AutoModelForCausalLM

    from harness.finetune.encoding import collate, example_loss
    from harness.finetune.schedule import make_scheduler

    data = ray.get(config["data"])
    pad_id = config["pad_id"]
    out = Path(cfg.output_dir)
    device = ray.train.torch.get_device() if cfg.use_gpu else torch.device("cpu")

    torch.manual_seed(cfg.seed)  # any newly initialised weights (none for our models) and dropout
    model = AutoModelForCausalLM.from_pretrained(config["model_path"], dtype=torch.float32)
    model.config.use_cache = False
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  betas=(0.9, 0.999), eps=1e-8)
    per_epoch = updates_per_epoch(len(data), world, cfg.micro_batch_size, cfg.grad_accum_steps)
    total = per_epoch * cfg.epochs if cfg.max_steps is None else min(cfg.max_steps, per_epoch * cfg.epochs)
    deepspeed.init_distributed(dist_backend="nccl" if cfg.use_gpu else "gloo")
    engine, _, _, scheduler = deepspeed.initialize(
        model=model, optimizer=optimizer, config=deepspeed_config(cfg, on_gpu=cfg.use_gpu),
        lr_scheduler=lambda opt: make_scheduler(opt, total=total, warmup_ratio=cfg.warmup, kind=cfg.schedule),
    )
    engine.train()
    log_file = open(out / "train_log.jsonl", "a", encoding="utf-8") if rank == 0 else None  # noqa: SIM115
    step, start, last_tag = 0, time.monotonic(), None
    try:
        for epoch in range(1, cfg.epochs + 1):
            plan = epoch_plan(n=len(data), world=world, micro=cfg.micro_batch_size, accum=cfg.grad_accum_steps,
                              seed=cfg.seed, epoch=epoch, rank=rank)
            for update in plan:
                lr = scheduler.get_last_lr()[0]
                losses, tokens = [], 0
                for j, idx in enumerate(update):
                    batch = {k: v.to(device) for k, v in collate([data[i] for i in idx], pad_id).items()}
                    engine.set_gradient_accumulation_boundary(j == len(update) - 1)
                    logits = engine(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                    loss = example_loss(logits, batch["labels"])
                    engine.backward(loss / len(update), scale_wrt_gas=False)
                    engine.step()
                    losses.append(loss.detach().float())
                    tokens += int((batch["labels"] != -100).sum())
                step += 1
                mean = torch.stack(losses).mean().to(device)
                torch.distributed.all_reduce(mean)
                if log_file is not None:
                    log_file.write(json.dumps({"step": step, "epoch": epoch, "loss": round(mean.item() / world, 6),
                                               "lr": lr, "micro_batches": len(update), "trained_tokens_rank0": tokens,
                                               "elapsed_s": round(time.monotonic() - start, 2)}) + "\n")
                    log_file.flush()
                if step >= total:
                    break
            last_tag = f"epoch{epoch}" if step % per_epoch == 0 else f"step{step}"
            engine.save_checkpoint(str(out), tag=last_tag)
            if step >= total:
                break
    finally:
        if log_file is not None:
            log_file.close()
    ray.train.report({"steps": step, "last_tag": last_tag, "rank": rank, "pid": os.getpid()})
