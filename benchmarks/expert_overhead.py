"""Benchmark: what the rule expert costs per decode step, and fast path vs reference path.

(a) Per-step overhead: the same batch decoded for exactly ``--new-tokens`` steps
    (``min_new_tokens = max_new_tokens``, so EOS cannot end it early) with and without
    the ``rules`` processor, alternating runs and taking medians. Also the processor
    alone on a fixed ``(B, V)`` logits tensor, which is immune to machine noise.
    Goal: <= 3 % of a decode step.
(b) Fast path (``HFEngine.generate``: batched, KV cache, incremental rule state) vs
    the reference path (batch 1, no cache, full forward and rules rebuilt every step),
    in generated tokens per second, after checking that both produced identical tokens.
    Goal: >= 20x.

Prints, never asserts. Uses gemma-3-270m when it can be pulled (falls back to
tiny-random-llama, labelled as such). Results and their reading: docs/expert.md §8.

    .venv/bin/python benchmarks/expert_overhead.py --threads 1         # gemma-3-270m, batch 32
    .venv/bin/python benchmarks/expert_overhead.py --threads 1 --parts b \
        --variant rules:uniform-diversity --ref-tokens 256 --ref-prompts 2   # long, no-EOS ablation
    .venv/bin/python benchmarks/expert_overhead.py --model tiny-random-llama --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

PROMPTS = [
    "Give me three tips for sleeping better.",
    "What is a prime number?",
    "Write a haiku about the sea, with a title and a short explanation of its imagery.",
    "Explain why the sky is blue to a five-year-old.",
    "List five fruits that are red.",
    "How do I boil an egg?",
    "Translate 'good morning' into French and Spanish.",
    "Summarise the plot of Romeo and Juliet in two sentences.",
]


def load(name: str, device: str):
    from harness.engines.hf import HFEngine
    from harness.models import resolve

    try:
        path, label = resolve(name).path, name
    except Exception as exc:  # noqa: BLE001 - a benchmark falls back rather than dies
        print(f"!! could not load {name} ({type(exc).__name__}: {exc}); FALLING BACK to tiny-random-llama")
        path, label = resolve("tiny-random-llama").path, "tiny-random-llama (fallback)"
    return HFEngine(path, model_name=label, device=device), label


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def decode_steps(gen, batch: list[dict], expert, new_tokens: int) -> float:
    """Seconds for exactly ``new_tokens`` decode steps of one batch."""
    from harness.experts.processor import RuleExpertProcessor

    ids, mask, starts = gen._pad(batch)
    procs = [RuleExpertProcessor(expert, starts, ids.shape[1])] if expert is not None else []
    sync(gen.device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = gen.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens,
                                 min_new_tokens=new_tokens, logits_processor=procs, do_sample=False,
                                 temperature=None, top_p=None, top_k=None, eos_token_id=gen.eos_id,
                                 pad_token_id=gen.tokenizer.pad_token_id)
    sync(gen.device)
    if out.shape[1] != ids.shape[1] + new_tokens:
        print(f"!! generated {out.shape[1] - ids.shape[1]} steps, not {new_tokens}")
    return time.perf_counter() - t0


def processor_alone(gen, batch: list[dict], expert, steps: int, inplace: bool = True) -> float:
    """Seconds per call of the processor alone on (B, V) logits, state advancing each call."""
    from harness.experts.processor import RuleExpertProcessor

    ids, _, starts = gen._pad(batch)
    proc = RuleExpertProcessor(expert, starts, ids.shape[1], inplace=inplace)
    scores = torch.randn(ids.shape[0], gen.vocab_size, device=gen.device)
    new = torch.randint(100, 1000, (ids.shape[0], steps + 5), device=gen.device)
    times = []
    for i in range(steps + 5):
        fresh = scores.clone()  # generate hands every step a fresh copy, as here
        sync(gen.device)
        t0 = time.perf_counter()
        proc(ids, fresh)
        sync(gen.device)
        times.append(time.perf_counter() - t0)
        ids = torch.cat([ids, new[:, i:i + 1]], dim=1)
    return statistics.median(times[5:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--ref-prompts", type=int, default=4, help="prompts the reference path re-generates")
    ap.add_argument("--ref-tokens", type=int, default=128, help="max new tokens in part (b)")
    ap.add_argument("--variant", default="rules", help="the expert variant to time (e.g. rules:uniform-diversity)")
    ap.add_argument("--parts", default="a,b", help="which parts to run: a, b or a,b")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from harness.experts import parse_variants
    from harness.records import PromptItem

    gen, label = load(args.model, args.device)
    (rules,) = parse_variants([args.variant])
    expert = gen.expert_for(rules)
    items = [PromptItem("bench", "1", str(i), PROMPTS[i % len(PROMPTS)]) for i in range(args.batch)]
    batch = sorted(gen.encode(items), key=lambda e: -len(e["ids"]))
    print(f"model {label} | variant {rules.name} | device {gen.device} | torch threads {torch.get_num_threads()} | "
          f"vocab {gen.vocab_size} | batch {args.batch} | prompt <= {len(batch[0]['ids'])} tokens")

    if "a" in args.parts.split(","):
        part_a(gen, batch, expert, args)
    if "b" in args.parts.split(","):
        part_b(gen, items, rules, expert, args)


def part_a(gen, batch, expert, args) -> None:
    """Per-step overhead, alternating runs so both share the machine's drift."""
    decode_steps(gen, batch, None, 4), decode_steps(gen, batch, expert, 4)  # warm-up
    base, with_expert = [], []
    for _ in range(args.repeats):
        base.append(decode_steps(gen, batch, None, args.new_tokens) / args.new_tokens)
        with_expert.append(decode_steps(gen, batch, expert, args.new_tokens) / args.new_tokens)
    b, w = statistics.median(base), statistics.median(with_expert)
    print(f"(a) {args.new_tokens} decode steps, {args.repeats} alternating runs: without expert median {b * 1e3:.2f} ms "
          f"(min {min(base) * 1e3:.2f}), with median {w * 1e3:.2f} ms (min {min(with_expert) * 1e3:.2f})")
    print(f"    end-to-end overhead: median {100 * (w - b) / b:+.2f} %, min-to-min "
          f"{100 * (min(with_expert) - min(base)) / min(base):+.2f} % (run-to-run spread without: "
          f"{100 * (max(base) - min(base)) / b:.1f} %)")
    alone = processor_alone(gen, batch, expert, 50)
    copy = processor_alone(gen, batch, expert, 50, inplace=False)
    print(f"    processor alone: {alone * 1e3:.3f} ms per step = {100 * alone / min(base):.2f} % of the fastest "
          f"decode step (goal <= 3 %); {copy * 1e3:.3f} ms with inplace=False")


