"""Scoring continuations agrees with what generation would produce."""

import math

import pytest

from harness.experts import parse_variants
from harness.engines.hf import HFEngine
from harness.records import DecodingParams, PromptItem
from harness.engines.scoring import score_pairs


@pytest.fixture(scope="module")
def gen(tiny_model_dir):
    return HFEngine(tiny_model_dir, model_name="tiny", device="cpu")


@pytest.mark.parametrize("variant", ["none", "rules", "rules:eos-diversity"])
def test_greedy_output_scores_as_greedy_and_beats_a_perturbation(gen, variant):
    v = parse_variants([variant])
    item = PromptItem("t", "1", "0", "List three colours.")
    row = gen.generate([item], v, DecodingParams(max_new_tokens=10), 1)[0]
    toks = row["output_token_ids"]
    text = gen.tokenizer.decode(toks, skip_special_tokens=True)
    if gen.tokenizer.encode(text, add_special_tokens=False) != [t for t in toks if t != gen.eos_id]:
        pytest.skip("decode/encode is not a round trip for this output")
    add_eos = row["finish_reason"] == "eos"
    greedy, other = score_pairs(gen, [(item.instruction, text), (item.instruction, text[::-1])], v[0], add_eos=add_eos)
    assert greedy["is_greedy"] and greedy["num_tokens"] == len(toks)
    assert greedy["logprob"] <= 0 and math.isfinite(greedy["logprob"])


def test_batching_does_not_change_scores(gen):
    v = parse_variants(["rules"])[0]
    pairs = [("Say hi.", "Hello there!"), ("Name a fruit.", "An apple, probably."), ("x", "y")]
    one = [score_pairs(gen, [p], v)[0]["logprob"] for p in pairs]
    many = [s["logprob"] for s in score_pairs(gen, pairs, v, batch_size=3)]
    assert many == pytest.approx(one, abs=1e-4)


def test_expert_changes_scores(gen):
    none, rules = parse_variants(["none", "rules"])
    pair = [("Say hi.", "I I I I should should")]
    assert score_pairs(gen, pair, rules)[0]["logprob"] < score_pairs(gen, pair, none)[0]["logprob"]
