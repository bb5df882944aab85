"""The harness's LC win rate is alpaca_eval's own number on the same annotations."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # scikit-learn notices about alpaca_eval's arguments

if importlib.util.find_spec("alpaca_eval") is None:  # a requirement (requirements-cpu.txt); skip only where absent
    pytest.skip("alpaca_eval is not installed", allow_module_level=True)

from harness.judges.lc import GLM_NAME, MIN_PAIRS, alpaca_annotations, import_glm, lc_win_rate  # noqa: E402
from harness.judges.winrate import Pair, PairSet, metric_rows, summary_line  # noqa: E402

# 12 fixed judged pairs: (treatment length, baseline length, P(treatment better)); longer tends to win
FIXED = [(120, 40, 1.0), (30, 90, 0.0), (200, 60, 1.0), (50, 50, 0.5), (80, 20, 0.75), (10, 70, 0.25),
         (150, 140, 1.0), (60, 100, 0.0), (90, 30, 1.0), (40, 45, 0.5), (110, 35, 0.9), (25, 80, 0.0)]


def _pairs() -> PairSet:
    return PairSet([Pair("alpaca", str(i), f"instruction {i}", "t" * lt, "b" * lb) for i, (lt, lb, _) in enumerate(FIXED)],
                   "variant:none", "m", "rules")


def _direct(tmp_path, monkeypatch) -> dict:
    """alpaca_eval called directly, annotations built here (not by the harness)."""
    import pandas as pd

    glm = import_glm()
    gamed = tmp_path / "df_gamed.csv"
    pd.DataFrame({"model": "x", "index": range(len(FIXED)), "instruction_difficulty": 0.0}).to_csv(gamed, index=False)
    monkeypatch.setattr(glm, "hf_hub_download", lambda *a, **k: str(gamed))
    df = pd.DataFrame([{"index": i, "instruction": f"instruction {i}", "output_1": "b" * lb, "output_2": "t" * lt,
                        "generator_1": "variant:none", "generator_2": "rules", "annotator": "length",
                        "preference": 1 + p} for i, (lt, lb, p) in enumerate(FIXED)])
    return glm.get_length_controlled_winrate(df, glm_name="length_controlled_minimal", save_weights_dir=None)


def test_lc_equals_alpaca_eval_called_directly(tmp_path, monkeypatch):
    ps = _pairs()
    prefs = [p for _, _, p in FIXED]
    rows = metric_rows("r", ps, prefs, "length", lc_iters=5)
    (lc,) = [r for r in rows if r["metric"] == "judge_lc_win_rate"]
    (raw,) = [r for r in rows if r["metric"] == "judge_win_rate" and r.get("sample_id") is None]
    want = _direct(tmp_path, monkeypatch)
    assert lc["value"] == pytest.approx(want["length_controlled_winrate"] / 100, abs=1e-12)
    assert raw["value"] == pytest.approx(want["win_rate"] / 100)  # the raw win rate agrees with alpaca_eval's too
    assert lc["value"] != pytest.approx(raw["value"], abs=0.01)  # length control moved it
    assert lc["n"] == len(FIXED) and lc["ci_low"] <= lc["value"] <= lc["ci_high"] and lc["ci_high"] > lc["ci_low"]
    d = json.loads(lc["details"])
    assert d["glm"] == GLM_NAME and d["judge"] == "length" and d["iters"] == 5
    line = summary_line(rows)
    assert "win rate" in line and f"LC win rate {100 * lc['value']:.1f}%" in line


def test_bootstrap_is_seeded():
    ann = alpaca_annotations([f"q{i}" for i in range(len(FIXED))], ["t" * a for a, _, _ in FIXED],
                             ["b" * b for _, b, _ in FIXED], [p for _, _, p in FIXED], "rules", "none", "length")
    one, two = lc_win_rate(ann, iters=4, seed=3), lc_win_rate(ann, iters=4, seed=3)
    assert (one["ci_low"], one["ci_high"]) == (two["ci_low"], two["ci_high"])


def test_too_few_pairs_give_a_null_value_with_the_reason():
    ann = alpaca_annotations(["q"] * (MIN_PAIRS - 1), ["a"] * (MIN_PAIRS - 1), ["bb"] * (MIN_PAIRS - 1),
                             [1.0, 0.0, 1.0, 0.0][: MIN_PAIRS - 1], "rules", "none", "length")
    out = lc_win_rate(ann)
    assert out["value"] is None and f"at least {MIN_PAIRS}" in out["reason"]
    assert not any(isinstance(v, float) and math.isnan(v) for v in out.values())
