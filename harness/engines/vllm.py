"""The ``vllm`` engine: vLLM's offline ``LLM`` with the rule expert inside the engine.

Every (prompt x variant) request of a call goes to vLLM at once; continuous batching
frees a row as soon as it stops (the rules make rows stop at different times). Prompts
are the same token ids the HF engine feeds (:func:`harness.prompts.encode_items`),
each request carries its expert in ``SamplingParams.extra_args``
(:func:`harness.engines.rule_state.request_args`), and rows come from the same row
builder (:func:`harness.rows.engine_row`). Generation stops at the tokenizer's
EOS only (as HF ``generate`` with ``eos_token_id``), and the EOS is kept in the row.

Process and threads, chosen deliberately:

- ``VLLM_ENABLE_V1_MULTIPROCESSING=0``: the engine core runs in this process (inside a
  Ray actor that is the actor; no spawned child, no ``__main__`` guard needed).
- CPU: ``VLLM_CPU_OMP_THREADS_BIND`` is set to the cores this replica may use
  (``cpu_ids``, e.g. ``"0"`` for replica 0 of two 1-thread replicas), or ``nobind`` with
  ``threads`` torch threads when no cores are given; vLLM then reserves no core.
- ``VLLM_CPU_KVCACHE_SPACE`` (GiB) defaults to 2 unless set.
- ``enforce_eager`` (default True; see docs/engines.md for compiled vs eager start-up);
  compiled graphs are cached under ``$HARNESS_HOME/vllm`` (``VLLM_CACHE_ROOT``).

Example:
    >>> eng = VLLMEngine(pull("gemma-3-270m"), model_name="gemma-3-270m")   # doctest: +SKIP
    >>> rows = eng.generate(items, parse_variants(["none", "rules"]))       # doctest: +SKIP
    >>> rows[0]["engine"]                                                    # doctest: +SKIP
    'vllm'
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.engines.rule_state import request_args
from harness.errors import HarnessError
from harness.experts.cache import ExpertCache
from harness.experts.processor import ResolvedExpert
from harness.experts.variants import Variant
from harness.prompts import encode_items
from harness.records import DecodingParams, PromptItem
from harness.rows import engine_row

log = logging.getLogger(__name__)


def _harness_home() -> Path:
    return Path(os.environ.get("HARNESS_HOME") or Path.home() / ".cache" / "harness")


def configure_process(threads: int | None = None, cpu_ids: str | None = None) -> None:
    """Set vLLM's process/thread environment for an in-process engine (before ``import vllm``)."""
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    os.environ.setdefault("VLLM_CACHE_ROOT", str(_harness_home() / "vllm"))
    if cpu_ids:
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = cpu_ids
    elif "VLLM_CPU_OMP_THREADS_BIND" not in os.environ:
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = "nobind"
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    threads = threads or len(os.sched_getaffinity(0))
    os.environ["OMP_NUM_THREADS"] = str(threads)  # else vLLM drops an unbound process to 1 thread
    import torch

    torch.set_num_threads(threads)


def unsupported_reason(model_path: str | Path, archs: list[str]) -> str | None:
    """Why vLLM cannot run ``model_path`` (architecture, head size), or ``None``."""
    try:
        from vllm.model_executor.models import ModelRegistry
    except Exception as exc:  # a broken install (e.g. a CUDA torchvision next to CPU torch)
        return f"import vllm failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    supported = set(ModelRegistry.get_supported_archs())
    if not any(a in supported for a in archs):
        return f"vLLM does not support architecture {', '.join(archs)}"
    return None


