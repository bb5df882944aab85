"""Convert a GGUF file into a plain fp32 Hugging Face directory.

transformers dequantizes GGUF weights on load, but refuses to ``save_pretrained`` a
GGUF-loaded model ("quantized with gguf and is not serializable"). The workaround:
drop ``config.quantization_config``, build a fresh model from the config (on the meta
device, so no second copy of the weights is allocated), ``load_state_dict`` with
``assign=True`` and save that as safetensors. The tokenizer is saved next to it and
checked after a reload (same BOS/EOS; BOS prepended where required).

GGUF files are only ever read from paths the user (or the built-in catalogue) names.

Example:
    >>> convert_gguf(Path("SmolLM2.gguf"), Path("/tmp/smol"))   # doctest: +SKIP
    PosixPath('/tmp/smol')
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from harness.errors import HarnessError

logger = logging.getLogger(__name__)


def _fix_tokenizer(tokenizer, add_bos_token: bool | None) -> None:
    if add_bos_token and not getattr(tokenizer, "add_bos_token", False):
        tokenizer.add_bos_token = True
        update = getattr(tokenizer, "update_post_processor", None)
        if callable(update):
            update()


def _check_tokenizer(out_dir: Path, expect: dict, add_bos_token: bool | None, gguf_path: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out_dir)
    got = {k: getattr(tok, k) for k in expect}
    if got != expect:
        raise HarnessError(f"{gguf_path}: saved tokenizer changed special tokens: {expect} -> {got}")
    if add_bos_token:
        ids = tok("x").input_ids
        if not ids or ids[0] != tok.bos_token_id:
            raise HarnessError(
                f"{gguf_path}: saved tokenizer does not prepend bos {tok.bos_token!r} (got ids {ids[:3]})"
            )


def convert_gguf(gguf_path: Path, out_dir: Path, *, add_bos_token: bool | None = None) -> Path:
    """Dequantize ``gguf_path`` into ``out_dir`` (fp32 safetensors + tokenizer).

    Args:
        gguf_path: a ``.gguf`` file.
        out_dir: destination directory (created).
        add_bos_token: force the tokenizer to prepend BOS (Gemma base); ``None`` keeps
            what the GGUF says.

    Returns:
        ``out_dir``.

    Raises:
        HarnessError: the file cannot be read as a GGUF causal LM, or the saved
            tokenizer lost its BOS/EOS.

    Example:
        >>> convert_gguf(Path("gemma.gguf"), Path("/tmp/g"), add_bos_token=True)   # doctest: +SKIP
        PosixPath('/tmp/g')
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    src, fname = str(gguf_path.parent), gguf_path.name

    t0 = time.monotonic()
    logger.info("%s: loading tokenizer", fname)
    try:
        tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=fname)
        logger.info("%s: loading and dequantizing weights (this can take a minute)", fname)
        qmodel = AutoModelForCausalLM.from_pretrained(src, gguf_file=fname, dtype=torch.float32)
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        raise HarnessError(f"{gguf_path}: cannot load as a GGUF causal LM: {exc}") from exc

    config = qmodel.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    logger.info("%s: re-materializing %s as plain fp32", fname, type(qmodel).__name__)
    with torch.device("meta"):
        model = type(qmodel)(config)
    state = qmodel.state_dict()
    result = model.load_state_dict(state, strict=False, assign=True)
    # A tied lm_head may be absent from the state dict; anything else is a real mismatch.
    bad = [k for k in result.missing_keys if "lm_head" not in k] + list(result.unexpected_keys)
    if bad:
        raise HarnessError(f"{gguf_path}: weights do not match {type(model).__name__}: {bad[:5]}")
    model.tie_weights()
    still_meta = [n for n, p in model.named_parameters() if p.is_meta]
    if still_meta:
        raise HarnessError(f"{gguf_path}: parameters left unset after conversion: {still_meta[:5]}")
    model.generation_config = qmodel.generation_config
    del qmodel, state

    logger.info("%s: writing fp32 safetensors to %s", fname, out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    del model

    expect = {k: getattr(tokenizer, k) for k in ("bos_token", "eos_token")}
    _fix_tokenizer(tokenizer, add_bos_token)
    tokenizer.save_pretrained(out_dir)
    _check_tokenizer(out_dir, expect, add_bos_token, gguf_path)
    logger.info("%s: converted in %.0f s", fname, time.monotonic() - t0)
    return out_dir
