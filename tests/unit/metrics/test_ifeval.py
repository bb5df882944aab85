"""IFEval: our numbers equal lm-eval's, both its functions and a full simple_evaluate run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.metrics import ifeval

DATA = Path(__file__).resolve().parents[2] / "data" / "metrics"
DOCS = [json.loads(line) for line in (DATA / "ifeval_docs.jsonl").read_text(encoding="utf-8").splitlines()]
OUTPUTS = [d["output"] for d in DOCS]


def _lm_eval_reference(docs: list[dict], outputs: list[str]) -> dict[str, float]:
    """lm-eval's own path: process_results per doc, then the aggregations ifeval.yaml names."""
    from lm_eval.api.metrics import mean

    utils = ifeval.lm_eval_ifeval()
    per = [utils.process_results(d, [o]) for d, o in zip(docs, outputs)]
    return {
        "prompt_level_strict_acc": mean([p["prompt_level_strict_acc"] for p in per]),
        "inst_level_strict_acc": utils.agg_inst_level_acc([p["inst_level_strict_acc"] for p in per]),
        "prompt_level_loose_acc": mean([p["prompt_level_loose_acc"] for p in per]),
        "inst_level_loose_acc": utils.agg_inst_level_acc([p["inst_level_loose_acc"] for p in per]),
    }


def test_fixture_covers_enough_instruction_types():
    types = {i for d in DOCS for i in d["instruction_id_list"]}
    assert len(DOCS) >= 10 and len(types) >= 8
    per = ifeval.score_ifeval(DOCS, OUTPUTS)
    assert 0 < sum(r["prompt_level_strict_acc"] for r in per) < len(per)  # some pass, some fail


def test_offline_punkt_is_used_and_nothing_downloads(monkeypatch):
    import nltk

    monkeypatch.setattr(nltk, "download", lambda *a, **k: pytest.fail("nltk.download called"))
    ifeval.lm_eval_ifeval()
    assert nltk.data.path[0] == str(ifeval.NLTK_DATA)
    assert str(ifeval.NLTK_DATA) in os.environ["NLTK_DATA"].split(os.pathsep)
    from lm_eval.tasks.ifeval import instructions_util

    assert instructions_util.count_sentences("Hello there, Dr. Smith. How are you? I am fine.") == 3


@pytest.mark.parametrize("doc", DOCS, ids=[f"key{d['key']}" for d in DOCS])
def test_per_sample_equals_process_results(doc):
    utils = ifeval.lm_eval_ifeval()
    ours = ifeval.score_ifeval([doc], [doc["output"]])[0]
    theirs = utils.process_results(doc, [doc["output"]])
    assert {m: ours[m] for m in ifeval.METRICS} == theirs


def test_aggregate_equals_lm_eval_functions():
    assert ifeval.aggregate_ifeval(ifeval.score_ifeval(DOCS, OUTPUTS)) == _lm_eval_reference(DOCS, OUTPUTS)


def test_non_echo_numbers_drop_echo_outputs():
    per = ifeval.score_ifeval(DOCS, OUTPUTS)
    echo_keys = {r["key"] for r in per if r["echo"]}
    assert echo_keys == {10, 21}
    kept = [(d, o) for d, o in zip(DOCS, OUTPUTS) if d["key"] not in echo_keys]
    expected = _lm_eval_reference([d for d, _ in kept], [o for _, o in kept])
    assert ifeval.aggregate_ifeval(per, non_echo=True) == expected
    # The echoed blog prompt passes its highlight instruction by copying the prompt.
    assert next(r for r in per if r["key"] == 21)["prompt_level_strict_acc"] is True


def test_empty_and_bad_input():
    assert ifeval.aggregate_ifeval([]) == dict.fromkeys(ifeval.METRICS)
    with pytest.raises(ValueError, match="2 docs but 1 outputs"):
        ifeval.score_ifeval(DOCS[:2], OUTPUTS[:1])
    with pytest.raises(ValueError, match=r"lacks \['kwargs'\]"):
        ifeval.score_ifeval([{k: v for k, v in DOCS[0].items() if k != "kwargs"}], ["x"])
    with pytest.raises(ValueError, match="not str"):
        ifeval.score_ifeval(DOCS[:1], [None])


