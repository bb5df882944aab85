"""Schema versions: old files read conformed, newer ones are refused; concurrent writers."""

from __future__ import annotations

import multiprocessing as mp
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import harness.results
from harness.errors import HarnessError
from harness.store import SCHEMA_VERSION, Store, read_table
from harness.store.schema import METRICS, SAMPLES, file_version, upgrade


def _write_raw(root: Path, table: str, run_id: str, data: pa.Table, version: str) -> None:
    meta = {b"harness.table": table.encode(), b"harness.schema_version": version.encode()}
    d = root / table / f"run_id={run_id}"
    d.mkdir(parents=True)
    pq.write_table(data.replace_schema_metadata(meta), d / "part-000000.parquet")


def test_current_files_are_stamped_with_the_schema_version(tmp_path):
    path = Store(tmp_path).write_samples("r", 0, [{"run_id": "r", "key": "k", "task": "t", "sample_id": "0",
                                                   "variant": "none", "model": "m"}])
    assert SCHEMA_VERSION == 3
    assert file_version(pq.read_schema(path)) == SCHEMA_VERSION


def test_v1_samples_with_an_older_column_set_read_conformed(tmp_path):
    # a v1-era samples file without the trace columns (and without run_id: it is the partition)
    old = pa.table({"key": ["k0", "k1"], "task": ["mini", "mini"], "sample_id": ["0", "1"],
                    "variant": ["none", "rules"], "model": ["m", "m"], "output": ["a", "b"],
                    "num_output_tokens": pa.array([3, 4], pa.int64()), "finish_reason": ["length", "eos"]})
    _write_raw(tmp_path, "samples", "old", old, "1")
    got = read_table(tmp_path, "samples", "old")
    assert got.schema == SAMPLES
    assert got.column("num_output_tokens").type == pa.int32()
    assert got.column("flip_positions").null_count == 2
    assert got.column("run_id").to_pylist() == ["old", "old"]
    res = harness.results.open(tmp_path)
    assert res.samples(run="old", variant="rules").column("output").to_pylist() == ["b"]
    assert res.sql("select count(*) as n from samples where flip_positions is null").to_pylist() == [{"n": 2}]


def test_v1_metrics_gain_a_null_sample_id(tmp_path):
    old = pa.table({"task": ["mini"], "variant": ["none"], "metric": ["eos_rate"], "value": [0.5], "n": [4]})
    _write_raw(tmp_path, "metrics", "old", old, "1")
    got = harness.results.open(tmp_path).metrics(run="old")
    assert got.schema == METRICS
    assert got.to_pylist()[0]["sample_id"] is None and got.to_pylist()[0]["value"] == 0.5


def test_unstamped_files_count_as_version_1():
    assert file_version(pa.schema([pa.field("x", pa.int32())])) == 1


def test_files_from_a_newer_harness_are_refused(tmp_path, caplog):
    old = pa.table({"task": ["mini"], "metric": ["eos_rate"], "value": [0.5]})
    _write_raw(tmp_path, "metrics", "future", old, str(SCHEMA_VERSION + 1))
    with pytest.raises(HarnessError, match="newer than this harness"):
        read_table(tmp_path, "metrics", "future")  # the run in scope: refused
    assert read_table(tmp_path, "metrics").num_rows == 0  # the whole store: skipped, with a warning
    assert "newer than this harness" in caplog.text
    with pytest.raises(ValueError, match="newer"):
        upgrade(old.append_column("run_id", pa.array(["r"])), "metrics", version=SCHEMA_VERSION + 1)


