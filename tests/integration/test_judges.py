"""`harness judge` / `harness similarity` end to end on a small fixture store (no generation)."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.results import open as open_results
from harness.store import Store
from harness.store.schema import from_rows

OUT = {  # sample_id -> (none output, rules output, reference)
    "0": ("short", "a much longer answer", "ref zero is long-ish"),
    "1": ("a long base answer here", "tiny", "r"),
    "2": ("same", "SAME", "reference two is long"),
}


def _store(tmp_path):
    root = tmp_path / "store"
    st = Store(root)
    for run, model in (("r1", "base"), ("it", "it-model")):
        rows = []
        for sid, (none, rules, ref) in OUT.items():
            for variant, out in (("none", none), ("rules", rules)):
                rows.append({"run_id": run, "key": f"{run}{sid}{variant}", "task": "alpaca", "sample_id": sid,
                             "variant": variant, "model": model, "instruction": f"instruction {sid}",
                             "output": out if run == "r1" else "it " + out, "status": "ok",
                             "doc_json": json.dumps({"instruction": f"instruction {sid}", "reference_output": ref})})
        rows.append({"run_id": run, "key": f"{run}err", "task": "alpaca", "sample_id": "9", "variant": "rules",
                     "model": model, "instruction": "x", "output": "", "status": "error", "doc_json": "{}"})
        st.write_samples(run, 0, rows)
        st.write_run(run, {"status": "finished", "model": model, "tasks": ["alpaca"], "variants": ["none", "rules"]})
    st.write_metrics("r1", from_rows([{"run_id": "r1", "task": "alpaca", "variant": "rules", "metric": "eos_rate",
                                       "value": 1.0, "n": 3}], "metrics"))
    return root


def test_judge_cli_variant_baseline_appends(tmp_path, capsys):
    root = _store(tmp_path)
    args = ["judge", "r1", "--judge", "length", "--treatment", "rules", "--baseline", "none", "--store", str(root)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "win rate 50.0%" in out and "vs variant:none" in out
    assert main(args) == 0  # re-judging replaces, never duplicates
    m = open_results(root).metrics(run="r1")
    assert sorted(m.column("metric").to_pylist()) == ["eos_rate", "judge_lc_win_rate", "judge_win_rate",
                                                      "judge_win_rate", "judge_win_rate", "judge_win_rate"]
    (wr,) = [r for r in m.to_pylist() if r["metric"] == "judge_win_rate" and r["sample_id"] is None]
    # prefs by length: 1, 0, 0.5 -> 0.5; the errored sample 9 is dropped
    assert wr["value"] == 0.5 and wr["n"] == 3 and wr["reference"] == "variant:none" and wr["sample_id"] is None
    details = json.loads(wr["details"])
    assert details["judge"] == "length" and details["dropped"]["error"] == 1 and details["ties"] == 1
    prefs = {r["sample_id"]: r["value"] for r in m.to_pylist() if r["metric"] == "judge_win_rate" and r["sample_id"]}
    assert prefs == {"0": 1.0, "1": 0.0, "2": 0.5}


def test_judge_cli_references_and_reference_run(tmp_path, capsys):
    root = _store(tmp_path)
    assert main(["judge", "r1", "--treatment", "none", "--against-references", "--limit", "2",
                 "--store", str(root)]) == 0
    assert main(["judge", "r1", "--treatment", "rules", "--reference-run", "it", "--baseline", "rules",
                 "--store", str(root)]) == 0
    rows = open_results(root).metrics(run="r1", metric="judge_win_rate").to_pylist()
    by_ref = {r["reference"]: r for r in rows if r["sample_id"] is None}
    # none vs references, first 2 prompts: "short" < "ref zero is long-ish" (0), long base > "r" (1)
    assert by_ref["references"]["value"] == 0.5 and by_ref["references"]["n"] == 2
    # rules vs "it " + rules: always shorter -> 0
    assert by_ref["run:it/rules"]["value"] == 0.0 and by_ref["run:it/rules"]["n"] == 3


@pytest.mark.parametrize("extra,needle", [
    ([], "exactly one of"),
    (["--baseline", "nope"], "no variant 'nope'"),
    (["--baseline", "none", "--judge", "bogus"], "--judge 'bogus'"),
    (["--baseline", "none", "--judge", "http"], "--base-url"),
])
def test_judge_cli_errors(tmp_path, capsys, extra, needle):
    root = _store(tmp_path)
    assert main(["judge", "r1", "--treatment", "rules", "--store", str(root), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err


@pytest.mark.slow
def test_similarity_cli_real_minilm(tmp_path, capsys):
    root = _store(tmp_path)
    dom = tmp_path / "poetry.jsonl"
    dom.write_text("\n".join(json.dumps({"instruction": f"Write a poem about {w}.", "response": f"Oh {w}, thou art fair"})
                             for w in ("the sea", "love", "time")) + "\n")
    assert main(["similarity", "r1", "--domain", "poetry", "--domain-data", str(dom), "--variant", "rules",
                 "--store", str(root)]) == 0
    assert "Spearman(x, y)" in capsys.readouterr().out
    m = open_results(root).metrics(run="r1").to_pylist()
    xy = [r for r in m if r["metric"] == "similarity_xy"]
    assert len(xy) == 3 and set(json.loads(xy[0]["details"])) == {"x", "y", "domain"}
    assert [(r["n"], r["reference"]) for r in m if r["metric"] == "similarity_spearman"] == [(3, "domain:poetry")]
    assert any(r["metric"] == "eos_rate" for r in m)