def part_b(gen, items, rules, expert, args) -> None:
    """Fast path vs reference path. The reference is batch 1, so its rate does not depend on
    how many prompts it runs; it re-generates the first --ref-prompts of the fast batch."""
    from harness.experts.reference import reference_generate
    from harness.records import DecodingParams

    decoding = DecodingParams(max_new_tokens=args.ref_tokens)
    sync(gen.device)
    t0 = time.perf_counter()
    rows = gen.generate(items, [rules], decoding, batch_size=len(items))
    sync(gen.device)
    fast_s = time.perf_counter() - t0
    fast_tokens = sum(r["num_output_tokens"] for r in rows)
    encoded = {e["item"].sample_id: e for e in gen.encode(items)}
    by_id = {r["sample_id"]: r for r in rows}
    t0 = time.perf_counter()
    same, ref_tokens = True, 0
    for item in items[:args.ref_prompts]:
        e = encoded[item.sample_id]
        ref = reference_generate(gen.model, gen.tokenizer, expert, e["ids"], e["user_start"], max_new_tokens=args.ref_tokens)
        same &= ref == by_id[item.sample_id]["output_token_ids"]
        ref_tokens += len(ref)
    ref_s = time.perf_counter() - t0
    fast_rate, ref_rate = fast_tokens / fast_s, ref_tokens / ref_s
    print(f"(b) fast path: {len(items)} prompts in one batch, {fast_tokens} tokens in {fast_s:.1f} s = {fast_rate:.1f} tok/s")
    print(f"    reference: first {args.ref_prompts} prompts, {ref_tokens} tokens in {ref_s:.1f} s = {ref_rate:.2f} tok/s; "
          f"identical outputs: {same}")
    print(f"    -> fast path {fast_rate / ref_rate:.1f}x the reference (goal >= 20x)")


if __name__ == "__main__":
    main()
