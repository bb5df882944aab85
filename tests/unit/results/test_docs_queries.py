"""Every SQL example in docs/results-tables.md runs against a fixture store."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import harness.results
from harness.store import Store
from harness.store.schema import from_rows

DOC = Path(__file__).resolve().parents[3] / "docs" / "results-tables.md"
QUERIES = re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S) if DOC.is_file() else []


@pytest.fixture
def sweep_store(store_root):
    store = Store(store_root)
    for step, eos in ((200, 0.9), (100, 0.5)):
        rid = f"sweep-{step}"
        store.write_samples(rid, 0, [{"run_id": rid, "key": f"k{step}", "task": "mini", "sample_id": "0",
                                      "variant": "rules", "model": "ckpt", "output": "x", "finish_reason": "eos",
                                      "num_output_tokens": 1, "status": "ok"}])
        store.write_metrics(rid, from_rows([{"run_id": rid, "task": "mini", "variant": "rules", "metric": "eos_rate",
                                             "value": eos, "n": 10}], "metrics"))
        store.write_run(rid, {"model": "ckpt", "status": "finished",
                              "config_json": json.dumps({"model": f"ckpts/global_step{step}"})})
    return store_root


def test_the_doc_has_the_queries_users_need():
    assert len(QUERIES) >= 8


@pytest.mark.parametrize("sql", QUERIES, ids=[f"q{i}" for i in range(len(QUERIES))])
def test_doc_query_runs(sweep_store, sql):
    out = harness.results.open(sweep_store).sql(sql)
    assert out.num_rows > 0


def test_sweep_query_orders_by_step(sweep_store):
    sql = next(q for q in QUERIES if "global_step" in q)
    rows = harness.results.open(sweep_store).sql(sql).to_pylist()
    assert [(r["step"], r["eos_rate"]) for r in rows] == [(100, 0.5), (200, 0.9)]