def test_two_processes_write_two_runs_into_one_store(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))  # spawned children import the writer by name
    try:
        from results_writer_proc import write_run

        ctx = mp.get_context("spawn")
        start = ctx.Event()
        shards, per = 25, 40
        procs = [ctx.Process(target=write_run, args=(str(tmp_path), rid, shards, per, start)) for rid in ("ra", "rb")]
        for p in procs:
            p.start()
        start.set()
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0, 0]
    finally:
        sys.path.remove(str(Path(__file__).parent))
    res = harness.results.open(tmp_path)
    for rid in ("ra", "rb"):
        rows = res.samples(run=rid)
        assert rows.num_rows == shards * per
        assert set(rows.column("key").to_pylist()) == {f"{rid}-{s}-{i}" for s in range(shards) for i in range(per)}
        assert set(rows.column("run_id").to_pylist()) == {rid}
        assert Store(tmp_path).read_manifest(rid)["status"] == "finished"
        assert res.metrics(run=rid).column("value").to_pylist() == [float(shards - 1)]
    listing = {r["run_id"]: r["n_samples"] for r in res.runs().to_pylist()}
    assert listing == {"ra": shards * per, "rb": shards * per}
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_v2_metric_names_are_rewritten_to_one_name_per_measure(tmp_path):
    # a v2 store after `--tasks lm_eval:ifeval` plus judge and similarity rows
    rows = [
        ("lm_eval:ifeval", "prompt_level_strict_acc,none", None, 0.5, 16, '{"source": "lm-eval"}'),
        ("lm_eval:ifeval", "inst_level_strict_acc,none", None, 0.6, 16, '{"source": "lm-eval"}'),  # n: prompts (v2 bug)
        ("lm_eval:ifeval", "prompt_level_strict_acc", None, 0.5, 16, None),  # the harness's duplicate
        ("lm_eval:ifeval", "prompt_level_strict_acc_non_echo", None, 0.4, 10, None),
        ("lm_eval:ifeval", "ifeval_echo_rate", None, 0.3, 16, None),
        ("lm_eval:ifeval", "prompt_level_strict_acc,none", "3", 1.0, 1, '{"source": "lm-eval"}'),
        ("lm_eval:ifeval", "ifeval_prompt_level_strict_acc", "3", 1.0, 1, None),  # duplicate per-sample row
        ("mini", "ifeval_prompt_level_loose_acc", "0", 0.0, 1, None),
        ("mini", "judge_pref", "0", 0.5, 1, '{"judge": "length"}'),
        ("mini", "judge_win_rate", None, 0.5, 1, '{"judge": "length"}'),
        ("mini", "similarity_spearman_poetry", None, 0.2, 3, None),
    ]
    old = pa.table({"task": [r[0] for r in rows], "variant": ["none"] * len(rows), "metric": [r[1] for r in rows],
                    "sample_id": [r[2] for r in rows], "value": [r[3] for r in rows], "n": [r[4] for r in rows],
                    "details": [r[5] for r in rows]})
    _write_raw(tmp_path, "metrics", "old", old, "2")
    got = {(r["task"], r["metric"], r["filter"], r["sample_id"]): r for r in read_table(tmp_path, "metrics").to_pylist()}
    assert set(got) == {
        ("lm_eval:ifeval", "prompt_level_strict_acc", "none", None), ("lm_eval:ifeval", "inst_level_strict_acc", "none", None),
        ("lm_eval:ifeval", "prompt_level_strict_acc_non_echo", None, None),
        ("lm_eval:ifeval", "prompt_level_strict_acc", "none", "3"), ("mini", "prompt_level_loose_acc", None, "0"),
        ("mini", "judge_win_rate", None, "0"), ("mini", "judge_win_rate", None, None),
        ("mini", "similarity_spearman", None, None)}
    assert got[("lm_eval:ifeval", "inst_level_strict_acc", "none", None)]["n"] is None  # v2 counted prompts
    assert got[("lm_eval:ifeval", "prompt_level_strict_acc", "none", None)]["n"] == 16
    q = harness.results.open(tmp_path).sql("select metric, filter, count(*) as k from metrics where sample_id is null "
                                           "and task = 'lm_eval:ifeval' group by all")
    assert all(r["k"] == 1 for r in q.to_pylist())


def test_v3_files_written_before_the_rename_are_rewritten_too(tmp_path):
    old = pa.table({"task": ["lm_eval:t", "lm_eval:t"], "variant": ["none", "none"],
                    "metric": ["exact_match,none", "inst_level_strict_acc"], "value": [0.5, 0.4], "n": [4, 9],
                    "filter": [None, "none"]})
    _write_raw(tmp_path, "metrics", "dev", old, "3")
    got = sorted((r["metric"], r["filter"], r["n"]) for r in read_table(tmp_path, "metrics").to_pylist())
    assert got == [("exact_match", "none", 4), ("inst_level_strict_acc", "none", 9)]  # v3-named n kept
