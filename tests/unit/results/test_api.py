"""harness.results.open(store): runs, samples, metrics, SQL and relations."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

import harness.results
from harness.errors import HarnessError
from harness.store import Store
from harness.store.schema import METRICS, SAMPLES


def test_runs_lists_every_run_with_sample_counts(store_root):
    runs = harness.results.open(store_root).runs()
    assert runs.column("run_id").to_pylist() == ["r1", "r2", "abl"]  # by created_at
    assert runs.column("n_samples").to_pylist() == [11, 4, 60]
    assert runs.to_pylist()[0]["variants"] == ["none", "rules"]


def test_a_run_still_writing_shows_without_provenance(tmp_path):
    Store(tmp_path).write_samples("half", 0, [{"run_id": "half", "key": "k", "task": "t", "sample_id": "0",
                                               "variant": "none", "model": "m"}])
    row = harness.results.open(tmp_path).runs().to_pylist()[0]
    assert (row["run_id"], row["status"], row["n_samples"]) == ("half", None, 1)


def test_samples_filters(store_root):
    res = harness.results.open(store_root)
    assert res.samples().num_rows == 75
    assert res.samples().schema == SAMPLES
    assert res.samples(run="r1").num_rows == 11
    assert res.samples(run=["r1", "r2"], variant="rules").num_rows == 9
    assert res.samples(run="abl", task="alpaca", variant=["none", "rules"]).num_rows == 24
    with pytest.raises(HarnessError, match="no variant 'rulse'.*did you mean 'rules'"):
        res.samples(run="r1", variant="rulse")
    with pytest.raises(HarnessError, match="no task 'mnii'"):
        res.samples(run="r1", task="mnii")


def test_metrics_filters(store_root):
    res = harness.results.open(store_root)
    m = res.metrics(run="r1", metric="eos_rate")
    assert m.schema == METRICS
    assert sorted(m.column("variant").to_pylist()) == ["none", "rules"]
    assert res.metrics(run="r1", metric="nope").num_rows == 0
    assert res.metrics(run="abl", variant="rules", metric="gsm_similarity").num_rows == 12


def test_unknown_run_and_store(store_root, tmp_path):
    res = harness.results.open(store_root)
    with pytest.raises(HarnessError, match="run 'r9': not in store .*runs: abl, r1, r2"):
        res.samples(run="r9")
    with pytest.raises(HarnessError, match="did you mean 'r1'"):
        res.metrics(run="r11")
    with pytest.raises(HarnessError, match="no results store there"):
        harness.results.open(tmp_path / "missing")


def test_sql_and_relation(store_root):
    res = harness.results.open(store_root)
    t = res.sql("select variant, avg(case when finish_reason = 'eos' then 1.0 else 0 end) as eos_rate "
                "from samples where run_id = 'r1' and status = 'ok' and sample_id in ('0','1','2','3') "
                "group by variant order by variant")
    assert isinstance(t, pa.Table)
    assert t.to_pylist() == [{"variant": "none", "eos_rate": 0.25}, {"variant": "rules", "eos_rate": 1.0}]
    rel = res.relation("samples")
    assert isinstance(rel, duckdb.DuckDBPyRelation)
    assert rel.filter("run_id = 'r2'").aggregate("count(*) as n").fetchall() == [(4,)]
    with pytest.raises(HarnessError, match="query: "):
        res.sql("selec 1")
    with pytest.raises(HarnessError, match="query: .*nope"):
        res.sql("select * from nope")
    with pytest.raises(HarnessError, match="unknown table 'sample'.*did you mean 'samples'"):
        res.relation("sample")


def test_refresh_sees_new_runs(store_root):
    res = harness.results.open(store_root)
    assert res.sql("select count(distinct run_id) as n from samples").to_pylist() == [{"n": 3}]
    Store(store_root).write_samples("r4", 0, [{"run_id": "r4", "key": "k", "task": "t", "sample_id": "0",
                                               "variant": "none", "model": "m"}])
    res.refresh()
    assert res.sql("select count(distinct run_id) as n from samples").to_pylist() == [{"n": 4}]
