"""A judge that is a local Hugging Face causal LM.

The AlpacaEval-style prompt (:func:`~harness.judges.base.judge_messages`, labels
``A``/``B``) is rendered with the model's chat template (plain text when the tokenizer
has none); P(first better) is the two-way softmax of the next-token log-probabilities of
the two labels (each label's bare and space-prefixed first token, summed).

Example:
    >>> j = HFJudge("smollm2-135m-instruct")      # doctest: +SKIP
    >>> 0.0 <= j.judge("Say hi.", "Hello!", "") <= 1.0   # doctest: +SKIP
    True
"""

from __future__ import annotations

import math

from harness.errors import HarnessError
from harness.judges.base import BaseJudge, JudgeCache, judge_messages, two_way_softmax

DEFAULT_MODEL = "smollm2-135m-instruct"


class HFJudge(BaseJudge):
    """Compare the log-probabilities of the two choice tokens under a local causal LM.

    Args:
        model: anything :func:`harness.models.resolve` accepts (built-in name, HF dir, ...).
        labels: identifiers of the first and second output.
        max_length: prompts longer than this many tokens are cut from the left of the
            user turn's outputs (the end of the prompt, with the question, is kept).
        device: ``cpu`` or ``cuda``; default cuda when available.
        cache: see :class:`~harness.judges.base.BaseJudge`.
    """

    def __init__(self, model: str = DEFAULT_MODEL, labels: tuple[str, str] = ("A", "B"), max_length: int = 2048,
                 device: str | None = None, cache: JudgeCache | None | bool = None):
        super().__init__(cache)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from harness.models import resolve

        resolved = resolve(model)
        self.path = resolved.path
        self.labels = labels
        self.max_length = max_length
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        self.model = AutoModelForCausalLM.from_pretrained(str(self.path), torch_dtype=torch.float32).to(self.device).eval()
        self.judge_id = f"hf:{resolved.name}@{resolved.fingerprint[:16]}"
        self.label_ids = [self._label_ids(lab) for lab in labels]
        if set(self.label_ids[0]) & set(self.label_ids[1]):
            raise HarnessError(f"judge {model}: labels {labels} share a token; choose other labels")

    def _label_ids(self, label: str) -> list[int]:
        ids = []
        for text in (label, " " + label):
            toks = self.tokenizer.encode(text, add_special_tokens=False)
            if toks and toks[0] not in ids:
                ids.append(toks[0])
        if not ids:
            raise HarnessError(f"judge {self.path}: label {label!r} has no token")
        return ids

    def render(self, instruction: str, first: str, second: str) -> str:
        """The prompt text fed to the tokenizer (chat template when the tokenizer has one)."""
        messages = judge_messages(instruction, first, second, self.labels)
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in messages) + "\n"

    def annotate(self, instruction: str, first: str, second: str) -> float:
        import torch

        text = self.render(instruction, first, second)
        has_template = bool(getattr(self.tokenizer, "chat_template", None))
        ids = self.tokenizer(text, add_special_tokens=not has_template, return_tensors="pt").input_ids
        if ids.shape[1] > self.max_length:
            ids = ids[:, -self.max_length:]
        with torch.no_grad():
            logits = self.model(input_ids=ids.to(self.device)).logits[0, -1].float()
        logp = torch.log_softmax(logits, dim=-1)
        la = torch.logsumexp(logp[self.label_ids[0]], dim=0).item()
        lb = torch.logsumexp(logp[self.label_ids[1]], dim=0).item()
        if math.isnan(la) or math.isnan(lb):
            raise HarnessError(f"judge {self.judge_id}: NaN log-probabilities")
        return two_way_softmax(la, lb)
