"""`harness run` end to end through a real local Ray cluster on tiny-random-llama."""

import json

import pytest

from harness.cli import main
from harness.store import read_table

RUN = ["run", "--model", "tiny-random-llama", "--tasks", "instructions-mini", "--limit", "3",
       "--max-new-tokens", "8", "--batch-size", "2", "-q"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, ray_cluster, tiny_model_dir):
    store = tmp_path_factory.mktemp("store")
    assert main(RUN + ["--store", str(store)]) == 0
    return store


def test_one_row_per_prompt_and_variant(finished_run):
    samples = read_table(finished_run, "samples")
    pairs = [(r["task"], r["sample_id"], r["variant"]) for r in samples.select(["task", "sample_id", "variant"]).to_pylist()]
    assert len(pairs) == 6 and len(set(pairs)) == 6
    assert {p[2] for p in pairs} == {"none", "rules"}
    assert len(set(samples.column("key").to_pylist())) == 6
    assert set(samples.column("status").to_pylist()) == {"ok"}


def test_metrics_and_manifest_are_written(finished_run):
    metrics = read_table(finished_run, "metrics")
    assert {"eos_rate", "echo_rate", "distinct_2", "mean_output_tokens"} <= set(metrics.column("metric").to_pylist())
    runs = read_table(finished_run, "runs").to_pylist()
    assert len(runs) == 1 and runs[0]["status"] == "finished" and runs[0]["num_samples"] == 6
    experts = json.loads(runs[0]["expert_json"])
    assert experts["rules"]["tokens"][0]["token"] == "<"  # the token-resolution table is recorded


def test_rows_carry_stored_metrics_and_the_run_has_style_leak_rates(finished_run):
    from harness.metrics.stored import ROW_METRICS_VERSION
    from harness.metrics.style_leak import LABELS
    from harness.metrics.summary import summarize

    samples = read_table(finished_run, "samples")
    assert set(samples.column("row_metrics_version").to_pylist()) == {ROW_METRICS_VERSION}
    assert None not in samples.column("style_labels").to_pylist()
    metrics = read_table(finished_run, "metrics")
    style = [r for r in metrics.to_pylist() if r["metric"].startswith("style_leak_")]
    assert {(r["variant"], r["metric"]) for r in style} == {(v, f"style_leak_{d}") for v in ("none", "rules") for d in LABELS}
    assert all(r["n"] == 3 and r["ci_low"] is not None for r in style)
    # the stored columns give the same summary as scoring the text again
    legacy = samples.drop_columns(["row_metrics_version"])
    run_id = samples.column("run_id")[0].as_py()
    assert summarize(legacy, run_id, style=True).equals(summarize(samples, run_id, style=True))


def test_rerun_generates_nothing_new(finished_run, capsys):
    before = read_table(finished_run, "samples").sort_by("key")
    assert main(RUN + ["--store", str(finished_run)]) == 0
    assert "(0 generated now" in capsys.readouterr().out
    after = read_table(finished_run, "samples").sort_by("key")
    assert after.select(["key", "output"]).equals(before.select(["key", "output"]))


def test_query_cli(finished_run, capsys):
    assert main(["query", "--store", str(finished_run), "--format", "json",
                 "select variant, count(*) as n from samples group by variant order by variant"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert lines == [{"variant": "none", "n": 3}, {"variant": "rules", "n": 3}]


def test_no_ray_mode_matches_ray(finished_run, tmp_path):
    assert main(RUN + ["--store", str(tmp_path), "--no-ray"]) == 0
    ray_out = read_table(finished_run, "samples").sort_by("key").select(["key", "output_token_ids"])
    local = read_table(tmp_path, "samples").sort_by("key").select(["key", "output_token_ids"])
    assert local.equals(ray_out)


def test_trace_fills_flip_columns(tmp_path, tiny_model_dir):
    assert main(RUN + ["--store", str(tmp_path), "--no-ray", "--trace"]) == 0
    rows = read_table(tmp_path, "samples").to_pylist()
    for r in rows:
        if r["variant"] == "none":
            assert r["flip_positions"] == []
        else:
            assert r["flip_positions"] is not None and len(r["flip_positions"]) == len(r["flip_rules"])
            assert all(0 <= p < r["num_output_tokens"] for p in r["flip_positions"])
    assert any(r["flip_positions"] for r in rows if r["variant"] == "rules")
