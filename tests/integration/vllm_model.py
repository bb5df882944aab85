"""A tiny random Llama that vLLM's CPU attention accepts (head size 32; the built-in has 16).

Same tokenizer as ``tiny-random-llama``; weights from a seeded generator with a larger
scale than the built-in, so greedy choices are decisive (logit gaps far above fp32 noise)
and two engines can be compared token for token.
"""

from __future__ import annotations

from pathlib import Path

from harness.models.tiny import init_weights


def build_vllm_tiny(tiny_dir: Path, out_dir: Path, seed: int = 0) -> Path:
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    if (out_dir / "model.safetensors").exists():
        return out_dir
    tok = AutoTokenizer.from_pretrained(str(tiny_dir))
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, head_dim=32, vocab_size=len(tok), max_position_embeddings=1024,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         tie_word_embeddings=False, dtype="float32")
    model = LlamaForCausalLM(config).to(torch.float32)
    init_weights(model, seed, scale=0.15, head_scale=0.5)
    model.generation_config = GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                               pad_token_id=tok.pad_token_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    return out_dir
