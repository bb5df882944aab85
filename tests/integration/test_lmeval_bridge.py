"""lm-eval tasks through the harness (``--tasks lm_eval:NAME``), in-process on tiny-random-llama.

User YAMLs in a temporary include dir over local jsonl files: a generate_until task and a
multiple_choice (loglikelihood) task run with ``none`` and ``rules``; an unknown name or a
Hub dataset is a one-line exit 2 with nothing written; IFEval through the bridge (local
data) gives the harness's own IFEval numbers on the same outputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.store import read_table

REPO = Path(__file__).resolve().parents[2]
IFEVAL_SAMPLE = REPO / "tasks" / "data" / "ifeval_sample.jsonl"

GEN_ROWS = [{"q": "What is 2+2?", "a": "4"}, {"q": "Name a colour.", "a": "red"}, {"q": "Capital of France?", "a": "Paris"}]
MC_ROWS = [{"q": "Capital of France?", "choices": ["Paris", "London", "Rome"], "label": 0},
           {"q": "2+2=", "choices": ["3", "4"], "label": 1}]

GEN_YAML = """\
task: my_task
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "Q: {{{{q}}}}\\nA:"
doc_to_target: "{{{{a}}}}"
generation_kwargs:
  until: ["Q:", "\\n\\n"]
  max_gen_toks: 16
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 2.0
"""

MC_YAML = """\
task: my_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{q}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def include_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("lm_tasks")
    (d / "my_task.yaml").write_text(GEN_YAML.format(data=_jsonl(d / "gen.jsonl", GEN_ROWS)))
    (d / "my_mc.yaml").write_text(MC_YAML.format(data=_jsonl(d / "mc.jsonl", MC_ROWS)))
    return d


def _run(store: Path, tasks: str, *extra: str) -> int:
    return main(["run", "--model", "tiny-random-llama", "--tasks", tasks, "--variants", "none,rules", "--no-ray",
                 "--store", str(store), "--max-new-tokens", "8", "--batch-size", "4", "-q", *extra])


@pytest.fixture(scope="module")
def gen_store(tmp_path_factory, include_dir, tiny_model_dir) -> Path:
    store = tmp_path_factory.mktemp("store")
    assert _run(store, "lm_eval:my_task", "--tasks-dir", str(include_dir)) == 0
    return store


def test_generate_until_rows_per_variant(gen_store):
    rows = read_table(gen_store, "samples").to_pylist()
    assert sorted((r["variant"], r["sample_id"]) for r in rows) == [(v, s) for v in ("none", "rules") for s in "012"]
    for r in rows:
        doc = json.loads(r["doc_json"])
        assert r["task"] == "lm_eval:my_task" and r["task_version"] == "2.0" and r["status"] == "ok"
        assert r["instruction"] == f"Q: {doc['q']}\nA:"  # the lm-eval request context is the user message
        assert r["prompt"] == f"<|user|>\n{r['instruction']}\n<|assistant|>\n"  # tulu, applied by the generator
        assert "Q:" not in r["output"] and "\n\n" not in r["output"]  # cut at lm-eval's `until`
        assert r["num_output_tokens"] == len(r["output_token_ids"]) <= 8  # --max-new-tokens caps max_gen_toks 16
        assert r["finish_reason"] in ("eos", "length", "stop")
    assert len({r["key"] for r in rows}) == 6


def test_lm_eval_metric_rows(gen_store):
    metrics = read_table(gen_store, "metrics").to_pylist()
    assert not any("," in m["metric"] for m in metrics)  # lm-eval's filter is a column, never in the name
    agg = [m for m in metrics if m["metric"] == "exact_match" and m["filter"] == "none" and m["sample_id"] is None]
    assert sorted(m["variant"] for m in agg) == ["none", "rules"]
    for m in agg:
        assert m["task"] == "lm_eval:my_task" and m["n"] == 3 and 0.0 <= m["value"] <= 1.0
        details = json.loads(m["details"])
        assert details["source"] == "lm-eval"
        assert m["ci_low"] == pytest.approx(m["value"] - 1.96 * details["stderr"])
        per_sample = [p["value"] for p in metrics if p["metric"] == "exact_match" and p["filter"] == "none"
                      and p["sample_id"] is not None and p["variant"] == m["variant"]]
        assert len(per_sample) == 3 and m["value"] == pytest.approx(sum(per_sample) / 3)
    assert any(m["metric"] == "eos_rate" and m["task"] == "lm_eval:my_task" for m in metrics)  # shape summary too
    run = read_table(gen_store, "runs").to_pylist()[0]
    assert run["status"] == "finished" and run["num_samples"] == 6


