"""The ``hf`` engine: batched Hugging Face ``generate`` of (prompt x variant) pairs with the KV cache.

:class:`HFEngine` is a plain class: it loads a model and tokenizer once and turns
prompts into sample rows. It runs in-process (tests, ``--no-ray``) and inside the Ray
``ModelWorker`` actor unchanged. Prompts are sorted longest first and batched with left
padding; every variant of a batch runs on the same batch composition, so paired rows
differ only by the expert.

Example (with the tiny test model):
    >>> gen = HFEngine(pull("tiny-random-llama"))                      # doctest: +SKIP
    >>> rows = gen.generate(items, parse_variants(["none", "rules"]))   # doctest: +SKIP
    >>> rows[0]["finish_reason"]                                        # doctest: +SKIP
    'length'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from harness.experts.cache import ExpertCache
from harness.experts.processor import ResolvedExpert, RuleExpertProcessor
from harness.experts.trace import FlipTrace, empty_columns
from harness.experts.variants import Variant
from harness.prompts import encode_items
from harness.records import DecodingParams, PromptItem
from harness.rows import engine_row

log = logging.getLogger(__name__)


class HFEngine:
    """The ``hf`` engine: holds one causal LM and generates sample rows for prompts under variants.

    Args:
        model_path: a local Hugging Face directory.
        model_name: the display name stored in every row.
        prompt_format: ``tulu`` or ``hf`` (see :mod:`harness.prompts`).
        dtype: ``float32`` (default on CPU), ``bfloat16`` or ``float16``.
        device: ``cpu`` or ``cuda``; ``auto`` picks CUDA when available.
        combine: how the expert joins the model, ``logit-add`` or ``logsoftmax-sum``.
        model: an already-built model (DeepSpeed inference engines pass theirs).
        use_cache: the KV cache (off only to prove it changes nothing).
        trace: record where the expert flipped the argmax (the ``flip_*`` row columns).
    """

    engine_name = "hf"  # recorded in every row (``samples.engine``); the DeepSpeed TP gang says ``hf-tp``

    def __init__(self, model_path: str | Path, *, model_name: str | None = None, prompt_format: str = "tulu",
                 dtype: str = "float32", device: str = "auto", combine: str = "logit-add", model=None,
                 use_cache: bool = True, trace: bool = False):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model_name = model_name or str(model_path)
        self.prompt_format = prompt_format
        self.combine = combine
        self.use_cache = use_cache
        self.trace = trace
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if model is None:
            model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=getattr(torch, dtype))
            model.to(self.device)
        self.model = model.eval()
        self.vocab_size = int(self.model.get_output_embeddings().weight.shape[0])
        self.eos_id = self.tokenizer.eos_token_id
        self.experts = ExpertCache(self.tokenizer, self.vocab_size, self.eos_id)

    def scorer(self) -> HFEngine:
        """The generator that scores continuations (:mod:`harness.engines.scoring`): this one."""
        return self

    # -- experts -----------------------------------------------------------------
    def expert_for(self, variant: Variant) -> ResolvedExpert | None:
        """The variant's expert resolved against this tokenizer (cached)."""
        return self.experts.variant(variant)

    def resolution_tables(self, variants: Sequence[Variant]) -> dict[str, dict]:
        """Token-resolution tables of every expert variant, for the run manifest."""
        return self.experts.tables(variants)

    # -- prompts -----------------------------------------------------------------
    def encode(self, items: Sequence[PromptItem]) -> list[dict]:
        """Render and tokenize prompts; returns ids and the user-content start token."""
        return encode_items(items, self.prompt_format, self.tokenizer)

    def _pad(self, encoded: list[dict]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        width = max(len(e["ids"]) for e in encoded)
        ids = torch.full((len(encoded), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        starts = []
        for b, e in enumerate(encoded):
            pad = width - len(e["ids"])
            ids[b, pad:] = torch.tensor(e["ids"], dtype=torch.long)
            mask[b, pad:] = 1
            starts.append(pad + e["user_start"])
        return ids.to(self.device), mask.to(self.device), starts

    # -- generation ----------------------------------------------------------------
    @torch.inference_mode()
    def generate_batch(self, encoded: list[dict], variant: Variant,
                       decoding: DecodingParams) -> tuple[list[list[int]], float, FlipTrace | None]:
        """Generate for one padded batch under one variant; returns new token ids, seconds and the trace."""
        ids, mask, starts = self._pad(encoded)
        processors = []
        expert = self.expert_for(variant)
        trace = FlipTrace(len(encoded)) if self.trace and expert is not None else None
        if expert is not None:
            processors.append(RuleExpertProcessor(expert, starts, ids.shape[1], combine=self.combine, trace=trace))
        kwargs = dict(do_sample=decoding.do_sample)
        if decoding.do_sample:
            torch.manual_seed(decoding.seed)
            kwargs.update(temperature=decoding.temperature, top_p=decoding.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        start = time.perf_counter()
        out = self.model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=decoding.max_new_tokens,
            logits_processor=processors, eos_token_id=self.eos_id, pad_token_id=self.tokenizer.pad_token_id,
            use_cache=self.use_cache, **kwargs,
        )
        seconds = time.perf_counter() - start
        new = out[:, ids.shape[1]:].tolist()
        return [self._trim(row) for row in new], seconds, trace

    def _trim(self, row: list[int]) -> list[int]:
        """Cut at the first EOS (kept) and drop padding after it."""
        if self.eos_id in row:
            return row[: row.index(self.eos_id) + 1]
        return row

    def generate(self, items: Sequence[PromptItem], variants: Sequence[Variant], decoding: DecodingParams = DecodingParams(),
                 batch_size: int = 8, on_batch: Callable[[int, int], None] | None = None) -> list[dict]:
        """Generate every (item x variant) pair; returns sample-row dicts.

        Rows carry every ``samples`` column except ``run_id``, ``key``, ``replica`` and
        ``shard_id`` (the runner adds them). ``on_batch(prompts_done, tokens)`` is called
        after each batch and variant, for progress bars.
        """
        encoded = sorted(self.encode(items), key=lambda e: -len(e["ids"]))
        rows: list[dict] = []
        for lo in range(0, len(encoded), batch_size):
            batch = encoded[lo: lo + batch_size]
            for variant in variants:
                outputs, seconds, trace = self.generate_batch(batch, variant, decoding)
                for b, (e, toks) in enumerate(zip(batch, outputs)):
                    rows.append(self._row(e, variant, toks, seconds, len(batch), decoding))
                    if self.trace:
                        rows[-1].update(trace.columns(b, len(toks)) if trace else empty_columns())
                if on_batch:
                    on_batch(len(batch), sum(len(t) for t in outputs))
        return rows

    def _row(self, e: dict, variant: Variant, toks: list[int], seconds: float, batch_size: int,
             decoding: DecodingParams = DecodingParams()) -> dict:
        return engine_row(e, variant, toks, tokenizer=self.tokenizer, eos_id=self.eos_id, model_name=self.model_name,
                          seconds=seconds, batch_size=batch_size, engine=self.engine_name, decoding=decoding)
