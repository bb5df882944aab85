"""``HarnessLM``: lm-eval's ``LM`` contract served by the harness's backend.

lm-eval builds the requests (``Instance.args``) and computes the metrics; the harness
generates and scores. One variant per instance: ``HarnessLM(backend, variant, plan)``
sends every request of one lm-eval call to the backend in one batch call, so the Ray
replica pool shards them.

* ``generate_until`` — ``args = (context, gen_kwargs)``. Requests are grouped by
  ``gen_kwargs``; ``max_gen_toks`` becomes ``DecodingParams.max_new_tokens`` (capped by
  the run's ``--max-new-tokens``). The context is the *user message*: the run's prompt
  format (tulu for base models) wraps it, as lm-eval's chat template would. Outputs are
  cut at the first ``until`` string; under greedy decoding that equals stopping there.
* ``loglikelihood`` — ``args = (context, continuation)`` -> ``(logprob, is_greedy)``
  from ``backend.score`` (the continuation follows the rendered prompt, no EOS).
* ``loglikelihood_rolling`` (perplexity tasks) is not supported.

What each request produced is kept in :attr:`HarnessLM.records` (keyed by lm-eval task
name and doc id) so the bridge can write one sample row per document.

Example:
    >>> lm = HarnessLM(backend, variant, plan)                                    # doctest: +SKIP
    >>> lm_eval.simple_evaluate(model=lm, tasks=["my_task"], task_manager=tm)     # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict

from lm_eval.api.model import LM

from harness.decoding import trim_ids, truncate_at
from harness.records import DecodingParams, PromptItem

log = logging.getLogger(__name__)


def _until(gen_kwargs: dict) -> list[str]:
    until = gen_kwargs.get("until") or []
    return [until] if isinstance(until, str) else [str(u) for u in until]


class HarnessLM(LM):
    """lm-eval model backed by the harness (one variant).

    Args:
        backend: a :class:`harness.distributed.executor.Backend` (Ray pool or in-process).
        variant: the :class:`~harness.experts.variants.Variant` every request runs under.
        plan: the runner's plan (model, prompt format, run config).
        tokenizer: optional tokenizer used to trim ``output_token_ids`` at a stop string
            and to render prompts of scored rows; loaded from the model dir when needed.
    """

    def __init__(self, backend, variant, plan, tokenizer=None):
        super().__init__()
        self.backend = backend
        self.variant = variant
        self.plan = plan
        self.cfg = plan.cfg
        self._tokenizer = tokenizer
        self.records: dict[tuple[str, int], list[dict]] = defaultdict(list)

    # -- lm-eval metadata --------------------------------------------------------
    @property
    def tokenizer_name(self) -> str:
        return str(self.plan.model.name).replace("/", "__")

    def get_model_info(self) -> dict:
        return {"harness_model": self.plan.model.name, "model_fingerprint": self.plan.model.fingerprint,
                "variant": self.variant.name, "prompt_format": self.plan.prompt_format}

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self.plan.model.path))
        return self._tokenizer

    # -- requests ----------------------------------------------------------------
    def _decoding(self, gen_kwargs: dict) -> DecodingParams:
        cap = self.cfg.max_new_tokens  # None: the request's max_gen_toks, else the default cap
        asked = gen_kwargs.get("max_gen_toks")
        max_new = int(asked or DecodingParams().max_new_tokens) if cap is None else min(int(asked or cap), cap)
        if gen_kwargs.get("do_sample"):
            temp = float(gen_kwargs.get("temperature", self.cfg.temperature or 1.0) or 1.0)
            top_p = float(gen_kwargs.get("top_p", self.cfg.top_p or 1.0) or 1.0)
            return DecodingParams(max_new, True, temp, top_p, self.cfg.seed)
        return DecodingParams(max_new_tokens=max_new)

    def generate_until(self, requests) -> list[str]:
        """Generate for every request; one backend call per distinct ``gen_kwargs``."""
        out: list[str | None] = [None] * len(requests)
        groups: dict[str, list[int]] = defaultdict(list)
        for i, req in enumerate(requests):
            groups[json.dumps(req.args[1], sort_keys=True, default=str)].append(i)
        for key, idx in groups.items():
            gen_kwargs = json.loads(key)
            until = _until(gen_kwargs)
            decoding = self._decoding(gen_kwargs)
            items = [PromptItem("lm_eval", "", str(i), requests[i].args[0]) for i in idx]
            rows = self.backend.generate(items, [self.variant], decoding)
            by_id = {r["sample_id"]: r for r in rows}
            for i in idx:
                row = dict(by_id[str(i)])
                text, cut = truncate_at(row["output"] or "", until)
                if cut:
                    row["output_token_ids"] = self._trim_ids(row["output_token_ids"], text)
                    row["num_output_tokens"] = len(row["output_token_ids"])
                    row["finish_reason"] = "stop"
                row["output"] = text
                row["until"] = until
                row["max_new_tokens"] = decoding.max_new_tokens
                out[i] = text
                req = requests[i]
                self.records[(req.task_name, req.doc_id)].append({"kind": "generate", "row": row})
        return out  # type: ignore[return-value]

    def _trim_ids(self, ids: list[int], text: str) -> list[int]:
        """The shortest prefix of ``ids`` whose decoded text covers ``text``."""
        try:
            tok = self.tokenizer
        except Exception:  # noqa: BLE001 - ids stay untrimmed if the tokenizer cannot load
            log.warning("could not load the tokenizer to trim output_token_ids", exc_info=True)
            return ids
        return trim_ids(ids, text, tok)

    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        """``(log p(continuation | context), is_greedy)`` for every request, in one backend call."""
        pairs = [(req.args[0], req.args[1]) for req in requests]
        if not pairs:
            return []
        scores = self.backend.score(pairs, self.variant)
        out = []
        for req, (ctx, cont), s in zip(requests, pairs, scores, strict=True):
            out.append((float(s["logprob"]), bool(s["is_greedy"])))
            self.records[(req.task_name, req.doc_id)].append(
                {"kind": "score", "context": ctx, "continuation": cont, "logprob": float(s["logprob"]),
                 "num_tokens": int(s["num_tokens"]), "is_greedy": bool(s["is_greedy"])})
        return out

    def loglikelihood_rolling(self, requests) -> list[float]:
        raise NotImplementedError(
            "harness lm-eval bridge: loglikelihood_rolling (perplexity tasks such as wikitext) is not supported; "
            "the harness scores continuations of a prompt-formatted instruction, not raw documents")
