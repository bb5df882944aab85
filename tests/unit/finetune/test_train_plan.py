"""Data order, sharding, accumulation arithmetic and the DeepSpeed config (no training)."""

from __future__ import annotations

from harness.finetune.config import FinetuneConfig
from harness.finetune.train_loop import deepspeed_config, epoch_plan, updates_per_epoch


def _flat(plan):
    return [i for update in plan for micro in update for i in micro]


def test_seed_fixes_the_order_and_ranks_partition_it():
    a = [epoch_plan(n=9, world=2, micro=1, accum=2, seed=3, epoch=1, rank=r) for r in (0, 1)]
    b = [epoch_plan(n=9, world=2, micro=1, accum=2, seed=3, epoch=1, rank=r) for r in (0, 1)]
    assert a == b
    r0, r1 = _flat(a[0]), _flat(a[1])
    assert len(r0) == len(r1) == 5                       # 9 padded to 10 by wrapping around
    assert set(r0) | set(r1) == set(range(9))
    other = _flat(epoch_plan(n=9, world=2, micro=1, accum=2, seed=4, epoch=1, rank=0))
    next_epoch = _flat(epoch_plan(n=9, world=2, micro=1, accum=2, seed=3, epoch=2, rank=0))
    assert other != r0 and next_epoch != r0


def test_micro_batches_and_partial_last_update():
    plan = epoch_plan(n=14, world=2, micro=2, accum=2, seed=0, epoch=1, rank=1)
    assert [[len(m) for m in u] for u in plan] == [[2, 2], [2, 1]]


def test_paper_updates_per_epoch():
    # paper-spec §1.7: LIMA 17; GSM, chess, recipes 16; poetry 9; MBPP 6 (2 processes, accumulation 32)
    assert [updates_per_epoch(n, 2, 1, 32) for n in (1030, 1000, 571, 374)] == [17, 16, 9, 6]


def test_deepspeed_config_dict():
    cfg = FinetuneConfig.from_dict({"output_dir": "/tmp/x", "data": {"format": "gsm", "path": "g"},
                                    "batch_size": 8, "num_workers": 2, "dtype": "bfloat16",
                                    "gradient_clipping": 1.0}, source="t")
    ds = deepspeed_config(cfg, on_gpu=False)
    assert ds["train_micro_batch_size_per_gpu"] == 1 and ds["gradient_accumulation_steps"] == 4
    assert ds["zero_optimization"]["stage"] == 3 and ds["zero_optimization"]["overlap_comm"] is False
    assert ds["bf16"] == {"enabled": True} and ds["gradient_clipping"] == 1.0
    two = deepspeed_config(FinetuneConfig.from_dict({"output_dir": "/tmp/x", "data": {"format": "gsm", "path": "g"},
                                                     "zero_stage": 2}, source="t"), on_gpu=True)
    assert two["zero_optimization"] == {"stage": 2, "contiguous_gradients": True, "overlap_comm": True}
