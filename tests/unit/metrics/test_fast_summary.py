"""The fast summary paths (stored columns, batched merge, threads, streaming a store) equal the scalar oracle."""

from __future__ import annotations

import json
import random
import statistics

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.metrics import shape, stored, style_leak
from harness.metrics.rows import KEYS
from harness.metrics.summary import METRIC_ORDER, STYLE_METRICS, summarize, summarize_batches, summarize_store
from harness.store import Store, read_table
from harness.store.schema import conform, from_rows

LONG = " ".join(f"w{i % 97} tok{i % 13}" for i in range(6000))  # ~60k characters, 12k tokens
INSTRUCTIONS = [
    "Write a poem about the sea and the moon.",
    "Écris un poème sur la mer — s'il te plaît ①.",
    "解释一下量子纠缠。 Explain quantum entanglement in simple words please.",
    "Say hi.",
    "",
    None,
]
OUTPUTS = [
    "Write a poem about the sea and the moon. The waves are high",  # the prompt is a prefix of the output
    "ÉCRIS un poème sur la mer - s'il te plaît 1. La mer est bleue",  # prefix after NFKC + ASCII lowering
    "解释一下量子纠缠。 Explain quantum entanglement in simple words please. Sure.",
    "",
    None,
    "   \t\n ",
    LONG,
    LONG + " <|user|> and then",
    "I’m sorry, but I can’t help with that.",
    "Roses are red\nviolets are blue\nsugar is sweet\nand so are you\n",
    "She has 3 apples. <<3+4=7>>7\n#### 7",
    "1. e4 e5 2. Nf3 Nc6 3. Bb5 a6 4. Ba4 Nf6 1-0",
    "```python\nprint('hi')\n```",
    "Hi! <|assistant|> again",
    "a b a b a b",
]


