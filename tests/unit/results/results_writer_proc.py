"""Writer process for the concurrency test (imported by spawned children, so top level)."""

from __future__ import annotations


def write_run(root: str, run_id: str, shards: int, rows_per_shard: int, start) -> None:
    """Wait for ``start``, then commit ``shards`` shards, metrics and the run row of ``run_id``."""
    from harness.store import Store
    from harness.store.schema import from_rows

    start.wait(60)
    store = Store(root)
    for s in range(shards):
        rows = [{"run_id": run_id, "key": f"{run_id}-{s}-{i}", "task": "mini", "sample_id": f"{s}-{i}",
                 "variant": "none", "model": "m", "output": f"{run_id} " * (i % 7), "output_token_ids": [s, i],
                 "num_output_tokens": 2, "finish_reason": "eos", "status": "ok"} for i in range(rows_per_shard)]
        store.write_samples(run_id, s, rows)
        store.write_metrics(run_id, from_rows([{"run_id": run_id, "metric": "progress", "value": float(s)}], "metrics"))
    store.write_run(run_id, {"status": "finished", "model": "m", "num_samples": shards * rows_per_shard,
                             "created_at": "2025-01-01T00:00:00+00:00"})
