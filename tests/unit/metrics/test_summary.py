"""summarize(): metrics rows per (task, model, variant); format_summary(): the end-of-run table."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pytest

from harness.metrics import shape
from harness.metrics.stats import t_mean_ci, wilson_ci
from harness.metrics.summary import METRIC_ORDER, format_summary, summarize
from harness.store.schema import METRICS, from_rows


def _sample(i: int, variant: str, instruction: str, output: str | None, finish: str | None, tokens: int | None,
            status: str = "ok", task: str = "mini") -> dict:
    return {
        "run_id": "r1", "key": f"k{i}", "task": task, "sample_id": str(i), "variant": variant, "model": "tiny",
        "instruction": instruction, "output": output, "num_output_tokens": tokens, "finish_reason": finish,
        "status": status, "error": None if status == "ok" else "RuntimeError: boom",
    }


ROWS = [
    _sample(0, "none", "Write a poem about the sea and the moon.", "Write a poem about the sea and the moon. <|user|>", "length", 256),
    _sample(1, "none", "What is the capital of France?", "What is the capital of France? <|user|> What", "length", 256),
    _sample(2, "none", "Say something kind.", "You are wonderful and kind.", "eos", 7),
    _sample(3, "none", "Tell me a secret.", None, "error", None, status="error"),
    _sample(4, "rules", "Write a poem about the sea and the moon.", "The sea is calm under the moon.", "eos", 9),
    _sample(5, "rules", "What is the capital of France?", "Paris.", "eos", 2),
    _sample(6, "rules", "Say something kind.", "I'm sorry, but I can't.", "eos", 8),
    _sample(7, "rules", "Tell me a secret.", "Secrets are secrets secrets are secrets.", "eos", 9),
]
SAMPLES = from_rows(ROWS, "samples")


def _by(metrics: pa.Table) -> dict[tuple[str, str], dict]:
    return {(r["variant"], r["metric"]): r for r in metrics.to_pylist()}


def test_schema_and_row_set():
    m = summarize(SAMPLES, "r1")
    assert m.schema.equals(METRICS, check_metadata=False)
    assert [r["metric"] for r in m.to_pylist()] == list(METRIC_ORDER) * 2
    assert set(m.column("run_id").to_pylist()) == {"r1"}


@pytest.mark.parametrize(
    ("variant", "metric", "k", "n"),
    [
        ("none", "eos_rate", 1, 3),
        ("none", "echo_rate", 2, 3),
        ("none", "role_tag_rate", 2, 3),
        ("none", "refusal_rate", 0, 3),
        ("none", "error_rate", 1, 4),
        ("rules", "eos_rate", 4, 4),
        ("rules", "echo_rate", 0, 4),
        ("rules", "refusal_rate", 1, 4),
        ("rules", "error_rate", 0, 4),
    ],
    ids=lambda v: str(v),
)
def test_rates_with_wilson_intervals(variant, metric, k, n):
    row = _by(summarize(SAMPLES, "r1"))[(variant, metric)]
    lo, hi = wilson_ci(k, n)
    assert (row["value"], row["n"], row["ci_low"], row["ci_high"]) == (pytest.approx(k / n), n, pytest.approx(lo), pytest.approx(hi))
    assert json.loads(row["details"])["k"] == k


def test_means_with_t_intervals_and_only_ok_rows():
    by = _by(summarize(SAMPLES, "r1"))
    tokens = by[("none", "mean_output_tokens")]
    assert tokens["n"] == 3 and tokens["value"] == pytest.approx((256 + 256 + 7) / 3)
    std = json.loads(tokens["details"])["std"]
    lo, hi = t_mean_ci(3, tokens["value"], std)
    assert lo < 0 and (tokens["ci_low"], tokens["ci_high"]) == pytest.approx((0.0, hi))  # cut to the support: no count < 0
    d2 = by[("rules", "distinct_2")]
    outputs = [r["output"] for r in ROWS if r["variant"] == "rules"]
    defined = [v for v in (shape.distinct_n(o, 2) for o in outputs) if v is not None]
    assert d2["n"] == len(defined) == 3  # "Paris." has one token: undefined, not 0
    assert d2["value"] == pytest.approx(sum(defined) / len(defined))
    assert json.loads(d2["details"])["undefined"] == 1


def test_group_with_only_errors_has_null_values():
    rows = ROWS + [_sample(9, "none", "x", None, "error", None, status="error", task="broken")]
    by = {(r["task"], r["metric"]): r for r in summarize(from_rows(rows, "samples"), "r1").to_pylist()}
    assert by[("broken", "eos_rate")]["value"] is None and by[("broken", "eos_rate")]["n"] == 0
    assert by[("broken", "mean_output_tokens")]["ci_low"] is None
    assert by[("broken", "error_rate")]["value"] == 1.0


def test_null_status_counts_as_error():
    rows = [dict(ROWS[2], status=None)]
    by = _by(summarize(from_rows(rows, "samples"), "r1"))
    assert by[("none", "eos_rate")]["n"] == 0 and by[("none", "error_rate")]["value"] == 1.0


def test_empty_samples_give_empty_metrics():
    m = summarize(from_rows([], "samples"), "r1")
    assert m.num_rows == 0 and m.schema.equals(METRICS, check_metadata=False)


def test_no_nan_leaks_into_table():
    for r in summarize(SAMPLES, "r1").to_pylist():
        for f in ("value", "ci_low", "ci_high"):
            assert r[f] is None or not math.isnan(r[f])


def test_format_summary_is_aligned_and_complete():
    text = format_summary(summarize(SAMPLES, "r1"))
    lines = text.splitlines()
    assert lines[0].split() == ["task", "model", "variant", "n", "errors", "eos", "mean_tokens", "echo", "role_tag", "distinct_2", "refusal"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert len(lines) == 4
    none_cells = lines[2].split()
    assert none_cells[:5] == ["mini", "tiny", "none", "3", "1"]
    assert none_cells[5] == "0.333" and none_cells[6] == "173.0"
    # right-aligned numeric columns end at the same offset as their header
    assert lines[2].index("173.0") + len("173.0") == lines[0].index("mean_tokens") + len("mean_tokens")


def test_format_summary_missing_metrics_show_dash():
    only_eos = from_rows([{"run_id": "r", "task": "t", "model": "m", "variant": "v", "metric": "eos_rate", "value": 1.0, "n": 2}], "metrics")
    cells = format_summary(only_eos).splitlines()[2].split()
    assert cells == ["t", "m", "v", "2", "-", "1.000", "-", "-", "-", "-", "-"]


def test_format_summary_empty():
    assert format_summary(from_rows([], "metrics")) == "(no metrics)"
