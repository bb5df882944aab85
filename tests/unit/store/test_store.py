"""Store round trip, atomic writes and schema conformance."""

import json

import pyarrow as pa
import pytest

from harness.errors import HarnessError
from harness.store import Store, connect, format_table, read_table, run_query
from harness.store.schema import SAMPLES, conform, from_rows


def _row(i, variant="none"):
    return {"run_id": "r1", "key": f"k{i}{variant}", "task": "mini", "sample_id": str(i), "variant": variant,
            "model": "m", "output": f"out {i}", "output_token_ids": [1, 2, i], "num_output_tokens": 3,
            "finish_reason": "eos", "status": "ok"}


def test_samples_round_trip(tmp_path):
    store = Store(tmp_path)
    rows = [_row(i, v) for i in range(3) for v in ("none", "rules")]
    store.write_samples("r1", 0, rows[:4])
    store.write_samples("r1", 1, rows[4:])
    table = read_table(tmp_path, "samples")
    assert table.schema == SAMPLES
    got = sorted(table.select(["key", "output", "output_token_ids", "run_id"]).to_pylist(), key=lambda r: r["key"])
    want = sorted(({k: r[k] for k in ("key", "output", "output_token_ids", "run_id")} for r in rows), key=lambda r: r["key"])
    assert got == want
    assert store.existing_keys("r1") == {r["key"] for r in rows}


def test_query_sees_tables_and_run_partition(tmp_path):
    store = Store(tmp_path)
    store.write_samples("r1", 0, [_row(i) for i in range(3)])
    store.write_samples("r2", 0, [_row(i) | {"run_id": "r2"} for i in range(2)])
    out = run_query(tmp_path, "select run_id, count(*) n from samples group by run_id order by run_id")
    assert out.to_pylist() == [{"run_id": "r1", "n": 3}, {"run_id": "r2", "n": 2}]
    assert "2 rows" in format_table(out)


def test_no_temp_files_are_read(tmp_path):
    store = Store(tmp_path)
    store.write_samples("r1", 0, [_row(0)])
    (tmp_path / "samples" / "run_id=r1" / ".part-000001.parquet.abc.tmp").write_bytes(b"half-written")
    assert read_table(tmp_path, "samples").num_rows == 1


def test_crash_mid_write_leaves_nothing(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(OSError):
        Store(tmp_path).write_samples("r1", 0, [_row(0)])
    assert list((tmp_path / "samples" / "run_id=r1").iterdir()) == []


def test_manifest_written_with_run_row(tmp_path):
    store = Store(tmp_path)
    store.write_run("r1", {"status": "finished", "model": "m", "config_json": json.dumps({"limit": 2})})
    assert store.read_manifest("r1")["config_json"] == {"limit": 2}
    assert connect(tmp_path).execute("select status from runs").fetchall() == [("finished",)]


def test_conform_upgrades_old_files_and_rejects_unknown_columns():
    old = pa.table({"run_id": ["r"], "key": ["k"], "task": ["t"], "sample_id": ["0"], "variant": ["none"], "model": ["m"]})
    assert conform(old, "samples").column("flip_positions").null_count == 1
    with pytest.raises(ValueError, match="unknown columns"):
        conform(old.append_column("surprise", pa.array([1])), "samples")
    with pytest.raises(ValueError, match="unknown columns"):
        from_rows([{"bogus": 1}], "metrics")


def test_query_errors_are_one_line(tmp_path):
    with pytest.raises(HarnessError, match="no results store"):
        run_query(tmp_path / "missing", "select 1")
    with pytest.raises(HarnessError, match="query: .*") as err:
        run_query(tmp_path, "selec 1")
    assert "\n" not in str(err.value)
