"""Both anchorings on the tiny model: the fast path equals the reference path, tags and all.

Two "tagger" experts make tiny-random-llama generate a role tag: the start rule's
agreement token is ``<|`` (+50 at the first response position), its 2nd/3rd-position
tokens spell ``assistant|>`` (or ``user|>``) and a newline is uniformly favoured (the user
tagger also favours ``<|``, a prompt token the diversity rule penalises until the window moves). Under
``anchor: last-tag`` the generated ``<|assistant|>\\n`` restarts ``t``, so the start rule
fires again and the tag repeats; the generated ``<|user|>\\n`` moves the diversity window.
Under ``anchor: prompt`` neither happens. ``HFEngine.generate`` (left-padded batch, KV
cache, incremental anchors) must give the same greedy tokens as ``reference_generate``
(batch 1, no cache, anchors re-found from scratch every step) for both anchorings.
"""

from dataclasses import replace

import pytest
import torch

from harness.experts import parse_variants
from harness.experts.reference import reference_generate
from harness.experts.spec import expert_from_dict
from harness.experts.variants import Variant
from harness.engines.hf import HFEngine
from harness.records import DecodingParams, PromptItem

ITEMS = [PromptItem("t", "1", str(i), text) for i, text in enumerate(["What is a prime number?", "Hi"])]
DECODING = DecodingParams(max_new_tokens=14)


def tagger(role: str, anchor: str, scale: float = 1.0) -> Variant:
    """A tagger expert; ``scale`` multiplies every score, to beat sharper base models."""
    spec = expert_from_dict({
        "name": f"tag-{role}-{anchor}", "anchor": anchor,
        # user tagger: "<|" is in the prompt, so seen (6 - 5) until a generated user tag empties the
        # window; then it beats a seen newline (7 - 5)
        "uniform": [{"token": "\n", "delta": 3.0 * scale}] if role == "assistant" else
                   [{"token": "\n", "delta": 7.0 * scale}, {"token": "<|", "delta": 6.0 * scale}],
        "diversity": {"penalty": (1.5 if role == "assistant" else 5.0) * scale},
        "start": {"agreement": "<|", "agreement_bonus": 10.0 * scale, "second": {"token": role, "delta": 15.0 * scale},
                  "third": {"token": "|>", "delta": 15.0 * scale}},
    })
    return Variant(spec.name, spec)


VARIANTS = [tagger(role, anchor) for role in ("assistant", "user") for anchor in ("last-tag", "prompt")]
VARIANTS += parse_variants(["rules", "rules:eos-uniform-diversity-fixed"])


@pytest.fixture(scope="module")
def run(tiny_model_dir):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    gen = HFEngine(tiny_model_dir, model_name="tiny", device="cpu")
    encoded = {e["item"].sample_id: e for e in gen.encode(ITEMS)}
    rows = gen.generate(ITEMS, VARIANTS, DECODING, batch_size=2)
    yield gen, encoded, rows
    torch.set_num_threads(before)


def _out(rows, variant, sample_id):
    return next(r["output_token_ids"] for r in rows if r["variant"] == variant and r["sample_id"] == sample_id)


def test_fast_path_equals_reference_for_both_anchorings(run):
    gen, encoded, rows = run
    variants = {v.name: v for v in VARIANTS}
    for row in rows:
        e = encoded[row["sample_id"]]
        ref = reference_generate(gen.model, gen.tokenizer, gen.expert_for(variants[row["variant"]]), e["ids"],
                                 e["user_start"], max_new_tokens=DECODING.max_new_tokens)
        assert ref == row["output_token_ids"], row["variant"]


def test_generated_tags_change_the_output_only_under_last_tag(run):
    gen, _, rows = run
    tag = gen.tokenizer("<|assistant|>\n", add_special_tokens=False)["input_ids"]
    for item in ITEMS:
        last, fixed = _out(rows, "tag-assistant-last-tag", item.sample_id), _out(rows, "tag-assistant-prompt", item.sample_id)
        assert last[:len(tag)] == fixed[:len(tag)] == tag  # both open with the tag the start rule spells
        assert last[len(tag):2 * len(tag)] == tag  # ... which restarts t only under last-tag
        assert fixed[len(tag):2 * len(tag)] != tag
        user_last, user_fixed = (_out(rows, f"tag-user-{a}", item.sample_id) for a in ("last-tag", "prompt"))
        utag = gen.tokenizer("<|user|>\n", add_special_tokens=False)["input_ids"]
        assert user_last[:len(utag)] == user_fixed[:len(utag)] == utag
        assert utag[0] in user_last[len(utag):] and utag[0] not in user_fixed[len(utag):]  # "<|" unseen after the move
