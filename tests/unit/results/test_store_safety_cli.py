"""`harness query` is read-only by default; corrupt files in a store give one line and spare other runs."""

from __future__ import annotations

import hashlib
import logging

import pytest

from harness.cli import main
from harness.store import Store


def _snapshot(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


WRITES = [
    "copy (select 1 as x) to '{out}'",
    "copy samples to '{shard}' (format parquet)",
    "attach '{out}.db' as other",
    "set threads = 1",
    "select 1; select 2",
    "select * from read_csv('/etc/passwd')",
    "select * from read_text('/etc/hostname')",
    "select * from read_parquet('{shard}')",
    "create table t as select 1",
    "insert into samples select * from samples",
    "pragma enable_profiling",
    "install httpfs",
    "export database '{outdir}'",
    "explain analyze copy (select 1) to '{out}'",
]


@pytest.mark.parametrize("sql", WRITES)
def test_query_refuses_writes_files_and_settings(store_root, tmp_path, capsys, sql):
    shard = Store(store_root).committed_shards("r1")[0]
    sql = sql.format(out=tmp_path / "out.csv", shard=shard, outdir=tmp_path / "exported")
    before = _snapshot(store_root)
    assert main(["query", "--store", str(store_root), sql]) == 2
    err = capsys.readouterr().err
    assert err.startswith("harness: query: ") and err.count("\n") == 1, err
    assert _snapshot(store_root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


@pytest.mark.parametrize("sql", ["select count(*) from samples", "with a as (select * from runs) select * from a",
                                 "describe samples", "from metrics limit 1", "show tables", "summarize runs",
                                 "explain select * from samples"])
def test_query_runs_select_like_statements(store_root, capsys, sql):
    assert main(["query", "--store", str(store_root), sql]) == 0, capsys.readouterr().err


def test_allow_writes_runs_copy(store_root, tmp_path, capsys):
    out = tmp_path / "variants.csv"
    sql = f"copy (select distinct variant from samples where run_id = 'r1' order by 1) to '{out}' (header false)"
    assert main(["query", "--store", str(store_root), "--allow-writes", sql]) == 0
    assert out.read_text().split() == ["none", "rules"]


def test_a_corrupt_shard_names_the_file_and_other_runs_keep_working(store_root, capsys, caplog):
    bad = Store(store_root).committed_shards("r2")[0]
    bad.write_bytes(b"garbage")
    caplog.set_level(logging.WARNING)
    assert main(["compare", "r2", "r1", "--variant", "rules", "--store", str(store_root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and "harness resume r2" in err, err
    assert main(["compare", "r1", "--store", str(store_root)]) == 0
    assert main(["runs", "list", "--store", str(store_root)]) == 0
    capsys.readouterr()
    assert main(["query", "--store", str(store_root), "--format", "csv",
                 "select distinct run_id from samples order by 1"]) == 0
    assert capsys.readouterr().out.replace('"', "").split() == ["run_id", "abl", "r1"]
    assert str(bad) in caplog.text


def test_a_corrupt_manifest_on_resume_is_one_line(store_root, capsys):
    (store_root / "manifests" / "r1.json").write_text('{"config_json": {"model": ')
    assert main(["resume", "r1", "--store", str(store_root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "r1.json: corrupt manifest" in err and "--run-id r1" in err, err
