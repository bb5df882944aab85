"""Fixture builders: REAL DeepSpeed ZeRO-3 checkpoints of a tiny HF model, made on CPU.

:func:`make_zero3_checkpoint` launches this file as a script, in a subprocess (one rank)
or under ``torchrun --nproc_per_node N`` (several ranks), with gloo on 127.0.0.1, a free
port and DeepSpeed's shm comm op disabled (no JIT compile, no segfault; see
docs/deepspeed.md). Each rank initialises a ZeRO-3 engine from the model and saves the
tags it is asked for; a tag saved before any step holds exactly the source weights.

Example:
    >>> make_zero3_checkpoint(tiny_dir, tmp / "ckpt", world_size=2,
    ...                       tags=["global_step2"])          # doctest: +SKIP
    PosixPath('.../ckpt')
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

HF_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
            "special_tokens_map.json")


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_hf_files(model_dir: Path, dest: Path) -> Path:
    """Copy config/tokenizer files (no weights) like a training output dir holds them."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in HF_FILES:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, dest / name)
    return dest


def make_zero3_checkpoint(model_dir: Path, out: Path, *, world_size: int = 1, tags: list[str],
                          step_before: tuple[str, ...] = (), stage: int = 3, timeout: float = 180) -> Path:
    """Save a ZeRO-3 checkpoint of ``model_dir`` into ``out`` (one dir per tag).

    Args:
        model_dir: a tiny HF model dir (the source weights).
        out: checkpoint dir to create (``latest`` names the last tag saved).
        world_size: ranks (1: plain subprocess; more: torchrun).
        tags: tags to save, in order.
        step_before: tags preceded by one AdamW step (lr 1e-2), so their weights differ.
        stage: ZeRO stage (3 by default; 2 works the same way).
    """
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    args = [str(model_dir), str(out), "--stage", str(stage), "--tags", *tags, "--step-before", *step_before]
    for attempt in range(3):  # a port free a moment ago can be taken before the rendezvous binds it
        port = str(free_port())
        if world_size == 1:
            env.update(MASTER_PORT=port, RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
            cmd = [sys.executable, __file__, *args]
        else:
            cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={world_size}",
                   "--master_addr=127.0.0.1", f"--master_port={port}", __file__, *args]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode == 0:
            return out
        port_clash = "address already in use" in (proc.stdout + proc.stderr).lower()
        if not port_clash or attempt == 2:
            raise RuntimeError(f"checkpoint build failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return out


def _train_and_save(model_dir: str, out: str, tags: list[str], step_before: list[str], stage: int) -> None:
    from harness.deepspeed_compat import disable_shm_op

    disable_shm_op()  # before init_distributed
    import deepspeed
    import torch
    from transformers import AutoModelForCausalLM

    deepspeed.init_distributed(dist_backend="gloo")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = {"train_micro_batch_size_per_gpu": 1, "zero_optimization": {"stage": stage},
              "zero_force_ds_cpu_optimizer": False, "steps_per_print": 10**9}
    engine, *_ = deepspeed.initialize(model=model, optimizer=torch.optim.AdamW(model.parameters(), lr=1e-2),
                                      config=config)
    ids = torch.arange(1, 17).unsqueeze(0) % 100
    for tag in tags:
        if tag in step_before:
            loss = engine(input_ids=ids, labels=ids).loss
            engine.backward(loss)
            engine.step()
        engine.save_checkpoint(out, tag=tag)
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()  # a rank torn down mid-collective can abort


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("model_dir")
    p.add_argument("out")
    p.add_argument("--tags", nargs="+", required=True)
    p.add_argument("--step-before", nargs="*", default=[])
    p.add_argument("--stage", type=int, default=3)
    a = p.parse_args()
    _train_and_save(a.model_dir, a.out, a.tags, a.step_before, a.stage)
