"""The fast path (batched, cached ``HFEngine``) equals the paper's slow formulation.

For every Table-4 ablation plus ``-start``, ``-table8``, ``-prose`` and a multiplicative
diversity expert, greedy tokens from ``HFEngine.generate`` (left-padded batches, KV
cache, incremental rule state, ``logit-add``) must equal ``reference_generate`` (batch
1, no cache, full forward each step, rules rebuilt from the token list,
``log_softmax(base) + log_softmax(r)``). Run on tiny-random-llama as built (near-flat
logits: the rules decide most tokens) and "sharpened" (final norm x3: base and rules
compete). Then the attribution trace is checked against the same re-scoring.
"""

from dataclasses import replace

import pytest
import torch

from harness.experts import parse_variants
from harness.experts.processor import ResolvedExpert
from harness.experts.reference import paper_user_start, reference_generate, reference_rule_scores, reference_start_vector
from harness.experts.spec import DiversityRule, paper_expert
from harness.experts.variants import ABLATIONS, Variant
from harness.engines.hf import HFEngine
from harness.records import DecodingParams, PromptItem

INSTRUCTIONS = [
    "Give me three tips for sleeping better.",
    "What is a prime number?",
    "Write a haiku about the sea, with a title and a short explanation of its imagery.",
    "Hi",
]
ITEMS = [PromptItem("t", "1", str(i), text) for i, text in enumerate(INSTRUCTIONS)]
DECODING = DecodingParams(max_new_tokens=32)
MULTIPLICATIVE = Variant("mult", replace(paper_expert(), name="mult", diversity=DiversityRule(penalty=1.3, mode="multiplicative")))
VARIANTS = parse_variants([*ABLATIONS, "rules:eos-uniform-diversity-start", "rules:eos-uniform-diversity-table8",
                           "rules:eos-uniform-diversity-prose"]) + [MULTIPLICATIVE]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny forwards are latency-bound: one thread avoids OpenMP spin-waits on a busy box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def generators(tiny_model_dir):
    plain = HFEngine(tiny_model_dir, model_name="tiny", device="cpu", trace=True)
    sharp = HFEngine(tiny_model_dir, model_name="tiny-sharp", device="cpu", trace=True)
    with torch.no_grad():
        sharp.model.model.norm.weight.mul_(3.0)
    return {"plain": plain, "sharp": sharp}


@pytest.fixture(scope="module")
def runs(generators):
    """(generator, encoded prompts by sample id, rows) per model, generated once."""
    out = {}
    for name, gen in generators.items():
        encoded = {e["item"].sample_id: e for e in gen.encode(ITEMS)}
        out[name] = (gen, encoded, gen.generate(ITEMS, VARIANTS, DECODING, batch_size=4))
    return out


@pytest.mark.parametrize("model", ["plain", "sharp"])
def test_fast_path_equals_reference_for_every_variant(runs, model):
    gen, encoded, rows = runs[model]
    variants = {v.name: v for v in VARIANTS}
    mismatches = []
    for row in rows:
        e = encoded[row["sample_id"]]
        assert paper_user_start(e["ids"], gen.tokenizer) == e["user_start"]  # tag match == offsets
        expert = gen.expert_for(variants[row["variant"]])
        ref = reference_generate(gen.model, gen.tokenizer, expert, e["ids"], max_new_tokens=DECODING.max_new_tokens)
        if ref != row["output_token_ids"]:
            mismatches.append((row["variant"], row["sample_id"], ref, row["output_token_ids"]))
    assert mismatches == []


def test_every_expert_changes_some_output(runs):
    """The comparison above is not vacuous: each expert moves at least one greedy output."""
    for v in VARIANTS[1:]:
        changed = [(m, i.sample_id) for m, (_, _, rows) in runs.items() for i in ITEMS
                   if _out(rows, v.name, i.sample_id) != _out(rows, "none", i.sample_id)]
        assert changed, v.name


def _out(rows, variant, sample_id):
    return next(r["output_token_ids"] for r in rows if r["variant"] == variant and r["sample_id"] == sample_id)


def _single_rule_experts(gen, expert):
    spec = expert.spec
    out = {}
    for rule in ("eos", "uniform", "diversity", "start"):
        if getattr(spec, rule) is not None:
            only = replace(spec, **{r: None for r in ("eos", "uniform", "diversity", "start") if r != rule})
            out[rule] = ResolvedExpert.build(only, gen.tokenizer, gen.vocab_size, gen.eos_id)
    return out


@pytest.mark.parametrize("model", ["plain", "sharp"])
def test_every_recorded_flip_is_real_and_every_flip_is_recorded(runs, model):
    gen, encoded, rows = runs[model]
    variants = {v.name: v for v in VARIANTS}
    checked = 0
    for row in rows:
        if row["variant"] == "none":
            assert all(row[c] == [] for c in ("flip_positions", "flip_base_tokens", "flip_chosen_tokens",
                                              "flip_base_margins", "flip_chosen_margins", "flip_rules"))
            continue
        if row["variant"] not in ("rules", "rules:eos-uniform-diversity-start", "rules:eos-uniform"):
            continue
        expert = gen.expert_for(variants[row["variant"]])
        singles = _single_rule_experts(gen, expert)
        starts = {k: reference_start_vector(x, gen.tokenizer) for k, x in singles.items() if x.spec.start}
        e, out = encoded[row["sample_id"]], row["output_token_ids"]
        flips = {p: i for i, p in enumerate(row["flip_positions"])}
        start_first = reference_start_vector(expert, gen.tokenizer) if expert.spec.start else None
        for t, token in enumerate(out):
            ids = e["ids"] + out[:t]
            with torch.no_grad():
                base = gen.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
            r = reference_rule_scores(expert, ids, e["user_start"], len(e["ids"]), start_first)
            combined = base + r
            bt, ch = int(base.argmax()), int(combined.argmax())
            assert ch == token
            assert (t in flips) == (bt != ch), (row["variant"], row["sample_id"], t)
            if t not in flips:
                continue
            i = flips[t]
            assert (row["flip_base_tokens"][i], row["flip_chosen_tokens"][i]) == (bt, ch)
            assert row["flip_base_margins"][i] == pytest.approx(float(base[bt] - base[ch]), abs=1e-3)
            assert row["flip_chosen_margins"][i] == pytest.approx(float(combined[ch] - combined[bt]), abs=1e-3)
            contrib = {k: float(reference_rule_scores(x, ids, e["user_start"], len(e["ids"]), starts.get(k))[ch]
                                - reference_rule_scores(x, ids, e["user_start"], len(e["ids"]), starts.get(k))[bt])
                       for k, x in singles.items()}
            assert row["flip_rules"][i] == max(contrib, key=contrib.get)
            checked += 1
    assert checked > 0
