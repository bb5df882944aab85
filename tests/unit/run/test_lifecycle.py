"""RunLifecycle, extend_run, RowFinisher and BackendSpec: the run lifecycle without Ray or a model."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.records import DecodingParams, PromptItem
from harness.rows import RowFinisher, engine_row, placed
from harness.run.lifecycle import RunIdentity, RunLifecycle, extend_run
from harness.store import RunLock, Store, read_table

IDENTITY = RunIdentity(model="m", model_fingerprint="fp", tasks=["t"], variants=["none"], config_hash="h",
                       config={"verb": "test"})


def _row(key: str, sample_id: str = "0") -> dict:
    return {"run_id": "r", "key": key, "task": "t", "sample_id": sample_id, "variant": "none", "model": "m",
            "output": "a b c", "output_token_ids": [1, 2, 3], "num_output_tokens": 3, "finish_reason": "length",
            "status": "ok"}


class FakeBackend:
    """What RunLifecycle.start needs of a backend: start() -> tables, timings, close()."""

    def __init__(self, fail_start: bool = False):
        self.fail_start = fail_start
        self.timings = {"load_seconds": 1.5}
        self.closed = False

    def start(self):
        if self.fail_start:
            raise HarnessError("model m: cannot load")
        return {"rules": {"eos": 1}}

    def close(self):
        self.closed = True


@pytest.fixture
def fake_backend(monkeypatch):
    made = []

    def open_backend(spec, progress=True):
        made.append(FakeBackend(fail_start=spec == "fail"))
        return made[-1]

    monkeypatch.setattr("harness.distributed.executor.open_backend", open_backend)
    return made


def test_commits_each_key_once_across_writers_and_finishes(tmp_path, fake_backend):
    with RunLifecycle(tmp_path, "r", IDENTITY) as life:
        life.start("spec", progress=False)
        assert Store(tmp_path).read_manifest("r")["status"] == "running"
        assert life.commit_samples(0, [_row("k0"), _row("k1", "1")]) == 2
        assert life.commit_samples(1, [_row("k1", "1"), _row("k2", "2")]) == 1  # k1 is already committed
        life.finish()
    assert fake_backend[0].closed
    manifest = Store(tmp_path).read_manifest("r")
    assert manifest["status"] == "finished" and manifest["num_samples"] == 3
    assert manifest["expert_json"] == {"rules": {"eos": 1}} and manifest["timings_json"]["load_seconds"] == 1.5
    created = manifest["created_at"]
    with RunLifecycle(tmp_path, "r", IDENTITY) as again:  # a second writer (resume) sees the committed keys
        assert again.previous == 3 and again.commit_samples(2, [_row("k2", "2")]) == 0
        again.finish()
    assert Store(tmp_path).read_manifest("r")["created_at"] == created  # a resumed run keeps its creation time
    assert sorted(read_table(tmp_path, "samples", "r").column("key").to_pylist()) == ["k0", "k1", "k2"]


def test_failure_after_start_marks_the_run_failed_and_releases(tmp_path, fake_backend):
    with pytest.raises(RuntimeError, match="boom"):
        with RunLifecycle(tmp_path, "r", IDENTITY) as life:
            life.start("spec", progress=False)
            life.commit_samples(0, [_row("k0")])
            raise RuntimeError("boom")
    manifest = Store(tmp_path).read_manifest("r")
    assert manifest["status"] == "failed" and manifest["num_samples"] == 1
    assert fake_backend[0].closed
    with RunLock(tmp_path, "r"):  # the writer lock was released
        pass


def test_a_model_that_cannot_load_leaves_no_store_behind(tmp_path, fake_backend):
    store = tmp_path / "new-store"
    with pytest.raises(HarnessError, match="cannot load"):
        with RunLifecycle(store, "r", IDENTITY) as life:
            life.start("fail", progress=False)
    assert not store.exists()


def test_an_existing_store_is_kept_when_a_run_fails_early(tmp_path, fake_backend):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(HarnessError):
        with RunLifecycle(tmp_path, "r", IDENTITY) as life:
            life.start("fail", progress=False)
    assert (tmp_path / "keep.txt").exists() and Store(tmp_path).read_manifest("r") is None


def test_one_writer_per_run(tmp_path):
    with RunLock(tmp_path, "r"):
        with pytest.raises(HarnessError, match="run 'r' is being written by pid"):
            with RunLifecycle(tmp_path, "r", IDENTITY):
                pass


def test_bad_run_id_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(HarnessError, match="run id"):
        RunLifecycle(tmp_path / "s", "../escape", IDENTITY)
    assert not (tmp_path / "s").exists()


def test_extend_run_merges_metrics_and_names_missing_runs(tmp_path):
    with RunLifecycle(tmp_path, "r", IDENTITY) as life:
        life.started()
        life.commit_samples(0, [_row("k0")])
        life.merge_metrics([{"run_id": "r", "task": "t", "variant": "none", "metric": "eos_rate", "value": 0.0}])
        life.finish()
    judge = {"run_id": "r", "task": "t", "variant": "rules", "reference": "none", "metric": "judge_win_rate",
             "details": '{"judge": "length"}'}
    extend_run(tmp_path, "r").merge_metrics([judge | {"value": 0.5, "sample_id": "0"},
                                             judge | {"value": 0.7, "sample_id": "1"}])
    # a coarser identity replaces the whole group: the re-run judged one prompt, no stale per-prompt row survives
    group = lambda r: (r["metric"], r.get("variant")) if r["metric"] == "judge_win_rate" else (r["metric"],)  # noqa: E731
    extend_run(tmp_path, "r").merge_metrics([judge | {"value": 0.9, "sample_id": "0"}], identity=group)
    rows = read_table(tmp_path, "metrics", "r").to_pylist()
    assert sorted((r["metric"], r["value"]) for r in rows) == [("eos_rate", 0.0), ("judge_win_rate", 0.9)]
    with pytest.raises(HarnessError, match="run 'q': not in store"):
        extend_run(tmp_path, "q")


class Tok:
    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(96 + i) for i in ids)


def test_one_row_builder_engine_then_run():
    from harness.experts.variants import parse_variants

    e = {"item": PromptItem("t", "1", "0", "Say hi.", domain="poetry"), "text": "<|user|>\nSay hi.\n", "ids": [1, 2]}
    decoding = DecodingParams(max_new_tokens=4, until=("c",))
    row = engine_row(e, parse_variants(["none"])[0], [1, 2, 3, 4], tokenizer=Tok(), eos_id=9, model_name="m",
                     seconds=0.1, batch_size=2, engine="vllm", decoding=decoding)
    assert (row["output"], row["finish_reason"], row["engine"], row["max_new_tokens"]) == ("abcd", "length", "vllm", 4)
    row = placed([row], "replica-1", 7)[0]
    finish = RowFinisher("r", key_of=lambda r: f"key-{r['sample_id']}", domains={("t", "0"): "poetry"},
                         truncated={("t", "0"): 5}, tokenizer=lambda: None)
    done = finish(row, decoding)
    assert done["output"] == "ab" and done["finish_reason"] == "stop"  # cut at the stop string "c"
    assert (done["run_id"], done["key"], done["domain"], done["prompt_truncated_tokens"]) == ("r", "key-0", "poetry", 5)
    assert (done["replica"], done["shard_id"]) == ("replica-1", 7)
    lm = finish({"task": "lm_eval:x", "sample_id": "3", "max_new_tokens": 16, "decoding_json": "{}"})
    assert lm["max_new_tokens"] == 16 and lm["key"] == "key-3"  # no decoding given: the row's own columns stay


def test_backend_spec_from_a_run_config():
    from harness.distributed.spec import BackendSpec
    from harness.experts.variants import parse_variants
    from harness.run.config import RunConfig

    cfg = RunConfig.from_sources(None, {"model": "m", "tasks": "instructions-mini", "batch_size": 3, "replicas": "2", "threads": 1, "no_ray": "no",
                                        "max_new_tokens": 12})
    model = type("Model", (), {"path": "/models/m", "name": "m"})()
    spec = BackendSpec.from_run(cfg, model, "tulu", parse_variants(["none"]), engine="vllm")
    assert (spec.batch_size, spec.replicas, spec.threads, spec.no_ray, spec.engine) == (3, "2", 1, False, "vllm")
    assert spec.decoding.max_new_tokens == 12 and spec.worker_kwargs(1, "cpu")["engine"] == "vllm"