def _lm_eval_metric_rows(store: Path) -> list[tuple]:
    rows = read_table(store, "metrics").to_pylist()
    return sorted((r["variant"], r["metric"], r["sample_id"] or "", r["value"]) for r in rows
                  if json.loads(r["details"] or "{}").get("source") == "lm-eval")


def test_rerun_skips_finished_lm_eval_task(gen_store, include_dir, capsys):
    before = _lm_eval_metric_rows(gen_store)
    assert _run(gen_store, "lm_eval:my_task", "--tasks-dir", str(include_dir)) == 0
    assert "(0 generated now" in capsys.readouterr().out
    assert _lm_eval_metric_rows(gen_store) == before  # lm-eval's rows are kept, not recomputed


def test_multiple_choice_task_scores_loglikelihoods(tmp_path, include_dir, tiny_model_dir):
    assert _run(tmp_path, "lm_eval:my_mc", "--tasks-dir", str(include_dir)) == 0
    rows = read_table(tmp_path, "samples").to_pylist()
    assert len(rows) == 4 and {r["variant"] for r in rows} == {"none", "rules"}
    for r in rows:
        doc = json.loads(r["doc_json"])
        assert r["output"] in [" " + c for c in doc["choices"]]  # the highest-likelihood choice
        assert r["instruction"] == doc["q"]
    metrics = read_table(tmp_path, "metrics").to_pylist()
    acc = {m["variant"]: m for m in metrics if m["metric"] == "acc" and m["filter"] == "none" and m["sample_id"] is None}
    assert set(acc) == {"none", "rules"} and all(m["n"] == 2 for m in acc.values())
    for variant, m in acc.items():  # acc = the model's argmax choice is the label
        chosen = [json.loads(r["doc_json"])["choices"].index(r["output"][1:]) == json.loads(r["doc_json"])["label"]
                  for r in rows if r["variant"] == variant]
        assert m["value"] == pytest.approx(sum(chosen) / 2)


