"""Per-step cost of the rule expert inside vLLM (``BatchRules.apply``), against one (n, V) add.

No vLLM engine is started: the processor's state is driven the way vLLM drives it (requests
added with their live output lists, one new token per request per step) on the model's real
tokenizer and vocabulary width, with random logits.

    .venv/bin/python benchmarks/rule_processor.py --model gemma-3-270m --requests 56 --steps 64

Prints ms per step for ``apply`` and for a plain ``logits.add_(other)`` of the same shape (the
floor for any dense expert), and their ratio.
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--variant", default="rules")
    ap.add_argument("--requests", type=int, default=56, help="rows in the persistent batch")
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch
    from transformers import AutoConfig, AutoTokenizer

    from harness.engines.rule_state import BatchRules, request_args
    from harness.experts.variants import parse_variants
    from harness.models import resolve

    torch.set_num_threads(args.threads)
    path = resolve(args.model).path
    tok = AutoTokenizer.from_pretrained(str(path))
    cfg = AutoConfig.from_pretrained(str(path))
    vocab = max(int(getattr(cfg.get_text_config(), "vocab_size", 0) or 0), len(tok))
    spec = parse_variants([args.variant])[0].expert
    rules = BatchRules(tok, vocab, tok.eos_token_id)
    g = torch.Generator().manual_seed(0)
    outputs: list[list[int]] = [[] for _ in range(args.requests)]
    added = [(i, SimpleNamespace(extra_args=request_args(spec, 3)), torch.randint(0, 5000, (40,), generator=g).tolist(),
              outputs[i]) for i in range(args.requests)]
    rules.update(SimpleNamespace(added=added, removed=[], moved=[]))
    base = torch.randn(args.requests, vocab, generator=g)
    logits = base.clone()
    t_apply = t_add = 0.0
    for _ in range(args.steps):
        for out in outputs:
            out.append(int(torch.randint(0, 5000, (1,), generator=g)))
        logits.copy_(base)
        t0 = time.perf_counter()
        rules.apply(logits)
        t_apply += time.perf_counter() - t0
        logits.copy_(base)
        t0 = time.perf_counter()
        logits.add_(base)
        t_add += time.perf_counter() - t0
    a, b = 1000 * t_apply / args.steps, 1000 * t_add / args.steps
    print(f"{args.model} {args.variant}: {args.requests} requests x {vocab} vocab, {args.steps} steps, "
          f"{args.threads} thread(s)")
    print(f"apply {a:.1f} ms/step; one (n, V) add {b:.1f} ms/step; ratio {a / b:.2f}")


if __name__ == "__main__":
    main()