def test_metric_rows():
    per = ifeval.score_ifeval(DOCS, OUTPUTS)
    rows = {r["metric"]: r for r in ifeval.ifeval_metric_rows(per, run_id="r", task="ifeval", model="m", variant="none")}
    agg = ifeval.aggregate_ifeval(per)
    for m in ifeval.METRICS:
        assert rows[m]["value"] == pytest.approx(agg[m])
    assert rows["prompt_level_strict_acc_non_echo"]["n"] == len(DOCS) - 2
    assert rows["inst_level_strict_acc"]["n"] == sum(len(d["instruction_id_list"]) for d in DOCS)  # instructions
    assert rows["prompt_level_strict_acc"]["n"] == len(DOCS) and "ifeval_echo_rate" not in rows  # echo_rate has it


def test_per_sample_rows_use_the_measure_names():
    per = ifeval.score_ifeval(DOCS, OUTPUTS)
    ids = [str(i) for i in range(len(DOCS))]
    rows = ifeval.ifeval_metric_rows(per, run_id="r", task="ifeval", model="m", variant="none", sample_ids=ids)
    one = [r for r in rows if r.get("sample_id") == "0"]
    assert sorted(r["metric"] for r in one) == sorted(ifeval.METRICS)
    inst = next(r for r in one if r["metric"] == "inst_level_strict_acc")
    assert inst["n"] == len(DOCS[0]["instruction_id_list"]) and inst["value"] == pytest.approx(
        sum(per[0]["inst_level_strict_acc"]) / inst["n"])
    # lm-eval already stored the four for lm_eval: tasks: only the non-echo numbers are added
    lm = ifeval.ifeval_metric_rows(per, run_id="r", task="lm_eval:ifeval", model="m", variant="none", sample_ids=ids,
                                   lm_eval_scored=True)
    assert {r["metric"] for r in lm} == {m + "_non_echo" for m in ifeval.METRICS}


def test_simple_evaluate_with_replayed_outputs_matches(tmp_path):
    """A local copy of ifeval.yaml run by lm-eval's evaluator on canned outputs gives our numbers."""
    from lm_eval import simple_evaluate
    from lm_eval.api.model import LM
    from lm_eval.tasks import TaskManager

    ifeval.lm_eval_ifeval()
    by_key = {d["key"]: d["output"] for d in DOCS}

    class ReplayLM(LM):
        def loglikelihood(self, requests):
            raise NotImplementedError

        def loglikelihood_rolling(self, requests):
            raise NotImplementedError

        def generate_until(self, requests):
            return [by_key[req.doc["key"]] for req in requests]

    task_dir = tmp_path / "tasks"
    task_dir.mkdir()
    (task_dir / "utils.py").write_text("from lm_eval.tasks.ifeval.utils import agg_inst_level_acc, process_results  # noqa: F401\n")
    (task_dir / "ifeval_fixture.yaml").write_text(
        "task: ifeval_fixture\n"
        "dataset_path: json\n"
        f"dataset_kwargs: {{data_files: {{test: {json.dumps(str(DATA / 'ifeval_docs.jsonl'))}}}, cache_dir: {json.dumps(str(tmp_path / 'hf'))}}}\n"
        "test_split: test\n"
        "output_type: generate_until\n"
        "doc_to_text: prompt\n"
        "doc_to_target: 0\n"
        "generation_kwargs: {until: [], do_sample: false, temperature: 0.0, max_gen_toks: 64}\n"
        "process_results: !function utils.process_results\n"
        "metric_list:\n"
        "  - {metric: prompt_level_strict_acc, aggregation: mean, higher_is_better: true}\n"
        "  - {metric: inst_level_strict_acc, aggregation: !function utils.agg_inst_level_acc, higher_is_better: true}\n"
        "  - {metric: prompt_level_loose_acc, aggregation: mean, higher_is_better: true}\n"
        "  - {metric: inst_level_loose_acc, aggregation: !function utils.agg_inst_level_acc, higher_is_better: true}\n"
        "metadata: {version: 4.0}\n"
    )
    out = simple_evaluate(
        model=ReplayLM(),
        tasks=["ifeval_fixture"],
        task_manager=TaskManager(include_path=str(task_dir), include_defaults=False),
        bootstrap_iters=0,
        log_samples=False,
    )
    res = out["results"]["ifeval_fixture"]
    ours = ifeval.aggregate_ifeval(ifeval.score_ifeval(DOCS, OUTPUTS))
    assert {m: res[f"{m},none"] for m in ifeval.METRICS} == ours  # lm-eval's own key; the store splits it
