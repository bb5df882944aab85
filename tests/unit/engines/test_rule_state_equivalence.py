"""The vLLM processor's state (BatchRules) equals the HF RuleExpertProcessor bit for bit.

Random logits and random (prompt, generated) histories in fp32, for every preset,
ablation option and declarative expert, both combine modes, in a persistent batch where
requests are added, removed, moved and swapped mid-run the way vLLM's BatchUpdate
reports it (added, removed, moved). No vLLM engine is started (nor imported).

Most prompts are tagged (``<|user|>``/``<|assistant|>`` or ``<|A|>``/``<|B|>``) and
requests now and then generate a tag, so ``anchor: last-tag`` experts (the paper presets,
and last-tag copies of the declarative ones) restart ``t`` and move the window mid-run.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch

from harness.engines.rule_state import BatchRules, expert_from_arg, request_args
from harness.experts.processor import ResolvedExpert, RuleExpertProcessor
from harness.experts.registry import expert_registry
from harness.experts.spec import expert_from_dict
from harness.experts.variants import ABLATIONS, parse_variant

OPTION_VARIANTS = ["rules:start", "rules:eos-uniform-diversity-start", "rules:eos-uniform-diversity-table8-fallback-prose",
                   "rules:uniform-diversity-prose-start", "rules:eos-uniform-diversity-fixed"]
TAG_PAIRS = [("<|user|>", "<|assistant|>"), ("<|A|>", "<|B|>")]
DECLARATIVE = [
    {"name": "mult", "diversity": {"penalty": 1.3, "mode": "multiplicative"}, "eos": {"per_token": 0.5, "until": 9}},
    {"name": "mult-resp", "diversity": {"penalty": 2.0, "mode": "multiplicative", "scope": "response"},
     "start": {"weight": 2.0}},
    {"name": "expo", "eos": {"ramp": "exponential", "scale": 0.7, "rate": 0.2, "until": 12, "fallback_after": 6,
                             "fallback_bonus": 3.0},
     "uniform": [{"token": "!", "delta": 2.5}, {"token": "\n", "delta": -1.0}]},
    # the start rule's 2nd-position token is the EOS-ramped column's neighbour; its 3rd the uniform "!"
    {"name": "stacked", "eos": {"per_token": 0.25}, "uniform": [{"token": "!", "delta": 1.0}],
     "start": {"second": {"token": "!", "delta": 4.0}, "third": {"token": "!", "delta": -2.0}},
     "diversity": {"penalty": 0.75}},
]


def _specs():
    specs = [parse_variant(n).expert for n in ABLATIONS[1:] + tuple(OPTION_VARIANTS)]
    registry = expert_registry()
    specs += [registry.get(n) for n in registry.names() if "llama2" not in n]
    specs += [expert_from_dict(d) for d in DECLARATIVE]
    specs += [expert_from_dict({**d, "name": d["name"] + "-last-tag", "anchor": "last-tag"}) for d in DECLARATIVE]
    return specs


SPECS = _specs()


@pytest.fixture(scope="module")
def tokenizer():
    from harness.models.tiny import train_tiny_tokenizer

    return train_tiny_tokenizer()


class _Sim:
    """A persistent batch driven like vLLM's: BatchUpdates plus the HF reference per request."""

    def __init__(self, tokenizer, specs, combine, seed, with_plain=True):
        self.tok = tokenizer
        self.V = len(tokenizer)
        self.rng = random.Random(seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.specs = specs
        self.combine = combine
        self.rules = BatchRules(tokenizer, self.V)
        self.slots: list[dict | None] = []
        self.eos = tokenizer.eos_token_id
        self.with_plain = with_plain
        self.reanchored = 0  # row-steps scored by a last-tag request after a generated tag moved it

    def _new_request(self):
        spec = self.rng.choice(self.specs + ([None] if self.with_plain else []))  # None: no expert
        prompt = [self.rng.randrange(self.V) for _ in range(self.rng.randint(2, 12))]
        start = self.rng.randrange(len(prompt))
        if self.rng.random() < 0.8:  # a tagged prompt: random ids, user tag, instruction, assistant tag
            user, assistant = self.rng.choice(TAG_PAIRS)
            head = prompt[:start] + self._tag(user)
            prompt, start = head + prompt[start:] + self._tag(assistant), len(head)
        proc = None
        if spec is not None:
            ex = ResolvedExpert.build(spec, self.tok, self.V, self.eos)
            proc = RuleExpertProcessor(ex, user_starts=[start], prompt_length=len(prompt), combine=self.combine)
        out: list[int] = []
        params = SimpleNamespace(extra_args=request_args(spec, start, self.combine) or None)
        # half the requests open with a tag (rows live ~5 steps, a tag takes 5)
        queue = self._tag(self.rng.choice([t for pair in TAG_PAIRS for t in pair])) if self.rng.random() < 0.5 else []
        return {"prompt": prompt, "out": out, "proc": proc, "params": params, "queue": queue}

    def _tag(self, tag):
        return self.tok("\n" + tag + "\n", add_special_tokens=False)["input_ids"]

    def step_update(self):
        removed, added, moved = [], [], []
        # 1. some requests finish
        for i, r in enumerate(self.slots):
            if r is not None and self.rng.random() < 0.2:
                self.slots[i] = None
                removed.append(i)
        # 2. new requests fill the lowest holes first (those holes are not reported as removed)
        for _ in range(self.rng.randint(0, 3)):
            holes = [i for i, r in enumerate(self.slots) if r is None]
            req = self._new_request()
            if holes:
                i = holes[0]
                removed.remove(i) if i in removed else None
                self.slots[i] = req
            else:
                i = len(self.slots)
                self.slots.append(req)
            added.append((i, req["params"], list(req["prompt"]), req["out"]))
        # 3. condense: move the last live request into each remaining hole (one-way)
        while None in self.slots:
            hole = self.slots.index(None)
            last = max(i for i, r in enumerate(self.slots) if r is not None) if any(self.slots) else -1
            if last < hole:
                self.slots = self.slots[:hole]
                break
            self.slots[hole], self.slots[last] = self.slots[last], None
            moved.append((last, hole, SimpleNamespace(name="UNIDIRECTIONAL")))
        # 4. a swap (vLLM reorders the batch this way)
        if len(self.slots) >= 2 and self.rng.random() < 0.5:
            a, b = self.rng.sample(range(len(self.slots)), 2)
            self.slots[a], self.slots[b] = self.slots[b], self.slots[a]
            moved.append((a, b, SimpleNamespace(name="SWAP")))
        self.rules.update(SimpleNamespace(removed=sorted(removed, reverse=True), added=added, moved=moved))

    def step_apply(self):
        n = len(self.slots)
        if n == 0:
            return 0
        logits = torch.randn(n, self.V, generator=self.gen) * 4
        expected = logits.clone()
        for i, r in enumerate(self.slots):
            if r["proc"] is not None:
                ids = torch.tensor([r["prompt"] + r["out"]])
                expected[i] = r["proc"](ids, logits[i:i + 1].clone())[0]
        got = self.rules.apply(logits.clone())
        self.reanchored += sum(1 for q in self.rules.requests.values() if q.anchors is not None
                               and (q.anchors.response > len(q.prompt) or q.anchors.user > len(q.prompt)))
        for i in range(n):
            assert torch.equal(got[i], expected[i]), f"row {i} differs (t={len(self.slots[i]['out'])})"
        # generate one token per request: mostly random, sometimes the argmax or a repeat (seen ids)
        for i, r in enumerate(self.slots):
            if not r["queue"] and self.rng.random() < 0.3:  # the request starts generating a tag
                r["queue"] = self._tag(self.rng.choice([t for pair in TAG_PAIRS for t in pair]))
            if r["queue"]:
                r["out"].append(r["queue"].pop(0))
                continue
            pick = self.rng.random()
            tok = int(got[i].argmax()) if pick < 0.3 else (self.rng.choice(r["prompt"]) if pick < 0.5
                                                             else self.rng.randrange(self.V))
            r["out"].append(tok)
        return n


@pytest.mark.parametrize("combine", ["logit-add", "logsoftmax-sum"])
@pytest.mark.parametrize("seed", [0, 1])
def test_batch_rules_equal_hf_processor_bit_for_bit(tokenizer, combine, seed):
    sim = _Sim(tokenizer, SPECS, combine, seed)
    rows = 0
    for _ in range(30):
        sim.step_update()
        rows += sim.step_apply()
    assert rows > 60  # the batch was really exercised
    assert sim.reanchored > 5  # last-tag rows were scored after re-anchoring on a generated tag


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_variant_alone_first_steps(tokenizer, spec):
    """Each variant in a batch of its own: steps 0-3 (start rule, EOS ramp start) exactly equal."""
    sim = _Sim(tokenizer, [spec], "logit-add", 7, with_plain=False)
    sim.rng.random = lambda: 0.9  # no removals, no swaps
    for _ in range(4):
        sim.step_update()
        sim.step_apply()


def test_extra_args_round_trip_spec_json_and_names():
    spec = parse_variant("rules:eos-uniform").expert
    assert expert_from_arg(request_args(spec, 3)["harness_expert"]).spec_hash() == spec.spec_hash()
    assert expert_from_arg("rules:eos-uniform").spec_hash() == spec.spec_hash()
    import json

    assert expert_from_arg(json.dumps(spec.to_dict())).spec_hash() == spec.spec_hash()


def test_bad_extra_args_are_one_line_errors(tokenizer):
    from harness.errors import HarnessError

    rules = BatchRules(tokenizer, len(tokenizer))
    with pytest.raises(HarnessError, match="unknown variant"):
        rules.validate({"harness_expert": "rulez"})
    with pytest.raises(HarnessError, match="harness_combine"):
        rules.validate({"harness_expert": "rules", "harness_combine": "mean"})
    with pytest.raises(HarnessError, match="harness_user_start"):
        rules.validate({"harness_expert": "rules", "harness_user_start": -1})
    rules.validate({})  # no expert: nothing to check
