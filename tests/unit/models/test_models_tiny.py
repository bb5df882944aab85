"""The tiny random Llama is deterministic and keeps the rule-expert strings single tokens."""

from __future__ import annotations

from harness.models.fingerprint import fingerprint_dir
from harness.models.tiny import SINGLE_TOKEN_STRINGS, build_tiny_random_llama


def test_two_builds_are_bit_identical(tmp_path, harness_home):
    a = build_tiny_random_llama(tmp_path / "a")
    b = build_tiny_random_llama(tmp_path / "b")
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= set(names)
    for n in names:
        assert (a / n).read_bytes() == (b / n).read_bytes(), n
    assert fingerprint_dir(a, harness_home) == fingerprint_dir(b, harness_home)


def test_tokenizer_and_model_load(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = build_tiny_random_llama(tmp_path / "tiny")
    tok = AutoTokenizer.from_pretrained(d)
    assert (tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token) == ("<s>", "</s>", "<pad>", "<unk>")
    assert 900 <= len(tok) <= 1100
    for s in SINGLE_TOKEN_STRINGS:
        ids = tok(s, add_special_tokens=False).input_ids
        assert len(ids) == 1, (s, tok.convert_ids_to_tokens(ids))
        assert tok.decode(ids) == s
    assert tok("What should I do?").input_ids[0] == tok.bos_token_id

    model = AutoModelForCausalLM.from_pretrained(d)
    cfg = model.config
    assert model.dtype == torch.float32
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads) == (64, 2, 4, 2)
    assert cfg.vocab_size == len(tok) and cfg.tie_word_embeddings
    assert (cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id) == (tok.bos_token_id, tok.eos_token_id,
                                                                      tok.pad_token_id)
    out = model.generate(**tok("Hello", return_tensors="pt"), max_new_tokens=4, do_sample=False)
    assert out.shape[1] <= 2 + 4  # <s> Hello + at most 4 new tokens
