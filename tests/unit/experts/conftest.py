"""Expert test fixtures: the offline Llama-2 tokenizer (tests/data/llama2_tokenizer)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

LLAMA2_FIXTURE = Path(__file__).resolve().parents[2] / "data" / "llama2_tokenizer" / "tokenizer.json.gz"


@pytest.fixture(scope="session")
def llama2_tokenizer():
    """The LLaMA-1/2 tokenizer rebuilt from llama-tokenizer-js@1.2.2 (see its README)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(gzip.decompress(LLAMA2_FIXTURE.read_bytes()).decode("utf-8"))
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


class ToyTokenizer:
    """A 12-piece SentencePiece-style tokenizer: enough for resolution and the start rule."""

    PIECES = ["<unk>", "<s>", "</s>", "a", "▁I", "b", "▁Okay", "c", "▁the", "!", "<0x0A>", "▁."]
    eos_token_id = 2
    all_special_ids = [0, 1, 2]

    def __len__(self):
        return len(self.PIECES)

    def get_vocab(self):
        return {p: i for i, p in enumerate(self.PIECES)}

    def convert_ids_to_tokens(self, ids):
        return self.PIECES[ids] if isinstance(ids, int) else [self.PIECES[i] for i in ids]

    def tokenize(self, text):
        return list(text)


@pytest.fixture
def toy_tokenizer():
    """See :class:`ToyTokenizer`: uniform strings "a", "b", "c" are ids 3, 5, 7."""
    return ToyTokenizer()