def _mixed_rows(n: int = 120, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        status = "ok" if rng.random() > 0.1 else rng.choice(["error", None])
        tokens = rng.choice([None, 1, 8, 256])
        rows.append({
            "run_id": "r1", "key": f"k{i}", "task": rng.choice(["alpaca", "ifeval"]), "sample_id": str(i),
            "variant": rng.choice(["none", "rules", "rules:no-eos"]), "model": rng.choice(["m1", None]) or "",
            "instruction": rng.choice(INSTRUCTIONS), "output": rng.choice(OUTPUTS), "status": status,
            "finish_reason": rng.choice(["eos", "length", None]), "num_output_tokens": tokens,
            "output_token_ids": [1] * rng.randint(0, 5) if tokens is None and rng.random() < 0.5 else None,
        })
    return rows


def _oracle(rows: list[dict]) -> dict[tuple, dict]:
    """The summary computed row by row with the scalar shape_row and style_leak.detect."""
    groups: dict[tuple, dict] = {}
    for r in rows:
        g = groups.setdefault(tuple(r[k] or "" for k in KEYS), {"rows": 0, "ok": []})
        g["rows"] += 1
        if r["status"] == "ok":
            f = shape.shape_row(r["instruction"], r["output"], r["finish_reason"], r["num_output_tokens"],
                                output_token_ids=r["output_token_ids"])
            g["ok"].append(f | {"style": style_leak.detect(r["output"] or "")})
    return groups


def _check_against_oracle(metrics: pa.Table, rows: list[dict], style: bool) -> None:
    got = {(tuple(r[k] for k in KEYS), r["metric"]): r for r in metrics.to_pylist()}
    oracle = _oracle(rows)
    names = METRIC_ORDER + (STYLE_METRICS if style else ())
    assert len(got) == len(oracle) * len(names)
    for gk, g in oracle.items():
        ok = g["ok"]
        for metric, col in {"eos_rate": "eos", "echo_rate": "echo", "role_tag_rate": "role_tag", "refusal_rate": "refusal"}.items():
            r = got[(gk, metric)]
            assert (r["n"], json.loads(r["details"])["k"]) == (len(ok), sum(f[col] for f in ok)), (gk, metric)
        for metric, col in {"mean_output_tokens": "output_tokens", "distinct_2": "distinct_2"}.items():
            vals = [f[col] for f in ok if f[col] is not None]
            r = got[(gk, metric)]
            assert r["n"] == len(vals), (gk, metric)
            assert r["value"] == (pytest.approx(statistics.fmean(vals), rel=1e-12) if vals else None)
            if len(vals) > 1:
                assert json.loads(r["details"])["std"] == pytest.approx(statistics.stdev(vals), rel=1e-9)
        r = got[(gk, "error_rate")]
        assert (r["n"], json.loads(r["details"])["k"]) == (g["rows"], g["rows"] - len(ok))
        for label in style_leak.LABELS if style else ():
            r = got[(gk, f"style_leak_{label}")]
            assert (r["n"], json.loads(r["details"])["k"]) == (len(ok), sum(label in f["style"] for f in ok))


def _with_stored(rows: list[dict]) -> list[dict]:
    return stored.commit_columns([dict(r) for r in rows])


ROWS = _mixed_rows()


@pytest.mark.parametrize("style", [False, True], ids=["shape", "style"])
def test_scored_on_read_equals_oracle(style):
    _check_against_oracle(summarize(from_rows(ROWS, "samples"), "r1", style=style), ROWS, style)


@pytest.mark.parametrize("style", [False, True], ids=["shape", "style"])
def test_stored_columns_equal_oracle_and_scored_path(style):
    with_cols = from_rows(_with_stored(ROWS), "samples")
    fast = summarize(with_cols, "r1", style=style)
    _check_against_oracle(fast, ROWS, style)
    assert fast.equals(summarize(from_rows(ROWS, "samples"), "r1", style=style))


def test_commit_columns_equal_shape_row_per_row():
    for r in _with_stored(ROWS):
        want = shape.shape_row(r["instruction"], r["output"])
        got = {c: r[name] for name, c in stored.SHAPE_COLUMNS.items()}
        assert got == {c: want[c] for c in got}, r["key"]
        assert r["style_labels"] == sorted(style_leak.detect(r["output"] or ""))
        assert r["row_metrics_version"] == stored.ROW_METRICS_VERSION


@pytest.mark.parametrize("every", [1, 5], ids=["most-rows", "few-rows"])  # scored whole / filtered first
def test_stale_or_missing_stored_columns_are_rescored(every):
    rows = _with_stored(ROWS)
    for i, r in enumerate(rows):  # wrong values under an old version, and rows without columns
        if i % (2 * every) == 0:
            r |= {"row_metrics_version": stored.ROW_METRICS_VERSION - 1, "shape_echo": not r["shape_echo"],
                  "shape_distinct_2": 0.0, "style_labels": ["chess"]}
        elif i % (2 * every) == 1:
            r |= {"row_metrics_version": None, "shape_echo": None, "style_labels": None}
    _check_against_oracle(summarize(from_rows(rows, "samples"), "r1", style=True), ROWS, style=True)


def test_style_rows_equal_leak_rates():
    samples = from_rows(_with_stored(ROWS), "samples")
    got = {(r["task"], r["model"], r["variant"], r["metric"]): r for r in summarize(samples, "r1", style=True).to_pylist()}
    for label in style_leak.LABELS:
        for want in style_leak.leak_rates(samples, label).to_pylist():
            r = got[(want["task"], want["model"], want["variant"], want["metric"])]
            assert {k: r[k] for k in ("value", "n", "ci_low", "ci_high", "details")} == \
                   {k: want[k] for k in ("value", "n", "ci_low", "ci_high", "details")}


@pytest.mark.parametrize("batch", [1, 7, 50])
def test_merged_batches_and_threads_equal_one_batch(batch):
    samples = from_rows(ROWS, "samples")
    whole = summarize(samples, "r1", workers=1)
    readers = [stored.table_reader(samples.slice(i, batch)) for i in range(0, samples.num_rows, batch)]
    merged = summarize_batches(readers, "r1", workers=2)
    assert merged.drop_columns(["value", "ci_low", "ci_high", "details"]).equals(
        whole.drop_columns(["value", "ci_low", "ci_high", "details"]))
    for a, b in zip(merged.to_pylist(), whole.to_pylist()):
        for f in ("value", "ci_low", "ci_high"):
            assert a[f] == (None if b[f] is None else pytest.approx(b[f], rel=1e-12))
    _check_against_oracle(merged, ROWS, style=False)


def test_streaming_a_store_equals_the_in_memory_summary(tmp_path):
    store = Store(tmp_path)
    rows = _mixed_rows(300, seed=1)
    store.write_samples("r1", 0, rows[:100])  # written before commit-time scoring
    store.write_samples("r1", 1, _with_stored(rows[100:200]))
    # a file with small row groups: streamed one group at a time
    big = conform(from_rows(_with_stored(rows[200:]), "samples"), "samples").drop_columns(["run_id"])
    pq.write_table(big, store.table_dir("samples", "r1") / "part-000002.parquet", row_group_size=16)
    in_memory = summarize(read_table(tmp_path, "samples", "r1"), "r1", style=True)
    streamed = summarize_store(tmp_path, "r1", style=True)
    assert streamed.drop_columns(["value", "ci_low", "ci_high", "details"]).equals(
        in_memory.drop_columns(["value", "ci_low", "ci_high", "details"]))
    for a, b in zip(streamed.to_pylist(), in_memory.to_pylist()):
        assert a["value"] == (None if b["value"] is None else pytest.approx(b["value"], rel=1e-12))
    _check_against_oracle(streamed, rows, style=True)


def test_streaming_reads_no_text_when_columns_are_stored(tmp_path, monkeypatch):
    store = Store(tmp_path)
    store.write_samples("r1", 0, _with_stored(ROWS))
    calls = []
    real = pq.ParquetFile.read_row_group
    monkeypatch.setattr(pq.ParquetFile, "read_row_group",
                        lambda self, i, columns=None, **kw: calls.append(tuple(columns)) or real(self, i, columns=columns, **kw))
    summarize_store(tmp_path, "r1", style=True, workers=1)
    assert calls and not any({"output", "instruction"} & set(c) for c in calls)


def test_store_without_run_gives_empty_metrics(tmp_path):
    assert summarize_store(tmp_path, "nope").num_rows == 0


def test_streaming_refuses_a_file_from_a_newer_schema(tmp_path):
    from harness.errors import HarnessError

    path = Store(tmp_path).write_samples("r1", 0, ROWS[:3])
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({"harness.schema_version": "99"}), path)
    with pytest.raises(HarnessError, match=r"part-000000(-[0-9a-f]+)?\.parquet: written under a newer schema"):
        summarize_store(tmp_path, "r1")


