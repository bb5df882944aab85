"""The vLLM engine after the README install: ``import vllm``, a real (tiny) generation, and
its tokens equal to the HF engine and to the from-scratch reference path.

One vLLM engine start for the module (in-process, eager, about 10-15 s) on a tiny random
Llama with head size 32 (vLLM's CPU attention refuses the built-in tiny model's 16; that
refusal is what ``--engine auto`` reports).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.experts.processor import ResolvedExpert
from harness.experts.reference import reference_generate
from harness.experts.spec import expert_from_dict
from harness.experts.variants import Variant, parse_variants
from harness.records import DecodingParams, PromptItem

sys.path.insert(0, str(Path(__file__).parent))
from test_anchor_reference import tagger  # noqa: E402
from vllm_model import build_vllm_tiny  # noqa: E402

INSTRUCTIONS = ["Say hi.", "What should I do today?", "Write a list of three colours please", "I"]
ITEMS = [PromptItem("t", "1", str(i), s) for i, s in enumerate(INSTRUCTIONS)]
EOS_FAST = Variant("eos-fast", expert_from_dict({"name": "eos-fast", "eos": {"per_token": 1.5},
                                                 "diversity": {"penalty": 1.5}}))
VARIANTS = parse_variants(["none", "ablations", "rules:eos-uniform-diversity-start",
                           "rules:eos-uniform-diversity-table8-prose", "rules:eos-uniform-diversity-fixed"]) + [EOS_FAST]
# experts that make the model generate <|assistant|> / <|user|>: anchor last-tag re-anchors inside vLLM
VARIANTS += [tagger(role, anchor, scale=10.0) for role in ("assistant", "user") for anchor in ("last-tag", "prompt")]
DECODING = DecodingParams(max_new_tokens=32)


@pytest.fixture(scope="module")
def vtiny(tiny_model_dir, harness_home) -> Path:
    return build_vllm_tiny(tiny_model_dir, harness_home / "vllm-tiny")


@pytest.fixture(scope="module")
def engine(vtiny):
    from harness.engines.vllm import VLLMEngine

    return VLLMEngine(vtiny, model_name="vtiny", max_model_len=512)


@pytest.fixture(scope="module")
def hf(vtiny):
    from harness.engines.hf import HFEngine

    return HFEngine(vtiny, model_name="vtiny", device="cpu")


def test_import_vllm_without_torchvision():
    import importlib.util

    import vllm

    assert vllm.__version__ and importlib.util.find_spec("torchvision") is None


def _by_key(rows):
    return {(r["variant"], r["sample_id"]): r for r in rows}


def test_vllm_rows_equal_hf_rows_for_every_variant(engine, hf):
    got = _by_key(engine.generate(ITEMS, VARIANTS, DECODING))
    want = _by_key(hf.generate(ITEMS, VARIANTS, DECODING, batch_size=4))
    assert set(got) == set(want)
    diff = [k for k in want if got[k]["output_token_ids"] != want[k]["output_token_ids"]]
    assert not diff, f"tokens differ for {diff}"
    row = got[("rules", "0")]
    assert row["engine"] == "vllm" and want[("rules", "0")]["engine"] == "hf"
    assert row["max_new_tokens"] == 32 and '"max_new_tokens": 32' in row["decoding_json"]
    eos_rows = [r for k, r in got.items() if k[0] == "eos-fast"]
    assert all(r["finish_reason"] == "eos" and r["output_token_ids"][-1] == engine.eos_id for r in eos_rows)
    assert any(got[("none", s)]["output_token_ids"] != got[("rules:eos-uniform-diversity-start", s)]["output_token_ids"]
               for s in "0123")  # the expert really acted inside vLLM
    tag = hf.tokenizer("<|assistant|>\n", add_special_tokens=False)["input_ids"]
    assert any(got[("tag-assistant-last-tag", s)]["output_token_ids"][:2 * len(tag)] == tag * 2
               for s in "0123")  # a generated tag restarted t inside vLLM
    utag = hf.tokenizer("<|user|>\n", add_special_tokens=False)["input_ids"]
    assert any(utag[0] in got[("tag-user-last-tag", s)]["output_token_ids"][len(utag):]
               and utag[0] not in got[("tag-user-prompt", s)]["output_token_ids"][len(utag):]
               for s in "0123")  # a generated user tag emptied the diversity window inside vLLM


def test_logsoftmax_sum_combine_inside_vllm(engine, hf):
    variants = parse_variants(["rules", "rules:eos-uniform-diversity-start"])
    engine.combine, hf.combine = "logsoftmax-sum", "logsoftmax-sum"
    try:
        got = _by_key(engine.generate(ITEMS, variants, DECODING))
        want = _by_key(hf.generate(ITEMS, variants, DECODING, batch_size=4))
    finally:
        engine.combine, hf.combine = "logit-add", "logit-add"
    assert {k: r["output_token_ids"] for k, r in got.items()} == {k: r["output_token_ids"] for k, r in want.items()}


def test_vllm_tokens_equal_the_reference_path(engine, hf):
    """Issue 12 item 4c: the harness's vLLM tokens = the paper's slow formulation, same rule."""
    variants = parse_variants(["rules", "rules:eos-uniform-diversity-start"]) + [EOS_FAST]
    variants += [tagger(role, "last-tag", scale=10.0) for role in ("assistant", "user")]
    got = _by_key(engine.generate(ITEMS, variants, DECODING))
    encoded = {e["item"].sample_id: e for e in hf.encode(ITEMS)}
    for variant in variants:
        expert = ResolvedExpert.build(variant.expert, hf.tokenizer, hf.vocab_size, hf.eos_id)
        for sid, e in encoded.items():
            ref = reference_generate(hf.model, hf.tokenizer, expert, e["ids"], e["user_start"],
                                     max_new_tokens=DECODING.max_new_tokens)
            assert got[(variant.name, sid)]["output_token_ids"] == ref, (variant.name, sid)


class _EngineBackend:
    """The two calls the lm-eval bridge makes of a backend, served by one in-process engine."""

    def __init__(self, engine):
        self.engine = engine

    def generate(self, items, variants, decoding):
        return self.engine.generate(list(items), list(variants), decoding, 8)

    def score(self, pairs, variant, add_eos=False):
        from harness.engines.scoring import score_pairs

        return score_pairs(self.engine.scorer(), pairs, variant, add_eos=add_eos)


def test_lm_eval_generate_until_through_vllm_equals_hf(engine, hf, vtiny):
    """lm-eval's IFEval (generate_until) on the vLLM engine: the same rows and scores as on HF, rules included."""
    pytest.importorskip("lm_eval")
    from types import SimpleNamespace

    from harness.lmeval import evaluate_tasks
    from harness.models import resolve
    from harness.run.config import RunConfig

    sample = Path(__file__).parents[2] / "tasks" / "data" / "ifeval_sample.jsonl"
    cfg = RunConfig.from_sources(None, {"model": str(vtiny), "tasks": "lm_eval:ifeval", "data": f"ifeval={sample}",
                                        "limit": 4, "max_new_tokens": 24})
    plan = SimpleNamespace(cfg=cfg, model=resolve(str(vtiny)), prompt_format="tulu",
                           variants=parse_variants(["none", "rules"]))
    got = {name: evaluate_tasks(["ifeval"], _EngineBackend(e), plan) for name, e in (("vllm", engine), ("hf", hf))}
    (v_rows, v_metrics), (h_rows, h_metrics) = got["vllm"], got["hf"]
    assert len(v_rows) == len(h_rows) == 8 and {r["variant"] for r in v_rows} == {"none", "rules"}
    key = lambda r: (r["variant"], r["sample_id"])  # noqa: E731
    assert {key(r): r["output_token_ids"] for r in v_rows} == {key(r): r["output_token_ids"] for r in h_rows}
    assert all(r["num_output_tokens"] <= 24 and r["engine"] == "vllm" for r in v_rows)
    assert all(r["engine"] == "hf" and r["max_new_tokens"] == 24 for r in h_rows)
    score = lambda ms: {(m["variant"], m["metric"], m.get("sample_id")): m["value"] for m in ms}  # noqa: E731
    assert score(v_metrics) == score(h_metrics)
