"""Read a finetuning checkpoint back: ZeRO shards -> fp32 state dict -> plain HF directory.

``harness run --model deepspeed:OUTPUT@TAG`` is the way to evaluate a checkpoint; these
helpers are for code that wants the weights itself, or a plain HF directory any tool can
load (``harness run --model DEST``).

Example:
    >>> model = load_model("runs/ft/tiny-response", "epoch2")            # doctest: +SKIP
    >>> export_hf("runs/ft/tiny-response", "epoch2", "runs/hf/tiny-rt")  # doctest: +SKIP
    PosixPath('runs/hf/tiny-rt')
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from harness.errors import HarnessError

_TAG = re.compile(r"^(epoch|step)\d+$")


def list_tags(output_dir: str | Path) -> list[str]:
    """Checkpoint tags in ``output_dir`` in training order (``epoch1``, ``epoch2``, ..., then ``stepN``).

    >>> list_tags("/nonexistent")
    []
    """
    out = Path(output_dir)
    if not out.is_dir():
        return []
    tags = [p.name for p in out.iterdir() if p.is_dir() and _TAG.match(p.name) and any(p.glob("*_model_states.pt"))]
    return sorted(tags, key=lambda n: (n.startswith("step"), int(re.sub(r"\D", "", n))))


def _check(output_dir: Path, tag: str) -> None:
    if not (output_dir / "config.json").is_file():
        raise HarnessError(f"{output_dir}: not a finetuning output (no config.json)")
    if tag not in list_tags(output_dir):
        raise HarnessError(f"{output_dir}: no checkpoint tag {tag!r}; tags: {', '.join(list_tags(output_dir)) or 'none'}")


def load_state_dict(output_dir: str | Path, tag: str) -> dict:
    """The fp32 weights of checkpoint ``tag``, merged from all ZeRO shards."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    out = Path(output_dir)
    _check(out, tag)
    return get_fp32_state_dict_from_zero_checkpoint(str(out), tag=tag)


def load_model(output_dir: str | Path, tag: str, dtype: str = "float32"):
    """An ``AutoModelForCausalLM`` built from ``output_dir/config.json`` with checkpoint ``tag``'s weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    out = Path(output_dir)
    state = load_state_dict(out, tag)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(out)), dtype=torch.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {k for k in missing if "lm_head" in k and getattr(model.config, "tie_word_embeddings", False)}
    if set(missing) - tied or unexpected:
        raise HarnessError(f"{out}@{tag}: weights do not match config.json "
                           f"(missing {sorted(set(missing) - tied)[:3]}, unexpected {sorted(unexpected)[:3]})")
    model.tie_weights()
    return model.to(getattr(torch, dtype)).eval()


def export_hf(output_dir: str | Path, tag: str, dest: str | Path, dtype: str = "float32") -> Path:
    """Write checkpoint ``tag`` as a plain HF directory (safetensors + config + tokenizer)."""
    out, dest = Path(output_dir), Path(dest)
    model = load_model(out, tag, dtype)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest, safe_serialization=True)
    for p in out.iterdir():
        if p.is_file() and (p.name.startswith(("tokenizer", "special_tokens", "generation_config", "chat_template"))
                            or p.suffix == ".model"):
            shutil.copy2(p, dest / p.name)
    return dest
