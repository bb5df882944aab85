"""Slow: on gemma-3-270m the fast path (batched, cached) equals the paper's formulation.

Four Tulu prompts x 32 greedy tokens, for ``none``, ``rules``, ``rules:eos-uniform`` and
``rules:eos-uniform-diversity-start``: ``HFEngine.generate`` (batch 4, left padding, KV
cache, ``logit-add``, fp32) must give the same tokens as ``reference_generate`` (batch 1,
no cache, full forward each step, ``log_softmax(base) + log_softmax(r)``). The result is
recorded in docs/expert.md. Uses ``$HARNESS_TEST_HOME`` or the default harness home, so
the ~1 min Gemma conversion happens once per machine.

    .venv/bin/python -m pytest tests/slow/test_gemma_reference.py -m slow -q -s
"""

from __future__ import annotations

import os
import time

import pytest

from harness.experts import parse_variants
from harness.experts.reference import paper_user_start, reference_generate
from harness.engines.hf import HFEngine
from harness.models import harness_home, pull
from harness.records import DecodingParams, PromptItem

pytestmark = pytest.mark.slow
INSTRUCTIONS = [
    "Give me three tips for sleeping better.",
    "What is a prime number?",
    "Write a haiku about the sea.",
    "Explain why the sky is blue to a five-year-old.",
]
ITEMS = [PromptItem("gemma-ref", "1", str(i), text) for i, text in enumerate(INSTRUCTIONS)]
VARIANTS = ["none", "rules", "rules:eos-uniform", "rules:eos-uniform-diversity-start"]
DECODING = DecodingParams(max_new_tokens=32)


@pytest.fixture(scope="module")
def generator():
    path = pull("gemma-3-270m", home=harness_home(os.environ.get("HARNESS_TEST_HOME") or None))
    return HFEngine(path, model_name="gemma-3-270m", device="cpu", trace=True)


def test_gemma_fast_path_equals_reference(generator):
    variants = parse_variants(VARIANTS)
    encoded = {e["item"].sample_id: e for e in generator.encode(ITEMS)}
    t0 = time.perf_counter()
    rows = generator.generate(ITEMS, variants, DECODING, batch_size=4)
    fast_s = time.perf_counter() - t0
    by_name = {v.name: v for v in variants}
    mismatches, ref_s = [], 0.0
    for row in rows:
        e = encoded[row["sample_id"]]
        assert paper_user_start(e["ids"], generator.tokenizer) == e["user_start"]
        t0 = time.perf_counter()
        ref = reference_generate(generator.model, generator.tokenizer, generator.expert_for(by_name[row["variant"]]),
                                 e["ids"], max_new_tokens=DECODING.max_new_tokens)
        ref_s += time.perf_counter() - t0
        same = ref == row["output_token_ids"]
        print(f"{row['variant']:36s} prompt {row['sample_id']}: {'same' if same else 'DIFFERENT'} "
              f"{len(ref):2d} tokens, {len(row['flip_positions'] or [])} flips {row['flip_rules'] or ''} "
              f"{row['output']!r:.60}")
        if not same:
            mismatches.append((row["variant"], row["sample_id"], ref, row["output_token_ids"]))
    print(f"fast path {fast_s:.1f} s, reference path {ref_s:.1f} s")
    assert mismatches == []
