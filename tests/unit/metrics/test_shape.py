"""Response-shape flags: scalar definitions on hand-labelled cases, and vectorised == scalar."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pytest

from harness.metrics import shape

DATA = Path(__file__).resolve().parents[2] / "data" / "metrics"
CASES = [json.loads(line) for line in (DATA / "shape_cases.jsonl").read_text(encoding="utf-8").splitlines()]


def _table(cases: list[dict]) -> pa.Table:
    return pa.table(
        {
            "instruction": pa.array([c["instruction"] for c in cases], pa.string()),
            "output": pa.array([c["output"] for c in cases], pa.string()),
            "finish_reason": pa.array([c.get("finish_reason") for c in cases], pa.string()),
            "num_output_tokens": pa.array([c.get("num_output_tokens") for c in cases], pa.int32()),
        }
    )


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_scalar_matches_hand_labels(case):
    row = shape.shape_row(case["instruction"], case["output"], case["finish_reason"], case["num_output_tokens"])
    got = {k: row[k] for k in case["expected"]}
    if case["expected"]["distinct_2"] is not None:
        assert got.pop("distinct_2") == pytest.approx(case["expected"]["distinct_2"])
        expected = {k: v for k, v in case["expected"].items() if k != "distinct_2"}
    else:
        expected = case["expected"]
    assert got == expected
    assert row["eos"] == (case["finish_reason"] == "eos")
    assert row["output_tokens"] == case["num_output_tokens"]


def test_vectorised_equals_scalar_on_fixtures():
    got = shape.shape_table(_table(CASES)).to_pylist()
    for case, row in zip(CASES, got):
        assert row == shape.shape_row(case["instruction"], case["output"], case["finish_reason"], case["num_output_tokens"]), case["id"]


def _random_cases(seed: int, n: int) -> list[dict]:
    """Adversarial strings: Unicode case and compatibility forms, odd whitespace, tags, refusals."""
    rng = random.Random(seed)
    pieces = ["write", "a", "Poem", "about", "the", "SEA,", "\t", "\n", "\x0b", "\x0c", "\x1c", "\u00a0", "\u2028",
              "Ünïcödé", "İstanbul", "ΣΟΦΟΣ", "<|user|>", "<|assistant|>", "I can't", "I’m sorry, but", "ﬁne",
              "①", "  ", "!!", "e.g.", "x", "As an AI"]
    cases = []
    for _ in range(n):
        instr = " ".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        kind = rng.random()
        if kind < 0.3:
            out = instr + " ".join(rng.choice(pieces) for _ in range(rng.randint(0, 10)))
        elif kind < 0.5:
            words = instr.split()
            rng.shuffle(words)
            out = " ".join(words[: rng.randint(0, len(words))]) + " " + instr[len(instr) // 3 :]
        else:
            out = "".join(rng.choice(pieces) + rng.choice([" ", ""]) for _ in range(rng.randint(0, 40)))
        cases.append({
            "instruction": instr if rng.random() > 0.05 else None,
            "output": out if rng.random() > 0.05 else None,
            "finish_reason": rng.choice(["eos", "length", None]),
            "num_output_tokens": rng.choice([None, 3, 256]),
        })
    return cases


@pytest.mark.parametrize("seed", [0, 1], ids=["seed0", "seed1"])
def test_vectorised_equals_scalar_on_adversarial_strings(seed):
    cases = _random_cases(seed, 400)
    got = shape.shape_table(_table(cases)).to_pylist()
    for i, (case, row) in enumerate(zip(cases, got)):
        want = shape.shape_row(case["instruction"], case["output"], case["finish_reason"], case["num_output_tokens"])
        assert row == want, (i, case)


def test_shape_table_uses_token_ids_when_count_missing():
    t = pa.table({
        "output": ["a b", "c"],
        "num_output_tokens": pa.array([None, 7], pa.int32()),
        "output_token_ids": pa.array([[1, 2, 3], [4]], pa.list_(pa.int32())),
    })
    assert shape.shape_table(t).column("output_tokens").to_pylist() == [3, 7]


def test_shape_table_empty_and_missing_columns():
    empty = shape.shape_table(pa.table({"output": pa.array([], pa.string())}))
    assert empty.num_rows == 0
    assert empty.column_names == ["eos", "output_tokens", "echo", "role_tag", "distinct_2", "refusal"]
    row = shape.shape_table(pa.table({"output": ["hello world"]})).to_pylist()[0]
    assert row == {"eos": False, "output_tokens": None, "echo": False, "role_tag": False, "distinct_2": 1.0, "refusal": False}


@pytest.mark.parametrize(
    ("text", "n", "expected"),
    [("", 1, None), ("a", 1, 1.0), ("a a a", 1, 1 / 3), ("a b c", 3, 1.0), ("a b", 3, None), ("x y x y x", 2, 0.5)],
    ids=["empty", "one-unigram", "repeated-unigram", "one-trigram", "too-short", "alternating"],
)
def test_distinct_n(text, n, expected):
    assert shape.distinct_n(text, n) == (pytest.approx(expected) if expected is not None else None)


def test_distinct_n_rejects_zero():
    with pytest.raises(ValueError, match="n must be >= 1"):
        shape.distinct_n("a b", 0)


def test_distinct_3_vectorised():
    texts = ["a b c a b c", "x", "p q r s"]
    got = shape.shape_table(pa.table({"output": texts}), distinct=3).column("distinct_3").to_pylist()
    assert got == [shape.distinct_n(t, 3) for t in texts]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Write  a POEM, about ① cats!", ["write", "a", "poem", "about", "1", "cats"]),
        ("e.g. well-known", ["e", "g", "well", "known"]),
        ("\u00a0\n\t", []),
    ],
    ids=["case-punct-nfkc", "inner-punctuation", "only-whitespace"],
)
def test_words(text, expected):
    assert shape.words(text) == expected


def test_vectorised_in_small_blocks_equals_scalar(monkeypatch):
    monkeypatch.setattr(shape, "CHUNK_ROWS", 7)  # many blocks, including a short last one
    cases = _random_cases(2, 100) + CASES
    got = shape.shape_table(_table(cases)).to_pylist()
    assert got == [shape.shape_row(c["instruction"], c["output"], c["finish_reason"], c["num_output_tokens"]) for c in cases]