def test_unknown_task_is_one_line_exit_2(tmp_path, include_dir, capsys):
    store = tmp_path / "store"
    assert _run(store, "lm_eval:my_tsak", "--tasks-dir", str(include_dir)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "my_tsak" in err and "my_task" in err and str(include_dir) in err
    assert not store.exists()


def test_loglikelihood_rolling_is_a_clear_error(tmp_path, include_dir, tiny_model_dir, capsys):
    d = tmp_path / "ppl"
    d.mkdir()
    (d / "ppl.yaml").write_text("task: my_ppl\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
                                f"    test: {include_dir / 'gen.jsonl'}\ntest_split: test\n"
                                "output_type: loglikelihood_rolling\ndoc_to_text: q\ndoc_to_target: q\n"
                                "metric_list:\n  - metric: word_perplexity\n")
    assert _run(tmp_path / "store", "lm_eval:my_ppl", "--tasks-dir", str(d)) == 2
    errors = [x for x in capsys.readouterr().err.splitlines() if x.startswith("harness: ")]  # (progress bars aside)
    assert len(errors) == 1 and "loglikelihood_rolling" in errors[0] and "not supported" in errors[0]


def test_hub_dataset_and_missing_file_are_rejected_fast(tmp_path):
    from harness.lmeval import validate_tasks

    (tmp_path / "hub.yaml").write_text("task: hub_task\ndataset_path: someorg/somedata\noutput_type: generate_until\n"
                                       "doc_to_text: q\n")
    (tmp_path / "gone.yaml").write_text("task: gone_task\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
                                        f"    test: {tmp_path / 'missing.jsonl'}\noutput_type: generate_until\n")
    with pytest.raises(HarnessError, match="Hugging Face Hub"):
        validate_tasks(["hub_task"], [tmp_path])
    with pytest.raises(HarnessError, match=r"gone\.yaml: dataset_kwargs\.data_files: .*missing\.jsonl not found"):
        validate_tasks(["gone_task"], [tmp_path])
    with pytest.raises(HarnessError, match="--data ifeval=PATH"):
        validate_tasks(["ifeval"], [], data={})
    validate_tasks(["ifeval"], [], data={"ifeval": IFEVAL_SAMPLE})


# -- IFEval: the bridge (lm-eval's process_results) vs the harness's own IFEval --------------

CANNED = ["hello there. this answer is all lowercase and has no commas at all.",
          "* First point.\n* Second point.\n* Third point.",
          "HELLO, WORLD! THIS IS LOUD.",
          '"A quoted answer, wrapped in double quotes."',
          "Short."]


class _CannedBackend:
    """generate() answers with canned texts (a mix that passes and fails IFEval checks)."""

    def generate(self, items, variants, decoding):
        return [{"task": i.task, "task_version": "", "sample_id": i.sample_id, "variant": v.name, "model": "canned",
                 "instruction": i.instruction, "prompt": i.instruction, "output": CANNED[int(i.sample_id) % len(CANNED)],
                 "output_token_ids": [1, 2], "num_prompt_tokens": 1, "num_output_tokens": 2, "finish_reason": "eos",
                 "status": "ok"} for v in variants for i in items]


def _harness_ifeval(rows: list[dict]) -> dict:
    ifeval = pytest.importorskip("harness.metrics.ifeval")
    return ifeval.aggregate_ifeval(ifeval.score_ifeval([json.loads(r["doc_json"]) for r in rows],
                                                       [r["output"] for r in rows]))


def test_ifeval_bridge_equals_harness_ifeval_on_same_outputs(tiny_model_dir):
    pytest.importorskip("harness.metrics.ifeval")
    from harness.run.config import RunConfig
    from harness.experts.variants import parse_variants
    from harness.lmeval import evaluate_tasks
    from harness.models import resolve

    docs = [json.loads(x) for x in IFEVAL_SAMPLE.read_text().splitlines() if x.strip()]
    assert len(docs) >= 10 and len({i for d in docs for i in d["instruction_id_list"]}) >= 8
    cfg = RunConfig.from_sources(None, {"model": "tiny-random-llama", "tasks": "lm_eval:ifeval",
                                        "data": f"ifeval={IFEVAL_SAMPLE}"})
    plan = SimpleNamespace(cfg=cfg, model=resolve("tiny-random-llama"), prompt_format="tulu",
                           variants=parse_variants(["none"]))
    samples, metrics = evaluate_tasks(["ifeval"], _CannedBackend(), plan)
    assert len(samples) == len(docs)
    ours = _harness_ifeval(samples)
    theirs = {m["metric"]: m["value"] for m in metrics if m.get("sample_id") is None}
    n = {m["metric"]: m["n"] for m in metrics if m.get("sample_id") is None}
    assert all(m["filter"] == "none" for m in metrics)
    assert n["prompt_level_strict_acc"] == len(docs)  # n counts what the value averages over
    assert n["inst_level_strict_acc"] == sum(len(d["instruction_id_list"]) for d in docs) > len(docs)
    assert set(theirs) == {"prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc",
                           "inst_level_loose_acc"}
    assert 0 < theirs["inst_level_loose_acc"] < 1  # the canned outputs pass some checks and fail others
    for name, value in theirs.items():
        assert ours[name] == pytest.approx(value), name


def test_ifeval_through_cli_on_tiny_model(tmp_path, tiny_model_dir, capsys):
    pytest.importorskip("harness.metrics.ifeval")
    assert _run(tmp_path, "lm_eval:ifeval", "--data", f"ifeval={IFEVAL_SAMPLE}") == 0
    assert "32 sample rows" in (out := capsys.readouterr().out) and "(32 generated now" in out  # lm-eval rows count
    samples = read_table(tmp_path, "samples").to_pylist()
    metrics = read_table(tmp_path, "metrics").to_pylist()
    for variant in ("none", "rules"):
        rows = [r for r in samples if r["variant"] == variant]
        assert len(rows) == 16 and all(r["task"] == "lm_eval:ifeval" for r in rows)
        ours = _harness_ifeval(rows)
        theirs = {m["metric"]: m["value"] for m in metrics
                  if m["variant"] == variant and m["task"] == "lm_eval:ifeval" and m["sample_id"] is None
                  and m["filter"] == "none"}
        assert len(theirs) == 4
        for name, value in theirs.items():
            assert ours[name] == pytest.approx(value), name
    # one row per IFEval measure per (task, variant, filter): lm-eval's, never a second harness copy
    from harness.metrics.names import IFEVAL_NAMES, is_known

    agg = [(m["task"], m["variant"], m["filter"], m["metric"]) for m in metrics if m["sample_id"] is None]
    assert len(agg) == len(set(agg))
    ifeval_agg = [a for a in agg if a[3] in IFEVAL_NAMES]
    assert len(ifeval_agg) == 2 * 8  # 4 measures (lm-eval's, filter none) + 4 non-echo, per variant
    per = [(m["variant"], m["sample_id"], m["metric"]) for m in metrics if m["sample_id"] is not None]
    assert len(per) == len(set(per)) and {p[2] for p in per} == {"prompt_level_strict_acc", "prompt_level_loose_acc"}
    assert all(is_known(m["metric"]) for m in metrics)
