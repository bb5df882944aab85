"""Exactly-once file names, key-deduped reads, the writer lock, metrics merged by key, corrupt files."""

from __future__ import annotations

import json
import subprocess

import pyarrow as pa
import pytest

from harness.errors import HarnessError
from harness.store import Store, read_table, run_query
from harness.store.lock import RunLock
from harness.store.schema import from_rows


def _row(key, run="r1", output="o"):
    return {"run_id": run, "key": key, "task": "mini", "sample_id": key, "variant": "none", "model": "m",
            "output": output}


def test_shard_files_are_named_by_their_keys_so_a_replanned_shard_cannot_replace_one(tmp_path):
    store = Store(tmp_path)
    first = store.write_samples("r1", 2, [_row("a"), _row("b")])
    again = store.write_samples("r1", 2, [_row("b"), _row("a")])  # the same rows again: the same file
    replanned = store.write_samples("r1", 2, [_row("c")])  # a resume's shard 2: other rows, another file
    assert first == again != replanned
    assert len(store.committed_shards("r1")) == 2
    assert sorted(read_table(tmp_path, "samples").column("key").to_pylist()) == ["a", "b", "c"]


def test_two_files_holding_one_key_read_once(tmp_path, caplog):
    store = Store(tmp_path)
    store.write_samples("r1", 0, [_row("a", output="first"), _row("b")])
    store.write_samples("r1", 1, [_row("a", output="second")])
    store.write_samples("r2", 0, [_row("a", run="r2")])  # the same key in another run is another row
    t = read_table(tmp_path, "samples")
    assert sorted(zip(t.column("run_id").to_pylist(), t.column("key").to_pylist())) == [("r1", "a"), ("r1", "b"), ("r2", "a")]
    assert "1 rows repeat a key" in caplog.text
    assert run_query(tmp_path, "select count(*) as n from samples where run_id = 'r1'").to_pylist() == [{"n": 2}]


def test_a_second_writer_is_refused_naming_pid_host_and_start(tmp_path):
    with RunLock(tmp_path, "r1"):
        with pytest.raises(HarnessError, match=r"run 'r1' is being written by pid \d+ on host \S+ since 20\d\d-"):
            RunLock(tmp_path, "r1").acquire()
        RunLock(tmp_path, "r2").acquire().release()  # other runs are not blocked
    RunLock(tmp_path, "r1").acquire().release()  # released


def test_a_dead_holder_is_taken_over_with_a_warning(tmp_path, caplog):
    import socket

    proc = subprocess.Popen(["true"])
    proc.wait()  # a pid that is now dead
    lock = RunLock(tmp_path, "r1")
    lock.dir.mkdir(parents=True)
    lock.holder_path.write_text(json.dumps({"pid": proc.pid, "host": socket.gethostname(), "started_at": "then"}))
    with lock:
        assert lock.holder()["pid"] != proc.pid
    assert f"taking over the writer lock of pid {proc.pid}" in caplog.text and "now dead" in caplog.text


def test_merge_metrics_replaces_by_key_and_keeps_everything_else(tmp_path):
    store = Store(tmp_path)
    judge = {"run_id": "r1", "task": "t", "variant": "rules", "metric": "judge_win_rate", "value": 0.7,
             "reference": "none", "details": '{"judge": "length"}'}
    lm = {"run_id": "r1", "task": "lm_eval:x", "variant": "none", "metric": "acc", "value": 0.5, "filter": "none",
          "details": '{"source": "lm-eval"}'}
    eos = {"run_id": "r1", "task": "t", "variant": "rules", "metric": "eos_rate", "value": 0.1}
    store.merge_metrics("r1", from_rows([judge, lm, eos], "metrics"))
    store.merge_metrics("r1", from_rows([eos | {"value": 0.9}, lm | {"filter": "strict-match", "value": 0.2}], "metrics"))
    got = sorted((r["metric"], r["filter"] or "", r["value"]) for r in read_table(tmp_path, "metrics", "r1").to_pylist())
    assert got == [("acc", "none", 0.5), ("acc", "strict-match", 0.2), ("eos_rate", "", 0.9), ("judge_win_rate", "", 0.7)]


@pytest.mark.parametrize("text", ["{not json", '["a list"]', '{"config_json": "a string"}', "\xff\xfe"])
def test_a_corrupt_manifest_is_one_line_naming_the_file_and_the_repair(tmp_path, text):
    path = tmp_path / "manifests" / "r1.json"
    path.parent.mkdir()
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(HarnessError) as exc:
        Store(tmp_path).read_manifest("r1")
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg and "corrupt manifest" in msg and "--run-id r1" in msg


def test_a_corrupt_parquet_file_fails_its_run_and_is_skipped_for_the_others(tmp_path, caplog):
    store = Store(tmp_path)
    store.write_samples("good", 0, [_row("a", run="good")])
    store.write_samples("bad", 0, [_row("b", run="bad")])
    bad = store.committed_shards("bad")[0]
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(HarnessError) as exc:
        read_table(tmp_path, "samples", "bad")
    msg = str(exc.value)
    assert "\n" not in msg and str(bad) in msg and "unreadable Parquet file" in msg and "harness resume bad" in msg
    with pytest.raises(HarnessError, match="unreadable Parquet file"):
        store.existing_keys("bad")
    assert run_query(tmp_path, "select run_id, key from samples").to_pylist() == [{"run_id": "good", "key": "a"}]
    assert str(bad) in caplog.text


def test_run_ids_that_are_paths_never_reach_the_file_system(tmp_path):
    store = Store(tmp_path)
    for rid in ("../x", "a/b", "/abs", ".hidden", "x=y", ""):
        with pytest.raises(HarnessError, match="not a valid name"):
            store.write_samples(rid, 0, [_row("a", run="r")])
        with pytest.raises(HarnessError, match="not a valid name"):
            store.write_run(rid, {"status": "running"})
        with pytest.raises(HarnessError, match="not a valid name"):
            RunLock(tmp_path, rid)
    assert list(tmp_path.iterdir()) == []


def test_empty_metric_merge_into_a_new_run(tmp_path):
    path = Store(tmp_path).merge_metrics("r1", from_rows([], "metrics"))
    assert path.exists() and read_table(tmp_path, "metrics", "r1").num_rows == 0
    assert isinstance(read_table(tmp_path, "metrics"), pa.Table)
