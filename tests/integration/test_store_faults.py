"""Exactly-once under driver kills, one writer per run, derived metrics kept across re-runs."""

from __future__ import annotations

import multiprocessing as mp
import random
import signal
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from harness.run.config import RunConfig
from harness.errors import HarnessError
from harness.run.runner import execute
from harness.store import Store, read_table
from harness.store.lock import RunLock

FLAGS = {"model": "tiny-random-llama", "tasks": "instructions-mini", "limit": 6, "max_new_tokens": 4,
         "batch_size": 1, "no_ray": True, "threads": 1, "run_id": "r",
         "sentinel": 0}  # the sentinel is a property of one execution; this test is about the store
COLUMNS = ["key", "task", "sample_id", "variant", "output", "output_token_ids", "finish_reason", "num_output_tokens"]


def _rows(store) -> list[tuple]:
    t = read_table(store, "samples", "r").select(COLUMNS)
    return sorted(tuple(str(v) for v in r.values()) for r in t.to_pylist())


def _file_keys(store) -> list[str]:
    """Every key in every committed sample file (no read-time dedupe)."""
    return [k for p in Store(store).committed_shards("r") for k in pq.read_table(p, columns=["key"]).column("key").to_pylist()]


def _summary(store) -> list[tuple]:
    m = read_table(store, "metrics", "r")
    return sorted((r["metric"], r["task"] or "", r["variant"] or "", r["sample_id"] or "", repr(r["value"]))
                  for r in m.to_pylist())


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model_dir):
    store = tmp_path_factory.mktemp("reference")
    execute(RunConfig.from_sources(None, FLAGS | {"store": str(store)}), progress=False)
    return store


def test_driver_killed_at_random_commit_points_resume_equals_uninterrupted(reference, tmp_path, harness_home):
    """Many real SIGKILLs at random store writes (after a commit, or halfway through one), shards in a
    random order; resuming until the run finishes gives exactly the uninterrupted table."""
    sys.path.insert(0, str(Path(__file__).parent))
    from kill_helpers import WARM, run_until_killed

    ctx = mp.get_context("forkserver")  # children fork from a server that imported harness once: fast starts
    ctx.set_forkserver_preload(list(WARM))  # (the server ignores sys.path: preload importable modules)
    rng = random.Random(13)
    kills = 0
    for chain in range(3):
        store = tmp_path / f"chain{chain}"
        flags = FLAGS | {"store": str(store)}
        for attempt in range(4):  # three kills, then a run that finishes
            remaining = 6 - len(_file_keys(store)) // 2 if (store / "samples").exists() else 6
            # writes left: runs row, one per remaining shard, metrics, finished runs row (2 when nothing is left)
            kill_at = 0 if attempt == 3 else rng.randint(1, remaining + 3 if remaining else 2)
            child = ctx.Process(target=run_until_killed, args=(flags, kill_at, rng.random() < 0.3, rng.randrange(10**6)))
            t0 = time.perf_counter()
            child.start()
            child.join(300)
            print(f"chain {chain} attempt {attempt}: kill at write {kill_at}, exit {child.exitcode}, "
                  f"{time.perf_counter() - t0:.1f} s")
            assert child.exitcode == (0 if kill_at == 0 else -signal.SIGKILL)
            kills += kill_at > 0
        keys = _file_keys(store)
        assert len(keys) == len(set(keys)) == 12, "every (prompt, variant) row exactly once on disk"
        assert _rows(store) == _rows(reference)
        assert _summary(store) == _summary(reference)
        assert Store(store).read_manifest("r")["status"] == "finished"
        assert not list((store / "samples" / "run_id=r").glob(".*.tmp")), "temporary files of killed writers are cleaned"
    assert kills == 9


def test_second_writer_of_a_run_is_refused_naming_the_holder(tiny_model_dir, tmp_path):
    flags = FLAGS | {"store": str(tmp_path), "limit": 1}
    with RunLock(tmp_path, "r"):
        with pytest.raises(HarnessError, match=r"run 'r' is being written by pid \d+ on host .* since "):
            execute(RunConfig.from_sources(None, flags), progress=False)
    assert not (tmp_path / "samples").exists()
    assert execute(RunConfig.from_sources(None, flags), progress=False).num_rows == 2  # released: runs