def test_per_sample_providers_read_stored_columns_and_equal_the_scorers():
    rows = _with_stored(ROWS)
    for i, r in enumerate(rows):  # a third stale, a third without columns
        if i % 3 == 0:
            r |= {"row_metrics_version": stored.ROW_METRICS_VERSION - 1, "shape_echo": not r["shape_echo"],
                  "style_labels": ["chess"]}
        elif i % 3 == 1:
            r |= {"row_metrics_version": None, "shape_echo": None, "style_labels": None}
    table = from_rows(rows, "samples")
    assert stored.shape_flags(table).to_pylist() == shape.shape_table(from_rows(ROWS, "samples")).to_pylist()
    got = stored.style_leak_flags(table).to_pylist()
    for r, g in zip(ROWS, got):
        found = style_leak.detect(r["output"] or "")
        assert g == {f"style_leak_{d}": d in found for d in style_leak.LABELS}, r["key"]
    # a current stored value is what the providers return, without looking at the text
    fake = from_rows([rows[2] | {"output": "plain text", "shape_role_tag": True, "style_labels": ["recipe"]}], "samples")
    assert stored.shape_flags(fake).column("role_tag").to_pylist() == [True]
    assert stored.style_leak_flags(fake).column("style_leak_recipe").to_pylist() == [True]
