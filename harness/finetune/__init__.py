"""Finetuning: instruction tuning, response tuning and single-task tuning (paper §4–5).

``harness finetune CONFIG.yaml`` trains a causal LM with DeepSpeed ZeRO (stage 2 or 3) on
Ray Train data-parallel workers and writes ZeRO checkpoints per epoch plus the HF config
and tokenizer, so ``deepspeed:OUTPUT@TAG`` can be evaluated with ``harness run``.

Importing this package is cheap: torch, Ray and DeepSpeed load only when training starts.

Example:
    >>> from harness.finetune import Example, response_only
    >>> response_only(Example("1", (("user", "Hi"), ("assistant", "Hello")))).messages[0]
    ('user', '')
"""

from harness.finetune.config import DataSpec, FinetuneConfig
from harness.finetune.datasets import BUILDERS, build, build_all
from harness.finetune.encoding import IGNORE_INDEX, Encoded, Example, encode, encode_examples, response_only
from harness.finetune.schedule import lr_factor, warmup_steps
from harness.finetune.trainer import FinetuneResult, prepare, run_finetune

__all__ = [
    "BUILDERS", "DataSpec", "Encoded", "Example", "FinetuneConfig", "FinetuneResult", "IGNORE_INDEX", "build",
    "build_all", "encode", "encode_examples", "lr_factor", "prepare", "response_only", "run_finetune",
    "warmup_steps",
]
