"""Log-likelihood of continuations under the base model or the product of experts.

``log p(continuation | instruction)`` is summed over the continuation's tokens (plus
EOS when ``add_eos``), each from the distribution the generator would sample from: the
base model's softmax for ``none``, ``softmax(base + r)`` for an expert variant, with
the expert's state (``t``, seen tokens) advanced token by token exactly as during
generation. Used by the lm-eval bridge (``loglikelihood``) and response ranking.

Example:
    >>> out = score_pairs(gen, [("Name a fruit.", "An apple.")], variant)   # doctest: +SKIP
    >>> sorted(out[0])                                                       # doctest: +SKIP
    ['is_greedy', 'logprob', 'num_tokens']
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from harness.experts.processor import RuleExpertProcessor
from harness.experts.variants import Variant
from harness.prompts import render, user_start_token


def _encode_pair(gen, instruction: str, continuation: str, add_eos: bool) -> tuple[list[int], list[int], int]:
    rp = render(gen.prompt_format, instruction, gen.tokenizer)
    enc = gen.tokenizer(rp.text, add_special_tokens=rp.add_special_tokens, return_offsets_mapping=True)
    cont = gen.tokenizer(continuation, add_special_tokens=False)["input_ids"]
    if add_eos:
        cont = cont + [gen.eos_id]
    return enc["input_ids"], cont, user_start_token(enc["offset_mapping"], rp.user_start_char)


@torch.inference_mode()
def score_pairs(gen, pairs: Sequence[tuple[str, str]], variant: Variant, *, add_eos: bool = False,
                batch_size: int = 8) -> list[dict]:
    """Score ``(instruction, continuation)`` pairs with ``gen``'s model under ``variant``.

    Returns, per pair, ``logprob`` (sum over continuation tokens), ``num_tokens`` and
    ``is_greedy`` (every continuation token is the argmax of its distribution).
    """
    expert = gen.expert_for(variant)
    encoded = [_encode_pair(gen, i, c, add_eos) for i, c in pairs]
    out: list[dict] = []
    for lo in range(0, len(encoded), batch_size):
        batch = encoded[lo: lo + batch_size]
        width = max(len(c) + len(x) for c, x, _ in batch)
        ids = torch.full((len(batch), width), gen.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for b, (ctx, cont, _) in enumerate(batch):  # right padding: positions need no shifting
            ids[b, : len(ctx) + len(cont)] = torch.tensor(ctx + cont)
            mask[b, : len(ctx) + len(cont)] = 1
        logits = gen.model(input_ids=ids.to(gen.device), attention_mask=mask.to(gen.device)).logits.float()
        for b, (ctx, cont, user_start) in enumerate(batch):
            full = ids[b: b + 1, : len(ctx) + len(cont)].to(gen.device)
            proc = RuleExpertProcessor(expert, [user_start], len(ctx), combine="logit-add") if expert else None
            logprob, greedy = 0.0, True
            for j, token in enumerate(cont):
                scores = logits[b: b + 1, len(ctx) + j - 1]  # (1, V): predicts cont[j]
                if proc is not None:
                    scores = proc(full[:, : len(ctx) + j], scores)
                logp = torch.log_softmax(scores, dim=-1)[0]
                logprob += float(logp[token])
                greedy = greedy and int(logp.argmax()) == token
            out.append({"logprob": logprob, "num_tokens": len(cont), "is_greedy": greedy})
    return out
