"""A deterministic tiny random Llama for fast tests (built locally, no downloads).

The tokenizer is a byte-level BPE (vocab ~1000) trained with ``tokenizers`` on the
small corpus in ``harness/models/data/tiny_corpus.txt``. The surface strings the rule
expert and the prompt formats care about (:data:`SINGLE_TOKEN_STRINGS`) are single
tokens. Weights come from an explicit ``torch.Generator`` seeded with 0, so two builds
are bit-identical. Greedy outputs of this random model loop; that is expected.

Example:
    >>> from pathlib import Path
    >>> d = build_tiny_random_llama(Path("/tmp/tiny"))   # doctest: +SKIP
    >>> sorted(p.name for p in d.iterdir())               # doctest: +SKIP
    ['config.json', 'generation_config.json', 'model.safetensors', ...]
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

logger = logging.getLogger(__name__)

#: Strings that must each be exactly one token of the tiny tokenizer.
SINGLE_TOKEN_STRINGS: tuple[str, ...] = (
    "<", " <", "|", " I", "I", " We", "What", " should", " *", " -", "   ", " #", " ##", "\n", "!",
)

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
VOCAB_SIZE = 1000
SEED = 0


def corpus_text() -> str:
    """Return the training corpus shipped in ``harness/models/data/tiny_corpus.txt``."""
    return resources.files("harness.models").joinpath("data").joinpath("tiny_corpus.txt").read_text("utf-8")


def train_tiny_tokenizer():
    """Train the byte-level BPE and wrap it in a ``PreTrainedTokenizerFast``.

    Newlines are split off before the byte-level regex, so ``"\\n"`` is always its own
    token and code indentation yields whole runs of spaces (``"   "``).

    Returns:
        transformers.PreTrainedTokenizerFast: with ``<s>``/``</s>``/``<pad>``/``<unk>``;
        encoding adds ``<s>`` in front.

    Example:
        >>> tok = train_tiny_tokenizer()                  # doctest: +SKIP
        >>> tok(" should", add_special_tokens=False).input_ids   # doctest: +SKIP
        [517]
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split("\n", behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=1,
        special_tokens=[UNK, BOS, EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([corpus_text()], trainer=trainer)
    missing = [s for s in SINGLE_TOKEN_STRINGS if len(tok.encode(s).ids) != 1]
    if missing:  # corpus edits could drop a merge: keep the guarantee anyway
        logger.warning("tiny tokenizer: adding %s as whole tokens", missing)
        tok.add_tokens([AddedToken(s, normalized=False) for s in missing])
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        model_max_length=2048,
    )


def init_weights(model, seed: int, scale: float = 0.02, head_scale: float | None = None) -> None:
    """Fill every parameter from one seeded generator (norms = 1), in name order.

    Normal noise times ``scale`` (``head_scale`` for ``lm_head``, default ``scale``).
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if name.endswith("norm.weight"):
                param.fill_(1.0)
            else:
                factor = head_scale if head_scale is not None and "lm_head" in name else scale
                param.copy_(torch.randn(param.shape, generator=gen, dtype=torch.float32) * factor)


def build_tiny_random_llama(out_dir: Path, seed: int = SEED) -> Path:
    """Write a tiny random Llama (fp32 safetensors + tokenizer + generation config).

    Args:
        out_dir: directory to write (created; existing files are overwritten).
        seed: weight seed; the default gives the built-in ``tiny-random-llama``.

    Returns:
        ``out_dir``, an HF directory loadable with ``AutoModelForCausalLM``.

    Example:
        >>> d = build_tiny_random_llama(Path("/tmp/tiny"))   # doctest: +SKIP
        >>> AutoModelForCausalLM.from_pretrained(d).num_parameters() < 200_000  # doctest: +SKIP
        True
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    logger.info("tiny-random-llama: training the byte-level BPE tokenizer")
    tokenizer = train_tiny_tokenizer()
    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        dtype="float32",
    )
    logger.info("tiny-random-llama: building the model (seed %d)", seed)
    model = LlamaForCausalLM(config).to(torch.float32)
    init_weights(model, seed)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    logger.info("tiny-random-llama: wrote %s", out_dir)
    return out_dir
