"""Generation with the expert: batching, padding and the KV cache change nothing."""

import pytest

from harness.experts import parse_variants
from harness.engines.hf import HFEngine
from harness.records import DecodingParams, PromptItem

INSTRUCTIONS = [
    "Give me three tips for sleeping better.",
    "What is a prime number?",
    "Write a haiku about the sea, with a title and a short explanation of its imagery.",
    "Hi",
]
ITEMS = [PromptItem("t", "1", str(i), text) for i, text in enumerate(INSTRUCTIONS)]
DECODING = DecodingParams(max_new_tokens=24)


@pytest.fixture(scope="module")
def generator(tiny_model_dir):
    return HFEngine(tiny_model_dir, model_name="tiny-random-llama", device="cpu")


def _outputs(rows):
    return {(r["sample_id"], r["variant"]): r["output_token_ids"] for r in rows}


@pytest.mark.parametrize("variant", ["none", "rules", "rules:eos-uniform-diversity-start", "rules:diversity-prose"])
def test_batched_equals_one_at_a_time(generator, variant):
    variants = parse_variants([variant])
    batched = _outputs(generator.generate(ITEMS, variants, DECODING, batch_size=4))
    single = _outputs(generator.generate(ITEMS, variants, DECODING, batch_size=1))
    assert batched == single


def test_cache_equals_no_cache_with_expert(tiny_model_dir, generator):
    variants = parse_variants(["rules"])
    no_cache = HFEngine(tiny_model_dir, model_name="tiny", device="cpu", use_cache=False)
    assert _outputs(generator.generate(ITEMS, variants, DECODING, 4)) == _outputs(no_cache.generate(ITEMS, variants, DECODING, 4))


def test_expert_changes_outputs_and_rows_are_complete(generator):
    rows = generator.generate(ITEMS, parse_variants(["none", "rules"]), DECODING, batch_size=2)
    assert len(rows) == len(ITEMS) * 2
    out = _outputs(rows)
    assert any(out[(i.sample_id, "none")] != out[(i.sample_id, "rules")] for i in ITEMS)
    for r in rows:
        assert r["num_output_tokens"] == len(r["output_token_ids"]) <= DECODING.max_new_tokens
        assert r["finish_reason"] in ("eos", "length")
        assert (r["finish_reason"] == "eos") == (r["output_token_ids"][-1] == generator.eos_id)


def test_combine_modes_give_identical_greedy_tokens(tiny_model_dir, generator):
    other = HFEngine(tiny_model_dir, model_name="tiny", device="cpu", combine="logsoftmax-sum")
    variants = parse_variants(["rules"])
    assert _outputs(generator.generate(ITEMS, variants, DECODING, 4)) == _outputs(other.generate(ITEMS, variants, DECODING, 4))