def test_rerun_and_resume_keep_judge_similarity_and_lm_eval_rows(tiny_model_dir, tmp_path):
    from harness.judges.winrate import append_metrics

    flags = FLAGS | {"store": str(tmp_path), "limit": 2}
    execute(RunConfig.from_sources(None, flags), progress=False)
    derived = [
        {"run_id": "r", "task": "instructions-mini", "variant": "rules", "metric": "judge_win_rate", "value": 0.75,
         "reference": "none", "details": '{"judge": "length"}'},
        {"run_id": "r", "task": "instructions-mini", "variant": "rules", "metric": "similarity_xy", "value": 0.1,
         "sample_id": "0", "details": '{"encoder": "e"}'},
        {"run_id": "r", "task": "lm_eval:x", "variant": "none", "metric": "acc", "value": 0.5, "filter": "none",
         "details": '{"source": "lm-eval"}'},
    ]
    append_metrics(tmp_path, "r", derived, replace_metrics=("judge_win_rate", "similarity_xy", "acc"))
    execute(RunConfig.from_sources(None, flags), progress=False)  # the same config again
    execute(RunConfig.from_sources(None, flags | {"limit": 3}), progress=False)  # grows the run: summary rows change
    from harness.run.runner import resume

    resume("r", tmp_path, progress=False, no_ray=True)
    after = read_table(tmp_path, "metrics", "r").to_pylist()
    for d in derived:
        assert sum(1 for r in after if r["metric"] == d["metric"] and r["value"] == d["value"]) == 1, d["metric"]
    # summary rows were replaced, not duplicated
    eos = [r for r in after if r["metric"] == "eos_rate" and r["sample_id"] is None]
    assert len(eos) == len({(r["task"], r["variant"]) for r in eos})
    assert {r["n"] for r in eos} == {3}  # 3 prompts now: the summary was recomputed


def test_a_model_that_cannot_load_leaves_no_runs_row_or_manifest(tiny_model_dir, tmp_path, monkeypatch):
    from harness.distributed import executor

    def cannot_load(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(executor, "ModelWorker", cannot_load)
    store = tmp_path / "new"
    with pytest.raises(RuntimeError, match="out of memory"):
        execute(RunConfig.from_sources(None, FLAGS | {"store": str(store)}), progress=False)
    assert not store.exists(), "a new store is removed when nothing but its lock was written"
    kept = tmp_path / "kept"
    kept.mkdir()
    with pytest.raises(RuntimeError, match="out of memory"):
        execute(RunConfig.from_sources(None, FLAGS | {"store": str(kept)}), progress=False)
    assert not (kept / "runs").exists() and not (kept / "manifests").exists() and not (kept / "samples").exists()


def test_a_resumed_run_generates_only_the_missing_pairs(tiny_model_dir, tmp_path, monkeypatch):
    """A prompt with some variants committed regenerates none of them (not even to drop them at commit)."""
    from harness.distributed.executor import Backend

    asked: list[tuple[str, str]] = []
    original = Backend.run

    def counting(self, shards, commit, variants=None, decoding=None):
        asked.extend((i.sample_id, v.name) for s in shards for i in s.items for v in variants)
        return original(self, shards, commit, variants, decoding)

    monkeypatch.setattr(Backend, "run", counting)
    flags = FLAGS | {"store": str(tmp_path), "limit": 2, "variants": "none,rules"}
    execute(RunConfig.from_sources(None, flags), progress=False)
    assert len(asked) == 4
    asked.clear()
    grown = execute(RunConfig.from_sources(None, flags | {"variants": "none,rules,rules:eos-uniform"}), progress=False)
    assert sorted(v for _, v in asked) == ["rules:eos-uniform"] * 2  # none and rules were committed already
    assert grown.generated == 2 and grown.num_rows == 6
