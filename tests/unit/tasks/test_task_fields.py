"""Task-YAML fields are honoured by native runs, or refused with one line naming file and field."""

import pyarrow as pa
import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.store.schema import from_rows
from harness.tasks import Task, TaskSpec
from harness.tasks.honoured import check_native, process_results_rows, select_metrics


def write_task(tmp_path, extra: str, utils: str | None = None):
    (tmp_path / "d.jsonl").write_text('{"id": 1, "instruction": "Hi.", "gold": "x"}\n')
    if utils:
        (tmp_path / "utils.py").write_text(utils)
    p = tmp_path / "t.yaml"
    p.write_text("task: t\ndataset_path: d.jsonl\ndoc_to_text: instruction\n" + extra)
    return p


@pytest.mark.parametrize("extra, line, field", [
    ("doc_to_target: gold\n", 4, "doc_to_target"),
    ("task_alias: T\n", 4, "task_alias"),
    ("fewshot_split: train\n", 4, "fewshot_split"),
    ("metric_list:\n  - metric: bleu\n", 4, "metric_list[0].metric"),
    ("metric_list:\n  - {metric: eos_rate, aggregation: median}\n", 4, "metric_list[0].aggregation"),
])
def test_unhonoured_fields_fail_validate_and_run(tmp_path, capsys, extra, line, field):
    p = write_task(tmp_path, extra)
    assert main(["tasks", "validate", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"t.yaml:{line}: {field}" in err
    store = tmp_path / "store"
    assert main(["run", "--model", "tiny-random-llama", "--tasks", "t", "--tasks-dir", str(tmp_path),
                 "--store", str(store), "--no-ray", "-q", "--dry-run"]) == 2
    assert f"{field}" in capsys.readouterr().err and not store.exists()
    if "metric_list" not in extra:
        assert main(["tasks", "validate", str(p), "--lm-eval"]) == 0  # lm-eval honours them


def test_domain_reaches_prompt_items(tmp_path):
    p = write_task(tmp_path, "domain: poetry\n")
    assert {i.domain for i in Task.from_spec(TaskSpec.from_yaml(p)).items()} == {"poetry"}


def test_metric_list_selects_the_task_metrics():
    task = Task.from_rows("t", [{"instruction": "x"}], metric_list=({"metric": "eos_rate"},))
    check_native(task)
    m = from_rows([{"run_id": "r", "task": t, "variant": "none", "metric": name, "value": 1.0}
                   for t in ("t", "other") for name in ("eos_rate", "echo_rate", "error_rate")], "metrics")
    kept = {(r["task"], r["metric"]) for r in select_metrics(m, [task]).to_pylist()}
    assert kept == {("t", "eos_rate"), ("t", "error_rate"),
                    ("other", "eos_rate"), ("other", "echo_rate"), ("other", "error_rate")}


def test_process_results_is_called_and_aggregated(tmp_path):
    p = write_task(tmp_path, "process_results: !function utils.score\n"
                             "metric_list:\n  - {metric: said_hi, aggregation: mean}\n",
                   utils="def score(doc, results):\n    return {'said_hi': float('hi' in results[0].lower())}\n")
    task = Task.from_spec(TaskSpec.from_yaml(p, trusted_dirs=(tmp_path,)))
    check_native(task)
    samples = pa.table({"task": ["t"] * 3, "model": ["m"] * 3, "variant": ["none"] * 3, "doc_json": ["{}"] * 3,
                        "output": ["Hi there", "Bye", "hi"], "status": ["ok", "ok", "error"]})
    rows = process_results_rows(task, samples, "r")
    assert [(r["metric"], r["value"], r["n"]) for r in rows] == [("said_hi", 0.5, 2)]


def test_process_results_needs_a_metric_list(tmp_path):
    p = write_task(tmp_path, "process_results: !function utils.score\n", utils="def score(d, r):\n    return {}\n")
    with pytest.raises(HarnessError, match=r"t.yaml:4: process_results: needs a metric_list"):
        check_native(Task.from_spec(TaskSpec.from_yaml(p, trusted_dirs=(tmp_path,))))


def test_process_results_value_wins_unless_the_builtin_row_agrees(tmp_path):
    from harness.tasks.honoured import task_field_metrics

    p = write_task(tmp_path, "process_results: !function utils.score\nmetric_list:\n  - metric: eos_rate\n",
                   utils="def score(doc, results):\n    return {'eos_rate': float(results[0] == 'a')}\n")
    task = Task.from_spec(TaskSpec.from_yaml(p, trusted_dirs=(tmp_path,)))
    samples = pa.table({"task": ["t", "t"], "model": ["m", "m"], "variant": ["none", "rules"], "doc_json": ["{}"] * 2,
                        "output": ["a", "b"], "status": ["ok", "ok"]})
    builtin = from_rows([{"run_id": "r", "task": "t", "model": "m", "variant": v, "metric": "eos_rate", "value": 1.0,
                          "ci_low": 0.2, "ci_high": 1.0} for v in ("none", "rules")], "metrics")
    out = {r["variant"]: r for r in task_field_metrics([task], samples, builtin, "r").to_pylist()}
    assert (out["none"]["value"], out["none"]["ci_low"]) == (1.0, 0.2)  # agrees: the row with a CI stays
    assert (out["rules"]["value"], out["rules"]["ci_low"]) == (0.0, None)  # differs: process_results wins
