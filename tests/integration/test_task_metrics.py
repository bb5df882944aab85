"""IFEval-schema tasks get lm-eval's IFEval numbers in the metrics table, per variant."""

import json

import pytest

from harness.cli import main
from harness.metrics.ifeval import aggregate_ifeval, score_ifeval
from harness.store import read_table


@pytest.fixture(scope="module")
def ifeval_store(tmp_path_factory, tiny_model_dir):
    store = tmp_path_factory.mktemp("ifeval")
    argv = ["run", "--model", "tiny-random-llama", "--tasks", "ifeval-sample", "--limit", "6", "--max-new-tokens", "12",
            "--no-ray", "-q", "--store", str(store)]
    assert main(argv) == 0
    return store


def test_ifeval_numbers_equal_lm_eval_checkers_on_stored_outputs(ifeval_store):
    samples = read_table(ifeval_store, "samples").to_pylist()
    metrics = read_table(ifeval_store, "metrics").to_pylist()
    for variant in ("none", "rules"):
        rows = sorted((r for r in samples if r["variant"] == variant), key=lambda r: r["sample_id"])
        want = aggregate_ifeval(score_ifeval([json.loads(r["doc_json"]) for r in rows], [r["output"] for r in rows]))
        got = {m["metric"]: m["value"] for m in metrics if m["variant"] == variant and m["sample_id"] is None}
        n = {m["metric"]: m["n"] for m in metrics if m["variant"] == variant and m["sample_id"] is None}
        assert n["prompt_level_strict_acc"] == len(rows)  # n counts prompts, then instructions
        assert n["inst_level_strict_acc"] == sum(len(json.loads(r["doc_json"])["instruction_id_list"]) for r in rows)
        for name, value in want.items():
            assert got[name] == pytest.approx(value), name


def test_per_sample_ifeval_rows_pair_in_compare(ifeval_store, capsys):
    per_sample = [m for m in read_table(ifeval_store, "metrics").to_pylist() if m["sample_id"] is not None]
    assert len(per_sample) == 6 * 2 * 4  # prompts x variants x the four measures, under their own names
    assert {m["metric"] for m in per_sample} == {"prompt_level_strict_acc", "prompt_level_loose_acc",
                                                 "inst_level_strict_acc", "inst_level_loose_acc"}
    assert all(m["n"] == 1 for m in per_sample if m["metric"].startswith("prompt_level"))
    assert all(m["filter"] is None for m in per_sample)
    run_id = read_table(ifeval_store, "runs").column("run_id")[0].as_py()
    assert main(["compare", run_id, "--store", str(ifeval_store)]) == 0
    assert "prompt_level_strict_acc" in capsys.readouterr().out
