"""Export formats round-trip to the stored rows."""

from __future__ import annotations

import csv
import io
import json

import pytest

import harness.results
from harness.errors import HarnessError
from harness.results import export_text


def test_alpaca_eval_is_a_json_list_of_four_keys(store_root):
    res = harness.results.open(store_root)
    records = json.loads(export_text(res, "abl", "alpaca-eval", variant="rules"))
    assert len(records) == 12
    assert all(set(r) == {"instruction", "output", "generator", "dataset"} for r in records)
    assert {r["generator"] for r in records} == {"tiny+rules"}
    assert {r["dataset"] for r in records} == {"helpful_base"}  # from the source row's "dataset"
    stored = {(r["instruction"], r["output"]) for r in res.samples(run="abl", variant="rules").to_pylist()}
    assert {(r["instruction"], r["output"]) for r in records} == stored


def test_alpaca_eval_order_and_error_rows(store_root):
    res = harness.results.open(store_root)
    records = json.loads(export_text(res, "r1", "alpaca-eval", variant="none", generator="base"))
    assert [r["output"] for r in records][:2] == ["Write a short poem about the sea. Write a short poem",
                                                  "List three colours of the rainbow and more"]
    assert {r["generator"] for r in records} == {"base"} and {r["dataset"] for r in records} == {"mini"}
    rules = json.loads(export_text(res, "r1", "alpaca-eval", variant="rules"))
    assert len(rules) == 4  # the failed generation of prompt 5 is left out


def test_alpaca_eval_needs_one_variant(store_root):
    with pytest.raises(HarnessError, match="pick one with --variant"):
        export_text(harness.results.open(store_root), "r1", "alpaca-eval")


def test_jsonl_round_trips_every_column(store_root):
    res = harness.results.open(store_root)
    lines = export_text(res, "r1", "jsonl").splitlines()
    got = sorted((json.loads(line) for line in lines), key=lambda r: r["key"])
    want = sorted(res.samples(run="r1").to_pylist(), key=lambda r: r["key"])
    assert got == want


def test_csv_round_trips_scalar_columns(store_root):
    res = harness.results.open(store_root)
    rows = list(csv.DictReader(io.StringIO(export_text(res, "r2", "csv", variant="rules"))))
    assert "output_token_ids" not in rows[0]
    want = sorted(res.samples(run="r2").to_pylist(), key=lambda r: int(r["sample_id"]))
    assert [r["output"] for r in rows] == [w["output"] for w in want]
    assert [int(r["num_output_tokens"]) for r in rows] == [5, 6, 2, 8]
    assert [r["sample_id"] for r in rows] == ["0", "1", "2", "3"]


def test_bad_format(store_root):
    with pytest.raises(HarnessError, match="--format: 'xml'"):
        export_text(harness.results.open(store_root), "r1", "xml")