class VLLMEngine:
    """Holds one ``vllm.LLM`` and generates sample rows for prompts under variants.

    Args:
        model_path: a local Hugging Face directory.
        model_name: the display name stored in every row.
        prompt_format: ``tulu`` or ``hf``.
        dtype: ``float32`` / ``bfloat16`` / ``float16``.
        device: ``cpu``, ``cuda`` or ``auto`` (vLLM picks its platform; recorded only).
        combine: ``logit-add`` or ``logsoftmax-sum``.
        threads: torch threads for this replica (CPU).
        cpu_ids: cores to bind, ``VLLM_CPU_OMP_THREADS_BIND`` syntax (``"0"``, ``"0-1"``).
        enforce_eager: skip torch.compile (faster start, see docs/engines.md).
        max_model_len: context cap (default: the model's).
        tensor_parallel_size: GPUs to shard the model over (``--tp``), with vLLM's multiprocessing
            executor: the Ray actor already holds those GPUs in its bundle, so vLLM's own Ray
            executor would have to reserve them a second time.
        trace: refused (flip attribution is HF-only).
    """

    engine_name = "vllm"

    def __init__(self, model_path: str | Path, *, model_name: str | None = None, prompt_format: str = "tulu",
                 dtype: str = "float32", device: str = "auto", combine: str = "logit-add", threads: int | None = None,
                 cpu_ids: str | None = None, enforce_eager: bool = True, max_model_len: int | None = None,
                 trace: bool = False, seed: int = 0, tensor_parallel_size: int = 1):
        if trace:
            raise HarnessError("--trace: flip attribution is recorded by the HF engine only (use --engine hf)")
        configure_process(threads, cpu_ids)
        from transformers import AutoTokenizer
        from vllm import LLM

        from harness.engines.vllm_plugin import RuleExpertLogitsProcessor

        self.model_path = str(model_path)
        self.model_name = model_name or str(model_path)
        self.prompt_format = prompt_format
        self.combine = combine
        self.dtype = dtype
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.eos_id = self.tokenizer.eos_token_id
        start = time.perf_counter()
        parallel = {"tensor_parallel_size": tensor_parallel_size, "distributed_executor_backend": "mp"} \
            if tensor_parallel_size > 1 else {}
        self.llm = LLM(self.model_path, dtype=dtype, seed=seed, enforce_eager=enforce_eager,
                       max_model_len=max_model_len, logits_processors=[RuleExpertLogitsProcessor], **parallel)
        self.start_seconds = time.perf_counter() - start
        self.vocab_size = self.llm.llm_engine.model_config.get_vocab_size()
        self.experts = ExpertCache(self.tokenizer, self.vocab_size, self.eos_id)
        self._scorer = None

    # -- experts -----------------------------------------------------------------------
    def expert_for(self, variant: Variant) -> ResolvedExpert | None:
        return self.experts.variant(variant)

    def resolution_tables(self, variants: Sequence[Variant]) -> dict[str, dict]:
        return self.experts.tables(variants)

    def scorer(self):
        """An HF generator for log-likelihoods (scoring stays on HF; built on first use)."""
        if self._scorer is None:
            from harness.engines.hf import HFEngine

            self._scorer = HFEngine(self.model_path, model_name=self.model_name, prompt_format=self.prompt_format,
                                    dtype=self.dtype, device="cpu" if self.device == "auto" else self.device,
                                    combine=self.combine)
        return self._scorer

    # -- generation ----------------------------------------------------------------------
    def sampling_params(self, variant: Variant, decoding: DecodingParams, user_start: int):
        """vLLM sampling parameters for one request: greedy or sampled, EOS-only stop, the expert."""
        from vllm import SamplingParams

        self.expert_for(variant)  # resolve here: a bad token string fails before vLLM sees it
        kwargs = dict(max_tokens=decoding.max_new_tokens, ignore_eos=True, stop_token_ids=[self.eos_id],
                      detokenize=False, extra_args=request_args(variant.expert, user_start, self.combine) or None)
        if decoding.do_sample:
            kwargs.update(temperature=decoding.temperature, top_p=decoding.top_p, seed=decoding.seed)
        else:
            kwargs.update(temperature=0.0)
        return SamplingParams(**kwargs)

    def generate(self, items: Sequence[PromptItem], variants: Sequence[Variant],
                 decoding: DecodingParams = DecodingParams(), batch_size: int = 8,
                 on_batch: Callable[[int, int], None] | None = None) -> list[dict]:
        """Generate every (item x variant) pair in one continuous batch; returns sample-row dicts.

        ``batch_size`` is ignored (vLLM schedules rows itself); rows record the number of
        requests submitted together.
        """
        encoded = encode_items(items, self.prompt_format, self.tokenizer)
        prompts, params, index = [], [], []
        for variant in variants:
            for e in encoded:
                prompts.append({"prompt_token_ids": e["ids"]})
                params.append(self.sampling_params(variant, decoding, e["user_start"]))
                index.append((e, variant))
        start = time.perf_counter()
        outputs = self.llm.generate(prompts, params, use_tqdm=False) if prompts else []
        seconds = time.perf_counter() - start
        rows = []
        for (e, variant), out in zip(index, outputs):
            toks = list(out.outputs[0].token_ids)
            rows.append(engine_row(e, variant, toks, tokenizer=self.tokenizer, eos_id=self.eos_id,
                                   model_name=self.model_name, seconds=seconds, batch_size=len(prompts),
                                   engine=self.engine_name, decoding=decoding))
        if on_batch:
            on_batch(len(items), sum(r["num_output_tokens"] for r in rows))
        return rows
