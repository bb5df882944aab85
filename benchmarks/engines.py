"""Benchmark and equivalence: the HF engine vs the vLLM engine on the same prompts.

For each engine: start-up (model load; vLLM also profiles/compiles), then for each
variant one ``generate`` call over all prompts (HF: static batches of ``--batch-size``;
vLLM: one continuous batch), timed. Reports wall, tokens, tok/s and EOS-terminated rows per
(engine, variant), and per variant the share of sequences identical between the engines;
for each divergence, the position and the top-2 gap of the HF engine's combined scores
(base logits + the rule expert, fp32) there — a near-tie when the gap is below 1e-3.

Usage (the tables in docs/engines.md and docs/performance.md)::

    .venv/bin/python benchmarks/engines.py --model gemma-3-270m --variants none,ablations \\
        --max-new-tokens 128 --json engines.json
    .venv/bin/python benchmarks/engines.py --limit 16 --variants none,rules --compiled   # torch.compile start

One process, engines one after the other; no Ray. The vLLM engine runs with the thread
count given (``--threads``, default all cores) and no core reserved.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def _items(limit: int | None):
    from harness.tasks import load_tasks

    items = []
    for task in load_tasks(["instructions-mini"], [], {}):
        items.extend(task.items(limit))
    return items


def _gap_at(gen, variant, e: dict, prefix: list[int]) -> float:
    """Top-2 gap of the HF engine's combined scores after ``prompt + prefix`` (fp32)."""
    import torch

    from harness.experts.processor import RuleExpertProcessor

    ids = torch.tensor([e["ids"] + prefix])
    with torch.inference_mode():
        logits = gen.model(input_ids=ids, use_cache=False, logits_to_keep=1).logits[:, -1].float()
    expert = gen.expert_for(variant)
    if expert is not None:
        proc = RuleExpertProcessor(expert, [e["user_start"]], len(e["ids"]), combine=gen.combine)
        if prefix:  # replay so the processor's state is that of step len(prefix)
            proc(ids[:, : len(e["ids"])], torch.zeros_like(logits))
        logits = proc(ids, logits)
    top = torch.topk(logits[0], 2).values
    return float(top[0] - top[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--variants", default="none,rules")
    ap.add_argument("--limit", type=int, default=None, help="prompts from instructions-mini (default all)")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16, help="HF static batch")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--compiled", action="store_true", help="vLLM with torch.compile (default: enforce_eager)")
    ap.add_argument("--engines", default="hf,vllm")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    import torch

    from harness.engines.hf import HFEngine
    from harness.experts.variants import parse_variants
    from harness.models import resolve
    from harness.records import DecodingParams

    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    path = resolve(args.model).path
    items = _items(args.limit)
    variants = parse_variants(args.variants.split(","))
    decoding = DecodingParams(max_new_tokens=args.max_new_tokens)
    results: dict = {"model": args.model, "prompts": len(items), "max_new_tokens": args.max_new_tokens,
                     "threads": threads, "compiled": args.compiled, "engines": {}}
    rows: dict[str, dict] = {}
    hf = None
    for name in args.engines.split(","):
        t0 = time.perf_counter()
        if name == "hf":
            eng = hf = HFEngine(path, model_name=args.model, device="cpu")
        else:
            from harness.engines.vllm import VLLMEngine

            eng = VLLMEngine(path, model_name=args.model, threads=threads, enforce_eager=not args.compiled,
                             max_model_len=1024)
        start = time.perf_counter() - t0
        per = results["engines"][name] = {"start_seconds": round(start, 1), "variants": {}}
        rows[name] = {}
        for v in variants:
            t0 = time.perf_counter()
            out = eng.generate(items, [v], decoding, batch_size=args.batch_size)
            wall = time.perf_counter() - t0
            toks = sum(r["num_output_tokens"] for r in out)
            per["variants"][v.name] = {"seconds": round(wall, 1), "tokens": toks, "tok_s": round(toks / wall, 1),
                                       "eos": sum(r["finish_reason"] == "eos" for r in out), "rows": len(out)}
            rows[name][v.name] = {r["sample_id"]: r["output_token_ids"] for r in out}
            print(name, v.name, per["variants"][v.name], flush=True)
    if "hf" in rows and "vllm" in rows:
        encoded = {e["item"].sample_id: e for e in hf.encode(items)}
        eq = results["equivalence"] = {}
        for v in variants:
            a, b = rows["hf"][v.name], rows["vllm"][v.name]
            divs = []
            for sid in a:
                x, y = a[sid], b[sid]
                if x == y:
                    continue
                pos = next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y)))
                divs.append({"sample_id": sid, "position": pos, "gap": _gap_at(hf, v, encoded[sid], x[:pos])})
            eq[v.name] = {"identical": len(a) - len(divs), "total": len(a), "divergences": divs}
            gaps = [d["gap"] for d in divs]
            print(v.name, f"identical {len(a) - len(divs)}/{len(a)}", "max gap", max(gaps) if gaps else None, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
