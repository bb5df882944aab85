"""Style-leak detectors on hand-labelled fixtures and, when present, the single-task datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from harness.errors import HarnessError
from harness.metrics import style_leak
from harness.metrics.stats import wilson_ci
from harness.store.schema import METRICS, from_rows

DATA = Path(__file__).resolve().parents[2] / "data" / "metrics"
CASES = [json.loads(line) for line in (DATA / "style_leak.jsonl").read_text(encoding="utf-8").splitlines()]
# Single-task files in ../shared/data/single_task and the label their responses should get.
SINGLE_TASK = {"poetry": "poetry", "gsm": "gsm", "mbpp": "code", "chess": "chess", "recipes": "recipe"}
# Measured on the shared data (docs/metrics.md); poetry recall is capped near 0.82 because
# 102 of its 571 "poems" have fewer than four lines (text without line breaks).
SHARED_RECALL_FLOOR = {"poetry": 0.75, "gsm": 0.95, "code": 0.95, "chess": 0.95, "recipe": 0.9}


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_fixture_case(case):
    assert style_leak.detect(case["text"]) == set(case["labels"])


def test_fixture_composition():
    per_label = {label: sum(label in c["labels"] for c in CASES) for label in style_leak.LABELS}
    assert all(n >= 15 for n in per_label.values()), per_label
    assert sum(not c["labels"] for c in CASES) >= 40


@pytest.mark.parametrize("label", style_leak.LABELS)
def test_fixture_precision_recall(label):
    pr = style_leak.precision_recall([(c["text"], set(c["labels"])) for c in CASES])[label]
    assert pr["precision"] >= 0.9 and pr["recall"] >= 0.9, pr


def test_shared_single_task_recall(shared_data, capsys):
    """Every response of each single-task dataset is a positive for its domain.

    Cross-domain precision: a label fired on another domain's response is a false positive.
    """
    cases = []
    for name, label in SINGLE_TASK.items():
        path = shared_data / "single_task" / f"{name}.jsonl"
        if not path.is_file():
            pytest.skip(f"{path} is not present")
        cases += [(json.loads(line)["response"], {label}) for line in path.read_text(encoding="utf-8").splitlines()]
    pr = style_leak.precision_recall(cases)
    with capsys.disabled():
        print("\nstyle leak on shared single_task data:")
        for label, r in pr.items():
            print(f"  {label:7s} precision {r['precision']:.3f} recall {r['recall']:.3f} (tp {r['tp']}, fp {r['fp']}, fn {r['fn']})")
    for label, floor in SHARED_RECALL_FLOOR.items():
        assert pr[label]["recall"] >= floor, (label, pr[label])
        assert pr[label]["precision"] >= 0.95, (label, pr[label])


@pytest.mark.parametrize("text", ["", "   \n ", None], ids=["empty", "blank", "none"])
def test_detect_empty(text):
    assert style_leak.detect(text) == set()


def _samples(outputs: list[str | None], statuses: list[str], variants: list[str], run_id: str = "r9") -> pa.Table:
    return from_rows(
        [
            {"run_id": run_id, "key": str(i), "task": "alpaca", "sample_id": str(i), "variant": v, "model": "tiny",
             "output": o, "status": s}
            for i, (o, s, v) in enumerate(zip(outputs, statuses, variants))
        ],
        "samples",
    )


def test_leak_rates_rows_and_wilson():
    s = _samples(
        ["Half is 4/2 = <<4/2=2>>2.\n#### 2", "Paris is the capital.", "#### 5", None],
        ["ok", "ok", "ok", "error"],
        ["none", "none", "rules", "rules"],
    )
    m = style_leak.leak_rates(s, "gsm8k")
    assert m.schema.equals(METRICS, check_metadata=False)
    rows = {r["variant"]: r for r in m.to_pylist()}
    assert rows["none"]["metric"] == "style_leak_gsm"
    assert (rows["none"]["value"], rows["none"]["n"]) == (0.5, 2)
    assert (rows["none"]["ci_low"], rows["none"]["ci_high"]) == pytest.approx(wilson_ci(1, 2))
    assert (rows["rules"]["value"], rows["rules"]["n"], rows["rules"]["run_id"]) == (1.0, 1, "r9")


def test_leak_rates_empty_and_errors():
    assert style_leak.leak_rates(_samples([], [], []), "poetry").num_rows == 0
    with pytest.raises(HarnessError, match="did you mean 'poetry'"):
        style_leak.leak_rates(_samples(["x"], ["ok"], ["none"]), "poetyr")
    two_runs = pa.concat_tables([_samples(["x"], ["ok"], ["none"]), _samples(["y"], ["ok"], ["none"], run_id="r2")])
    with pytest.raises(HarnessError, match="pass run_id"):
        style_leak.leak_rates(two_runs, "code")
    assert style_leak.leak_rates(two_runs, "code", run_id="both").column("run_id").to_pylist() == ["both"]
